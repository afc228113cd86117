"""docker-compose.yml and the Dockerfile checked without Docker: every service can start
(an image or a build; every `papershelf` command and option exists and parses), health
checks where the README promises them (and a worker's really tells a running worker from a
stopped one), volumes declared, dependencies that exist, and the environment each process
gets: what it needs, the same shared settings everywhere, and the operator's values
reaching it. Compose's `${VAR:-default}` interpolation is applied as Compose does."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import typer
import yaml

from app.cli import cli
from app.settings import Settings
from tests.conftest import need
from tests.fakes.arxiv_server import FakeArxiv
from tests.workers.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
# What an operator sets (the file demands the first two) and what the checks expect back.
OPERATOR = {
    "PAPERSHELF_ADMIN_TOKEN": "admin-token",
    "PAPERSHELF_ARXIV_CONTACT": "ops@papers.example.org",
    "PAPERSHELF_PUBLIC_URL": "https://papers.example.org",
    "PAPERSHELF_TRUSTED_PROXIES": "10.0.0.0/8",
    "PAPERSHELF_LLM_BASE_URL": "http://llm.internal:8000/v1",
    "PAPERSHELF_LLM_MODEL": "qwen2.5:7b",
    "PAPERSHELF_LLM_API_KEY": "llm-key",
}
REQUIRED = {"PAPERSHELF_ADMIN_TOKEN", "PAPERSHELF_ARXIV_CONTACT"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# The README (Scaling out) promises health checks for these; every long-running Papershelf
# process has one as well.
README_HEALTHCHECKS = {"postgres", "redis", "web", "fetch-worker"}
# Settings every Papershelf process of one deployment must agree on: the store, the queues
# and their keys, the data volume's paths (the fetch pool queues TL;DRs when the summarizer
# checkpoint is where the ML pool loads it), the FAQ's model (answers are keyed by it).
SHARED = (
    "database_url",
    "redis_url",
    "data_dir",
    "categories",
    "admin_token",
    "secret_key",
    "arxiv_contact",
    "fetch_queue",
    "ml_queue",
    "llm_queue",
    "summarizer_path_resolved",
    "llm_base_url",
    "llm_model",
)


# --- Compose's interpolation ----------------------------------------------------------------


class MissingVariable(Exception):
    pass


_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_]\w*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """`$VAR`, `${VAR}`, `${VAR:-default}`/`-`, `${VAR:?error}`/`?`, `${VAR:+alt}`/`+`, `$$`."""

    def resolve(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("plain"):
            return env.get(m.group("plain"), "")
        braced = _BRACED.fullmatch(m.group("braced"))
        assert braced, f"bad reference {m.group(0)!r}"
        name, op, arg = braced.group("name", "op", "arg")
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return env[name] if present else arg
        if op in (":?", "?"):
            if not present:
                raise MissingVariable(f"{name}: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if present else ""
        return env.get(name, "")

    return _REFERENCE.sub(resolve, value)


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolated(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolated(v, env) for k, v in node.items()}
    return node


def load(env: Mapping[str, str] = OPERATOR) -> dict[str, Any]:
    """The file as Compose sees it: YAML merge keys resolved, variables interpolated."""
    raw = yaml.safe_load(COMPOSE.read_text())
    return dict(interpolated(raw, env))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def papershelf_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run this project's image (built from the Dockerfile)."""
    return {name: s for name, s in services.items() if "build" in s}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings the service's processes read: its environment and nothing else."""
    for name in list(os.environ):
        if name.startswith("PAPERSHELF_"):
            monkeypatch.delenv(name)
    for name, value in environment(service).items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


# --- the CLI --------------------------------------------------------------------------------


def parse_command(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Resolve `papershelf …` to its command and parse its options as the CLI would (unknown
    commands or options, bad values and missing required ones fail); nothing runs."""
    assert argv[0] == "papershelf", f"not a papershelf command: {argv}"
    command = typer.main.get_command(cli)
    args, path = list(argv[1:]), []
    while hasattr(command, "commands"):  # a group: the next word names a subcommand
        assert args, f"{argv}: {' '.join(['papershelf', *path])} needs a subcommand"
        name = args.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"{argv}: no command {name!r}"
        command, path = sub, [*path, name]
    try:
        ctx = command.make_context(" ".join(["papershelf", *path]), args)
    except Exception as exc:  # the CLI's usage errors (typer's own copy of click's)
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        pytest.fail(f"{shlex.join(argv)}: {message}")
    return " ".join(path), dict(ctx.params)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command or []]


# --- the file's shape ---------------------------------------------------------------------------


def test_required_variables_are_the_admin_token_and_the_arxiv_contact() -> None:
    for missing in REQUIRED:
        with pytest.raises(MissingVariable, match=missing):
            load({k: v for k, v in OPERATOR.items() if k != missing})
    minimal = load({k: OPERATOR[k] for k in REQUIRED})  # everything else has a default
    assert set(minimal["services"]) >= {"postgres", "redis", "migrate", "web", "fetch-worker"}


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (ROOT / context / (dockerfile or "Dockerfile")).is_file(), name


def test_every_command_exists_with_the_options_it_is_given(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli.serve import _pool_settings
    from app.settings import get_settings

    seen = {}
    for name, service in papershelf_services(services).items():
        verb, params = parse_command(command_of(service))
        seen[name] = verb
        if verb == "worker":
            # The pool exists and can start with this service's environment (the LLM pool
            # refuses without an endpoint; the ML pool needs the ML extra, built in below).
            settings_of(service, monkeypatch)
            get_settings.cache_clear()
            try:
                assert _pool_settings(params["pool"])
            except typer.Exit:
                pytest.fail(f"{name}: `worker --pool {params['pool']}` would not start")
            finally:
                get_settings.cache_clear()
    assert seen == {
        "migrate": "db upgrade",
        "web": "serve",
        "fetch-worker": "worker",
        "ml-worker": "worker",
        "llm-worker": "worker",
    }


def test_the_ml_worker_is_built_with_the_ml_extra(services: dict[str, dict[str, Any]]) -> None:
    build = services["ml-worker"]["build"]
    assert build["args"]["ML"] == "1"
    assert "ARG ML=0" in DOCKERFILE.read_text()
    others = [s["build"] for n, s in papershelf_services(services).items() if n != "ml-worker"]
    assert all(b == "." or "ML" not in b.get("args", {}) for b in others)  # small images


def test_the_web_serves_as_many_processes_as_configured(
    services: dict[str, dict[str, Any]],
) -> None:
    verb, params = parse_command(command_of(services["web"]))
    assert (verb, params["workers"], params["host"], params["port"]) == (
        "serve",
        2,
        "0.0.0.0",
        8000,
    )
    assert params["migrate"] is False  # the migrate service owns the schema
    more = load({**OPERATOR, "PAPERSHELF_WEB_WORKERS": "4"})["services"]["web"]
    assert parse_command(command_of(more))[1]["workers"] == 4
    assert f"{params['port']}:{params['port']}" in services["web"]["ports"]


def test_health_checks(services: dict[str, dict[str, Any]]) -> None:
    long_running = {n for n, s in papershelf_services(services).items() if s.get("restart") != "no"}
    assert README_HEALTHCHECKS | long_running <= {
        n for n, s in services.items() if "healthcheck" in s
    }
    for name, service in services.items():
        check = service.get("healthcheck")
        if not check:
            continue
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), name
        argv = test[1:]
        if argv[0] == "python":
            assert argv[1] == "-c", name
            compile(argv[2], f"{name} healthcheck", "exec")  # a syntax error never passes
        elif argv[0] == "papershelf":
            parse_command(argv)
    port = parse_command(command_of(services["web"]))[1]["port"]
    assert f"http://127.0.0.1:{port}/readyz" in services["web"]["healthcheck"]["test"][-1]


def test_dependencies_exist_with_valid_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec.get("condition", "service_started")
            assert condition in CONDITIONS, f"{name} → {target}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no health check"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is not one-shot"
    # Every process that reads the store waits for the migration.
    for name in papershelf_services(services):
        if name != "migrate":
            assert services[name]["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            ), name


def test_volumes_are_declared_and_hold_the_data_dir(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for mount in service.get("volumes") or []:
            source, target = mount.split(":")[:2]
            assert source in declared, f"{name} mounts {source}, which is not declared"
            assert target.startswith("/"), (name, mount)
    for name, service in papershelf_services(services).items():
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        settings = settings_of(service, monkeypatch)
        assert mounts.get(str(settings.data_dir)) == "papershelf-data", name
        # Checkpoints live on the volume, so they survive a rebuild and every service sees them.
        assert settings.summarizer_path_resolved.is_relative_to(settings.data_dir), name


def test_each_process_gets_the_environment_it_needs(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = papershelf_services(services)
    settings = {name: settings_of(s, monkeypatch) for name, s in mine.items()}
    reference = settings["web"]
    for name, s in settings.items():
        differing = [f for f in SHARED if getattr(s, f) != getattr(reference, f)]
        assert differing == [], f"{name} differs from web in {differing}"

    # The store and Redis are the compose services, with the credentials PostgreSQL is given.
    db, pg = urlsplit(reference.database_url or ""), environment(services["postgres"])
    assert (db.hostname, db.username, db.password, db.path) == (
        "postgres",
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        "/" + pg["POSTGRES_DB"],
    )
    assert urlsplit(reference.redis_url or "").hostname == "redis"

    # What the operator sets reaches the processes that use it.
    assert reference.admin_token == OPERATOR["PAPERSHELF_ADMIN_TOKEN"]
    assert settings["web"].public_url == OPERATOR["PAPERSHELF_PUBLIC_URL"]
    assert settings["web"].trusted_proxies == [OPERATOR["PAPERSHELF_TRUSTED_PROXIES"]]
    for name in ("fetch-worker", "ml-worker"):  # both send requests to arXiv
        assert settings[name].arxiv_contact == OPERATOR["PAPERSHELF_ARXIV_CONTACT"], name
    for name in ("web", "llm-worker"):  # the FAQ: queued and streamed, then written
        assert settings[name].llm_base_url == OPERATOR["PAPERSHELF_LLM_BASE_URL"], name
        assert settings[name].llm_model == OPERATOR["PAPERSHELF_LLM_MODEL"], name
    assert settings["llm-worker"].llm_api_key == OPERATOR["PAPERSHELF_LLM_API_KEY"]
    assert str(settings["ml-worker"].summarizer_path) == "/data/models/summarizer"


def test_unset_optional_variables_leave_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose passes an unset `${VAR:-}` as an empty string: each must read as unset."""
    services = load({k: OPERATOR[k] for k in REQUIRED})["services"]
    web = settings_of(services["web"], monkeypatch)
    assert (web.public_url, web.allowed_hosts, web.trusted_proxies, web.cors_origins) == (
        None,
        [],
        [],
        [],
    )
    assert not web.llm_base_url and not web.secret_key
    assert web.categories == ["cs.AI", "cs.CL", "cs.CV", "cs.LG"]
    ml = settings_of(services["ml-worker"], monkeypatch)
    assert not ml.thumbnail_pdf_url and ml.summarizer_device == "auto"
    assert not settings_of(services["llm-worker"], monkeypatch).llm_api_key


# --- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_dockerfile_copies_what_runs_and_starts_a_command_that_exists() -> None:
    from app.db.migrate import MIGRATIONS
    from app.web.pages.assets import STATIC_DIR
    from app.web.templating import TEMPLATES

    steps = dockerfile_instructions()
    copied: set[str] = set()
    for word, rest in steps:
        if word == "COPY":
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                copied.add(source.rstrip("/"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    read_at_runtime = {
        Path(p).relative_to(ROOT).parts[0]
        for p in (MIGRATIONS, STATIC_DIR, *TEMPLATES.env.loader.searchpath)  # type: ignore[attr-defined]
    }
    wanted = packages | read_at_runtime | {"pyproject.toml", project["project"]["readme"]}
    assert wanted <= copied, f"not copied: {wanted - copied}"
    installs = " ".join(rest for word, rest in steps if word == "RUN")
    for extra in re.findall(r"\.\[(\w+)\]", installs):
        assert extra in project["project"]["optional-dependencies"], extra
    (cmd,) = [rest for word, rest in steps if word == "CMD"]
    verb, params = parse_command(json.loads(cmd))
    assert verb == "serve" and params["host"] == "0.0.0.0"
    (exposed,) = [rest for word, rest in steps if word == "EXPOSE"]
    assert int(exposed) == params["port"]


# --- a worker's health check, run --------------------------------------------------------------


@pytest.fixture
def worker_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        need(False, f"Redis not reachable at {REDIS_URL}: {exc.__class__.__name__}")
    queue = f"papershelf-test:{uuid.uuid4().hex}:fetch"
    with FakeArxiv() as fake:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSHELF_")}
        env.update(
            PAPERSHELF_DATA_DIR=str(tmp_path / "data"),
            PAPERSHELF_REDIS_URL=REDIS_URL,
            PAPERSHELF_FETCH_QUEUE=queue,
            PAPERSHELF_ARXIV_RSS_URL=fake.url,
            PAPERSHELF_ARXIV_API_URL=fake.api_url,
            PAPERSHELF_ARXIV_OAI_URL=fake.oai_url,
            PAPERSHELF_ARXIV_MIN_INTERVAL="0",
        )
        yield env
    with redis.Redis.from_url(REDIS_URL) as client:
        found = list(client.scan_iter(match=f"{queue}*"))
        if found:
            client.delete(*found)


@pytest.mark.slow
def test_the_fetch_workers_health_check_tells_running_from_stopped(
    services: dict[str, dict[str, Any]], worker_env: dict[str, str]
) -> None:
    test = services["fetch-worker"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]

    def healthy() -> bool:
        done = subprocess.run(
            [sys.executable, "-c", test[3]], cwd=ROOT, env=worker_env, timeout=30, check=False
        )
        return done.returncode == 0

    assert not healthy()  # no worker yet
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *command_of(services["fetch-worker"])[1:]],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not healthy():
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(30)
    assert not healthy()  # a clean stop deletes the replica's key
