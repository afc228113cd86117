"""`papershelf alerts add/list/remove/test/redeliver`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.settings import get_settings
from app.webhooks import SIGNATURE_HEADER, verify
from tests.workers.test_alert_jobs import Receiver


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PAPERSHELF_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PAPERSHELF_DATABASE_URL", raising=False)
    monkeypatch.setenv("PAPERSHELF_ALERTS_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("PAPERSHELF_ARXIV_MAX_BACKOFF", "0.01")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_add_list_test_remove(env: Path) -> None:
    with Receiver([503]) as receiver:
        added = run(
            "alerts",
            "add",
            "Diffusion",
            "--webhook",
            receiver.url,
            "-q",
            "diffusion",
            "-c",
            "cs.LG",
            "--no-crosslists",
            "--json",
        )
        assert added.exit_code == 0, added.output
        alert = json.loads(added.stdout)
        assert alert["category"] == "cs.LG" and alert["include_crosslists"] is False

        listed = run("alerts", "list", "--json")
        assert [a["name"] for a in json.loads(listed.stdout)] == ["Diffusion"]
        assert alert["secret"] not in listed.stdout

        tested = run("alerts", "test", str(alert["id"]))
        assert tested.exit_code == 0, tested.output
        assert "HTTP 200" in tested.stdout
        assert len(receiver.posts) == 2  # 503, then retried
        headers, body = receiver.posts[-1]
        assert verify(alert["secret"], body, headers[SIGNATURE_HEADER])
        assert json.loads(body)["event"] == "alert.test"

    assert run("alerts", "remove", str(alert["id"])).exit_code == 0
    assert json.loads(run("alerts", "list", "--json").stdout) == []


def test_errors_exit_1_with_the_reason(env: Path) -> None:
    bad = CliRunner().invoke(cli, ["alerts", "add", "x", "--webhook", "ftp://h/x", "-q", "a"])
    assert bad.exit_code == 1 and "http:// or https://" in bad.output
    assert CliRunner().invoke(cli, ["alerts", "remove", "42"]).exit_code == 1
    missing = CliRunner().invoke(cli, ["alerts", "test", "42"])
    assert missing.exit_code == 1 and "no alert with id 42" in missing.output


def test_redeliver_queues_failed_deliveries_or_says_they_stay_due(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.app.web.test_admin_fetch import REDIS_URL, queued
    from tests.app.web.test_alerts_api import failed_delivery

    monkeypatch.delenv("PAPERSHELF_REDIS_URL", raising=False)
    get_settings.cache_clear()
    added = run("alerts", "add", "D", "--webhook", "http://127.0.0.1:9/h", "-q", "x", "--json")
    alert_id = json.loads(added.stdout)["id"]
    pk = failed_delivery(get_settings(), alert_id)
    # No Redis configured: nothing can be queued, and the delivery stays due.
    no_queue = CliRunner().invoke(cli, ["alerts", "redeliver", str(alert_id)])
    assert no_queue.exit_code == 1 and f"deliveries {pk} are due again" in no_queue.output
    queue = f"papershelf-test:fetch:{uuid.uuid4().hex}"
    monkeypatch.setenv("PAPERSHELF_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("PAPERSHELF_FETCH_QUEUE", queue)
    get_settings.cache_clear()
    sent = run("alerts", "redeliver", str(alert_id), "--delivery", str(pk))
    assert sent.exit_code == 0 and f"queued deliveries {pk}" in sent.stdout
    assert queued(queue) == 1
    nothing = run("alerts", "redeliver", str(alert_id))  # pending now
    assert nothing.exit_code == 0 and "no failed delivery" in nothing.stdout
    other = CliRunner().invoke(cli, ["alerts", "redeliver", str(alert_id), "--delivery", "999"])
    assert other.exit_code == 1 and "has no delivery with id 999" in other.output
