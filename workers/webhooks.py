"""POSTing an alert's webhook: signed, to the address the SSRF guard checked, no redirects,
retried with the same policy as every upstream call (workers.arxiv: the transient errors,
429/5xx with Retry-After, `arxiv_max_attempts`, `upstream_wait`)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime

import httpx

from app import __version__
from app.settings import Settings
from app.webhooks import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Destination,
    Resolver,
    resolve_destination,
    sign,
    system_resolver,
)
from workers import stopping
from workers.arxiv import TRANSIENT, RetryableStatus, upstream_wait
from workers.retrying import Sleep, call_with_retries, log_before_sleep, parse_retry_after

log = logging.getLogger(__name__)


class WebhookRefused(Exception):
    """The receiver answered a status that retrying will not change (4xx, or a redirect,
    which is never followed)."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(status, url)
        self.status = status
        self.url = url

    def __str__(self) -> str:
        return f"the webhook answered HTTP {self.status}"


class DeliveryFailed(Exception):
    """Every attempt failed (or the receiver refused): why, and after how many attempts."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason, attempts)
        self.reason = reason
        self.attempts = attempts

    def __str__(self) -> str:
        return f"{self.reason} (after {self.attempts} attempt(s))"


# What ends a delivery as failed: the upstream transient errors once retries ran out, a
# refusal, and any other transport failure.
FAILURES: tuple[type[BaseException], ...] = (*TRANSIENT, WebhookRefused, httpx.HTTPError)


@dataclass(frozen=True, slots=True)
class Sent:
    status: int
    attempts: int


def make_webhook_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers={"User-Agent": f"Papershelf/{__version__} (alerts)"},
        timeout=httpx.Timeout(settings.arxiv_timeout),
        follow_redirects=False,
        trust_env=False,  # a proxy would connect to the name, not the checked address
    )


def _pinned(destination: Destination, body: bytes, headers: dict[str, str]) -> httpx.Request:
    """A request to the checked address itself; the name goes in Host (and TLS's SNI, which
    the certificate is verified against)."""
    address = destination.addresses[0]
    url = httpx.URL(destination.url)
    host_header = url.netloc.decode("ascii").rsplit("@", 1)[-1]
    ip = ipaddress.ip_address(address)
    request = httpx.Request(
        "POST",
        url.copy_with(host=str(ip)),
        content=body,
        headers={**headers, "Host": host_header},
        extensions={"sni_hostname": destination.host} if destination.scheme == "https" else {},
    )
    return request


async def check_destination(
    url: str, settings: Settings, resolve: Resolver = system_resolver
) -> Destination:
    """The SSRF guard, off the event loop (resolving a name blocks)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None,
        lambda: resolve_destination(
            url, allow_private=settings.alerts_allow_private, resolve=resolve
        ),
    )


async def post_signed(
    http: httpx.AsyncClient,
    destination: Destination,
    body: bytes,
    *,
    secret: str,
    sent_at: datetime,
    settings: Settings,
    event: str = "alert.matches",
    sleep: Sleep = stopping.sleep,
) -> Sent:
    """POST `body` signed with `secret`; raises WebhookRefused, or the last transient error
    when every attempt failed."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        TIMESTAMP_HEADER: str(int(sent_at.timestamp())),
        EVENT_HEADER: event,
    }
    attempts = 0

    async def attempt(n: int) -> Sent:
        nonlocal attempts
        attempts = n
        response = await http.send(_pinned(destination, body, headers), follow_redirects=False)
        await response.aclose()
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetryableStatus(
                status, destination.url, parse_retry_after(response.headers.get("Retry-After"))
            )
        if not 200 <= status < 300:
            raise WebhookRefused(status, destination.url)
        return Sent(status, n)

    try:
        return await call_with_retries(
            attempt,
            transient=TRANSIENT,
            attempts=settings.arxiv_max_attempts,
            wait=upstream_wait(settings),
            before_sleep=log_before_sleep(
                log, f"webhook POST {destination.url}", settings.arxiv_max_attempts, _describe
            ),
            sleep=sleep,
        )
    except FAILURES as exc:
        raise DeliveryFailed(_describe(exc), attempts) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, RetryableStatus | WebhookRefused):
        return f"HTTP {exc.status}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
