"""/api/v1/admin/alerts: the admin token, clear 4xx on bad input, the secret shown once."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOOK = "http://127.0.0.1:9/hook"


def make(site_settings: Callable[..., Settings], **env: str) -> Iterator[TestClient]:
    site_settings(**env)
    from app.main import create_app

    app = create_app()  # this test's settings: its own rate limits and caches

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


# --- sending failed deliveries again --------------------------------------------------------


def failed_delivery(settings: Settings, alert_id: int, category: str = "cs.CL") -> int:
    """A delivery whose rounds all failed (no retry scheduled any more)."""
    from datetime import UTC, date, datetime

    from app import alerts
    from app.db.engine import make_engine

    engine = make_engine(settings.database_url_resolved)
    try:
        with engine.begin() as conn:
            return int(
                conn.execute(
                    alerts.deliveries.insert()
                    .values(
                        alert_id=alert_id,
                        category=category,
                        day=date(2026, 7, 1),
                        arxiv_ids=["2607.00001"],
                        status="failed",
                        attempts=30,
                        rounds=6,
                        last_error="HTTP 503 (after 5 attempt(s))",
                        created_at=datetime.now(UTC),
                    )
                    .returning(alerts.deliveries.c.pk)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_redeliver_queues_failed_deliveries_for_the_fetch_pool(
    site_settings: Callable[..., Settings],
) -> None:
    from tests.app.web.test_admin_fetch import REDIS_URL, queued

    queue = f"papershelf-test:fetch:{uuid.uuid4().hex}"
    for client in make(
        site_settings,
        ADMIN_TOKEN=TOKEN,
        ALERTS_ALLOW_PRIVATE="true",
        REDIS_URL=REDIS_URL,
        FETCH_QUEUE=queue,
    ):
        from app.settings import get_settings

        body = {"name": "a", "query": "diffusion", "webhook_url": HOOK}
        alert = client.post("/api/v1/admin/alerts", headers=AUTH, json=body).json()
        url = f"/api/v1/admin/alerts/{alert['id']}/redeliver"
        assert client.post(url).status_code == 401
        first = failed_delivery(get_settings(), alert["id"])
        second = failed_delivery(get_settings(), alert["id"], "cs.LG")
        one = client.post(url, headers=AUTH, json={"delivery": first})
        assert one.status_code == 202 and one.json() == {"queued": [first]}
        rest = client.post(url, headers=AUTH)
        assert rest.status_code == 202 and rest.json() == {"queued": [second]}
        assert queued(queue) == 2
        again = client.post(url, headers=AUTH)  # both pending now: nothing to send again
        assert again.status_code == 202 and again.json() == {"queued": []}
        deliveries = client.get(f"/api/v1/admin/alerts/{alert['id']}", headers=AUTH).json()
        assert {d["status"] for d in deliveries["deliveries"]} == {"pending"}
        assert {d["rounds"] for d in deliveries["deliveries"]} == {6}
        for bad, status in (
            ("/api/v1/admin/alerts/999/redeliver", 404),
            (url, 422),
        ):
            payload = {"delivery": 0} if status == 422 else None
            r = client.post(bad, headers=AUTH, json=payload)
            assert r.status_code == status, r.text
        foreign = client.post(url, headers=AUTH, json={"delivery": 10**9})
        assert (
            foreign.status_code == 404 and "has no delivery" in foreign.json()["error"]["message"]
        )


def test_redeliver_without_a_queue_leaves_the_deliveries_due(client: TestClient) -> None:
    from app.settings import get_settings

    body = {"name": "a", "query": "diffusion", "webhook_url": HOOK}
    alert = client.post("/api/v1/admin/alerts", headers=AUTH, json=body).json()
    pk = failed_delivery(get_settings(), alert["id"])
    r = client.post(f"/api/v1/admin/alerts/{alert['id']}/redeliver", headers=AUTH)
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_queue"
    assert f"deliveries [{pk}] are due again" in r.json()["error"]["message"]
    [delivery] = client.get(f"/api/v1/admin/alerts/{alert['id']}", headers=AUTH).json()[
        "deliveries"
    ]
    assert delivery["status"] == "failed" and delivery["retry_at"] is not None
