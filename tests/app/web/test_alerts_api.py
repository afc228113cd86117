"""/api/v1/admin/alerts: the admin token, clear 4xx on bad input, the secret shown once."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOOK = "http://127.0.0.1:9/hook"


def make(site_settings: Callable[..., Settings], **env: str) -> Iterator[TestClient]:
    site_settings(**env)
    from app.main import app

    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(site_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from make(site_settings, ADMIN_TOKEN=TOKEN, ALERTS_ALLOW_PRIVATE="true")


def test_every_route_needs_the_token(client: TestClient) -> None:
    body = {"name": "a", "query": "diffusion", "webhook_url": HOOK}
    for method, url in (
        ("GET", "/api/v1/admin/alerts"),
        ("POST", "/api/v1/admin/alerts"),
        ("GET", "/api/v1/admin/alerts/1"),
        ("DELETE", "/api/v1/admin/alerts/1"),
    ):
        r = client.request(method, url, json=body)
        assert r.status_code == 401, (method, url)
        assert r.json()["error"]["code"] == "unauthorized"
        wrong = client.request(method, url, json=body, headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401


def test_create_list_read_delete(client: TestClient) -> None:
    r = client.post(
        "/api/v1/admin/alerts",
        headers=AUTH,
        json={
            "name": "Diffusion in LG",
            "query": 'ti:diffusion -"survey"',
            "category": "cs.lg",
            "webhook_url": HOOK,
            "include_crosslists": False,
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["category"] == "cs.LG" and created["include_crosslists"] is False
    secret = created.pop("secret")
    assert len(secret) >= 32
    listed = client.get("/api/v1/admin/alerts", headers=AUTH).json()["alerts"]
    assert listed == [created]
    assert secret not in client.get("/api/v1/admin/alerts", headers=AUTH).text
    one = client.get(f"/api/v1/admin/alerts/{created['id']}", headers=AUTH)
    assert one.status_code == 200 and one.json()["deliveries"] == []
    assert secret not in one.text
    gone = client.delete(f"/api/v1/admin/alerts/{created['id']}", headers=AUTH)
    assert gone.status_code == 204
    assert client.get("/api/v1/admin/alerts", headers=AUTH).json()["alerts"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"webhook_url": "not a url"}, "webhook URL"),
        ({"webhook_url": "file:///etc/passwd"}, "http:// or https://"),
        ({"query": "-survey"}, "nothing to search for"),
        ({"category": "cs.NOPE"}, "unknown category"),
        ({"name": "   "}, "name"),
    ],
)
def test_bad_input_is_a_400_that_says_why(
    client: TestClient, body: dict[str, str], message: str
) -> None:
    full = {"name": "a", "query": "diffusion", "webhook_url": HOOK, **body}
    r = client.post("/api/v1/admin/alerts", headers=AUTH, json=full)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]


def test_malformed_bodies_and_ids_are_4xx(client: TestClient) -> None:
    r = client.post("/api/v1/admin/alerts", headers=AUTH, json={"name": "a", "extra": 1})
    assert r.status_code == 422
    for bad in ("0", "abc", str(2**70)):
        assert client.get(f"/api/v1/admin/alerts/{bad}", headers=AUTH).status_code == 422
    r = client.get("/api/v1/admin/alerts/12345", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.delete("/api/v1/admin/alerts/12345", headers=AUTH).status_code == 404


def test_private_webhooks_are_refused_unless_allowed(
    site_settings: Callable[..., Settings],
) -> None:
    for client in make(site_settings, ADMIN_TOKEN=TOKEN):
        r = client.post(
            "/api/v1/admin/alerts",
            headers=AUTH,
            json={"name": "a", "query": "x", "webhook_url": "http://10.0.0.5/hook"},
        )
        assert r.status_code == 400
        assert "private" in r.json()["error"]["message"]
