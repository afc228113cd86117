"""HTTP validators and caching for every router: content ETags, `If-None-Match`, the
`Cache-Control` values, and the signed page tokens the JSON API's keyset listings hand out.

Page tokens are `v1.<base64url(JSON position)>.<base64url(HMAC-SHA256, 16 bytes)>`. The JSON
names the listing kind, a fingerprint of the filters it was made for and the last row's key;
a garbled, tampered or foreign token (other filters, other listing) is a 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from fastapi import HTTPException, Request, Response
from pydantic import BaseModel

from app.settings import Settings

MAX_TOKEN_CHARS = 512

# The OpenAPI entry of a route that answers a matching `If-None-Match` with 304.
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (the `If-None-Match` ETag matches)"}
}


# --- ETags and Cache-Control --------------------------------------------------------------


def public_cache(max_age: int) -> str:
    return f"public, max-age={max_age}"


LISTING_CACHE = public_cache(60)  # lists change with every fetch
PAPER_CACHE = public_cache(300)
SEARCH_CACHE = public_cache(60)  # results move with every fetch
THUMBNAIL_CACHE = public_cache(86400)


def etag_for(body: bytes) -> str:
    """A strong ETag: a hash of the body (or of whatever stands for its version)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` header matches `etag` (RFC 9110 §13.1.2: weak comparison,
    and `*` matches any current representation)."""
    if not header:
        return False
    wanted = etag.removeprefix("W/")
    for part in header.split(","):
        tag = part.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


def cache_headers(etag: str, cache_control: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": cache_control}


def not_modified(request: Request, etag: str) -> bool:
    """Whether the client already holds the representation with this ETag."""
    return etag_matches(request.headers.get("if-none-match"), etag)


def conditional(
    request: Request, body: bytes, media_type: str, cache_control: str, **headers: str
) -> Response:
    """`body` with its ETag and `Cache-Control`; 304 without a body when the client has it."""
    etag = etag_for(body)
    sent = {**cache_headers(etag, cache_control), **headers}
    if not_modified(request, etag):
        return Response(status_code=304, headers=sent)
    return Response(body, media_type=media_type, headers=sent)


def cached_json(request: Request, model: BaseModel, cache_control: str) -> Response:
    """The model as JSON with a strong ETag; 304 without a body when the client has it."""
    return conditional(request, model.model_dump_json().encode(), "application/json", cache_control)


# --- signed page tokens ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token_key(settings: Settings) -> bytes:
    secret = getattr(settings, "secret_key", None) or settings.admin_token or "papershelf"
    return hashlib.sha256(b"papershelf page token\0" + str(secret).encode()).digest()


def fingerprint(*parts: object) -> str:
    """A short digest of a listing's filters, which its page tokens are bound to."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def encode_page_token(settings: Settings, kind: str, filters: str, position: list[Any]) -> str:
    payload = json.dumps({"k": kind, "f": filters, "p": position}, separators=(",", ":"))
    body = _b64(payload.encode())
    sig = hmac.new(_token_key(settings), body.encode(), hashlib.sha256).digest()[:16]
    return f"v1.{body}.{_b64(sig)}"


def decode_page_token(settings: Settings, token: str, kind: str, filters: str) -> list[Any]:
    """The position a token stands for; HTTP 400 for anything but a token this API made
    for the same listing and filters."""
    bad = HTTPException(400, "invalid page token: pass next_page_token back unchanged")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise bad
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "v1":
        raise bad
    try:
        sig = _unb64(parts[2])
        payload = json.loads(_unb64(parts[1]))
    except (binascii.Error, ValueError):
        raise bad from None
    want = hmac.new(_token_key(settings), parts[1].encode(), hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(sig, want):
        raise bad
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise bad
    if payload.get("f") != filters:
        raise HTTPException(400, "page token was made for other filters; start again")
    position = payload.get("p")
    if not isinstance(position, list):
        raise bad
    return position
