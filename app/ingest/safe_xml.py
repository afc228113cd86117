"""The one hardened XML entry point every XML parser in this package uses: no entities
expanded or fetched, no DTDs, no network."""

from __future__ import annotations

from lxml import etree

from app.ingest.records import DocumentError


def parse_xml(data: bytes, source: str) -> etree._Element:
    """Parse a whole XML document without ever fetching or expanding entities.

    Raises DocumentError for an empty, truncated or non-well-formed document, bytes that are
    not the declared (or default UTF-8) encoding, and any DOCTYPE (arXiv never sends one; a
    DTD is how entity bombs and external entities get in)."""
    if isinstance(data, str):  # tolerate text; XML parsers want the bytes
        data = data.encode("utf-8")
    if not data.strip():
        raise DocumentError(source, "empty document")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        msg = exc.msg or str(exc)
        if "UTF-8" in msg or "encoding" in msg.lower():
            msg = f"bytes do not match the document's encoding ({msg})"
        else:
            msg = f"not well-formed XML ({msg})"
        raise DocumentError(source, msg, line=exc.lineno or None) from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise DocumentError(source, "DOCTYPE declarations are refused", line=1)
    return root
