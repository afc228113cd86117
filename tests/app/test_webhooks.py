"""Webhook signatures as a receiver checks them, and the SSRF guard on destinations."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.webhooks import UnsafeDestination, resolve_destination, sign, verify


def test_a_receiver_verifies_the_signature_with_the_shared_secret() -> None:
    body = b'{"event":"alert.matches","papers":[]}'
    header = sign("s3cret", body)
    # What any receiver computes, independently of this code.
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert header == f"sha256={expected}"
    assert verify("s3cret", body, header)
    assert not verify("s3cret", body + b" ", header)  # a changed body
    assert not verify("other", body, header)  # another alert's secret


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::1]:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata: link-local
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
    ],
)
def test_private_addresses_are_refused_by_default(url: str) -> None:
    with pytest.raises(UnsafeDestination, match="PAPERSHELF_ALERTS_ALLOW_PRIVATE"):
        resolve_destination(url, allow_private=False)


def test_the_setting_allows_private_addresses() -> None:
    dest = resolve_destination("http://127.0.0.1:8123/hook", allow_private=True)
    assert dest.addresses == ("127.0.0.1",) and dest.port == 8123


def test_a_name_resolving_to_loopback_is_refused() -> None:
    def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("hooks.example.org", 443)
        return ["127.0.0.1"]

    with pytest.raises(UnsafeDestination, match="loopback"):
        resolve_destination("https://hooks.example.org/x", allow_private=False, resolve=resolver)


def test_every_resolved_address_is_checked() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]  # one public, one private: refused

    with pytest.raises(UnsafeDestination, match="private"):
        resolve_destination("https://hooks.example.org/x", allow_private=False, resolve=resolver)
    public = resolve_destination(
        "https://hooks.example.org/x", allow_private=False, resolve=lambda h, p: ["93.184.216.34"]
    )
    assert public.addresses == ("93.184.216.34",)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(UnsafeDestination, match="does not resolve"):
        resolve_destination("https://nowhere.invalid/x", allow_private=False, resolve=resolver)


@pytest.mark.parametrize(
    "url", ["", "javascript:alert(1)", "https://", "http://a b/", "http://x:99999/", "http://x/#f"]
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        resolve_destination(url, allow_private=True, resolve=lambda h, p: ["127.0.0.1"])
