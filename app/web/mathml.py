"""TeX in titles and abstracts as MathML, through an allow-list sanitiser.

latex2mathml passes `\\text{…}` through raw and turns `\\href` into an href attribute, so its
output is rebuilt from the MathML elements and attributes below only; anything else makes
the caller fall back to the escaped TeX source.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from markupsafe import Markup, escape

# $…$ and $$…$$, not \$; the body never spans another $.
MATH = re.compile(r"(?<!\\)\$\$([^$]+?)\$\$|(?<!\\)\$([^$]+?)(?<!\\)\$")
_MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"
_TAGS = (
    "math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mover munder "
    "munderover mtable mtr mtd mstyle mpadded mphantom menclose mfenced semantics "
    "annotation merror mmultiscripts mprescripts none"
)
_ATTRS = (
    "display mathvariant stretchy fence separator separators lspace rspace accent "
    "accentunder movablelimits columnalign columnspacing rowspacing columnlines rowlines "
    "linethickness scriptlevel displaystyle largeop symmetric form width height depth "
    "minsize maxsize notation open close encoding"
)
MATHML_TAGS = frozenset(_TAGS.split())
MATHML_ATTRS = frozenset(_ATTRS.split())


def safe_mathml(tex: str, display: bool) -> Markup | None:
    """`tex` as sanitised MathML, or None when it does not convert to allowed MathML."""
    try:
        from latex2mathml.converter import convert

        raw = convert(tex, display="block" if display else "inline")
        root = ET.fromstring(raw)
    except Exception:  # the converter raises many kinds of errors on odd TeX
        return None
    out: list[str] = []

    def walk(el: ET.Element) -> bool:
        tag = el.tag.removeprefix(_MATHML_NS)
        if tag not in MATHML_TAGS:
            return False
        attrs = "".join(f' {k}="{escape(v)}"' for k, v in el.attrib.items() if k in MATHML_ATTRS)
        if tag == "math":
            attrs = ' xmlns="http://www.w3.org/1998/Math/MathML"' + attrs
        out.append(f"<{tag}{attrs}>{escape(el.text or '')}")
        for child in el:
            if not walk(child):
                return False
            out.append(str(escape(child.tail or "")))
        out.append(f"</{tag}>")
        return True

    return Markup("".join(out)) if walk(root) else None
