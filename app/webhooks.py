"""Webhook destinations and signatures for saved-search alerts.

A receiver checks `X-Papershelf-Signature: sha256=<hex>`, the HMAC-SHA256 of the raw body
under the alert's secret (`verify`); the body carries its own `sent_at`, which the signature
covers, so a receiver can refuse old replays. `X-Papershelf-Timestamp` repeats it.

`resolve_destination` is the SSRF guard: the URL must be plain http(s) without credentials,
and every address its host resolves to must be a public one (not private, loopback,
link-local, multicast, reserved or unspecified) unless the admin allows private addresses.
The sender connects to the checked address itself and never follows redirects, so a DNS
answer that changes between the check and the request cannot reach an internal host.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Papershelf-Signature"
TIMESTAMP_HEADER = "X-Papershelf-Timestamp"
EVENT_HEADER = "X-Papershelf-Event"
MAX_URL_CHARS = 2000

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to (as text); raises OSError when it does not.
Resolver = Callable[[str, int], list[str]]


class UnsafeDestination(ValueError):
    """The webhook URL is malformed, does not resolve, or reaches a refused address."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked webhook URL and the addresses its host resolved to, all of them allowed."""

    url: str
    scheme: str
    host: str  # as in the URL (no brackets around an IPv6 literal)
    port: int
    addresses: tuple[str, ...]


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(sign(secret, body).encode(), signature.strip().encode())


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a syntactically acceptable webhook URL; UnsafeDestination
    otherwise. No I/O."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeDestination("give a webhook URL (http:// or https://)")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise UnsafeDestination(f"the webhook URL is longer than {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise UnsafeDestination("the webhook URL holds whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination(f"the webhook URL is malformed: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("the webhook URL must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeDestination("the webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestination("the webhook URL must not hold credentials (user:password@)")
    if parts.fragment:
        raise UnsafeDestination("the webhook URL must not have a #fragment")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refused_reason(address: IpAddress) -> str | None:
    """Why an address is not a public one, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    for reason, hit in (
        ("loopback", address.is_loopback),
        ("private", address.is_private),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("unspecified", address.is_unspecified),
        # Shared address space (100.64/10), documentation ranges and the like.
        ("not globally routable", not address.is_global),
    ):
        if hit:
            return reason
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (blocking: call off the loop)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_destination(
    url: str, *, allow_private: bool, resolve: Resolver = system_resolver
) -> Destination:
    """Check `url` and every address its host resolves to (see the module docstring)."""
    scheme, host, port = check_url(url)
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            found = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeDestination(f"the webhook host {host!r} does not resolve") from exc
    if not found:
        raise UnsafeDestination(f"the webhook host {host!r} does not resolve")
    addresses = []
    for text in found:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
        reason = refused_reason(address)
        if reason is not None and not allow_private:
            raise UnsafeDestination(
                f"the webhook host {host!r} resolves to a {reason} address ({address}); "
                "set PAPERSHELF_ALERTS_ALLOW_PRIVATE=true to allow it"
            )
        addresses.append(str(address))
    return Destination(url.strip(), scheme, host, port, tuple(addresses))
