"""`daytwo keys` and `daytwo serve` through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from daytwo.cli.main import run

from .live import free_port
from .test_dashboard import csrf_of


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_create_list_revoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "db", "upgrade")[0] == 0
    code, out, _ = cli(capsys, "keys", "create", "--role", "viewer", "--tenant", "acme", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["key"].startswith("dt_")
    code, out, _ = cli(capsys, "keys", "list", "--json")
    listed = json.loads(out)
    assert [k["id"] for k in listed] == [created["id"]]
    assert created["key"] not in out
    assert cli(capsys, "keys", "revoke", created["id"])[0] == 0
    listed = json.loads(cli(capsys, "keys", "list", "--json")[1])
    assert listed[0]["revoked_at"] is not None
    code, out, _ = cli(capsys, "keys", "create", "--role", "admin", "--tenant", "acme", "--json")
    code, _, err = cli(capsys, "keys", "revoke", json.loads(out)["id"])
    assert code == 2
    assert "last admin key of tenant 'acme'" in err
    from daytwo.cli._context import state
    from daytwo.tracing.audit import AuditLog

    ops = [(r.kind, r.subject) for r in AuditLog(state.store()).records()]
    assert ("key.create", created["id"]) in ops
    assert ("key.revoke", created["id"]) in ops


def test_grants_add_list_remove(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "db", "upgrade")[0] == 0
    code, out, _ = cli(capsys, "grants", "add", "tool", "risk_score", "--tenant", "acme", "--json")
    assert code == 0, out
    assert json.loads(out)["tenant"] == "acme"
    listed = json.loads(cli(capsys, "grants", "list", "--json")[1])
    assert [(g["kind"], g["name"], g["tenant"]) for g in listed] == [("tool", "risk_score", "acme")]
    assert cli(capsys, "grants", "remove", "tool", "risk_score", "--tenant", "acme")[0] == 0
    assert json.loads(cli(capsys, "grants", "list", "--json")[1]) == []
    from daytwo.cli._context import state
    from daytwo.tracing.audit import AuditLog

    records = AuditLog(state.store()).records()
    kinds = [(r.kind, r.actor.split(":")[0]) for r in records]
    assert ("grant.add", "operator") in kinds
    assert ("grant.remove", "operator") in kinds
    code, _, err = cli(capsys, "grants", "add", "robot", "x", "--tenant", "acme")
    assert code == 2
    assert "unknown kind 'robot'" in err
    code, _, err = cli(capsys, "grants", "remove", "tool", "x", "--tenant", "acme")
    assert code == 2
    assert "not granted" in err


def test_keys_bad_input_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "db", "upgrade")[0] == 0
    code, _, err = cli(capsys, "keys", "create", "--role", "root")
    assert code == 2
    assert "unknown role 'root'" in err
    assert "Traceback" not in err
    code, _, err = cli(capsys, "keys", "revoke", "nope")
    assert code == 2
    assert "no API key 'nope'" in err


def test_serve_refuses_outdated_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "serve", "--port", str(free_port()))
    assert code == 2
    assert "daytwo db upgrade" in err


def test_serve_refuses_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    assert cli(capsys, "db", "upgrade")[0] == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = cli(capsys, "serve", "--port", str(port))
    assert code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in err


def _wait_healthy(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.communicate()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become healthy")


def own_dbos_schema(env: dict[str, str]) -> dict[str, str]:
    """``env`` with DBOS's schema beside the test's own PostgreSQL schema (``pg_url``
    drops it), unless given: the default ``dbos`` is shared by every test and session
    in database test, whose queued runs any server there could take."""
    url = env.get("DAYTWO_DATABASE_URL", "")
    if "search_path%3D" not in url or "DAYTWO_DBOS_SCHEMA" in env:
        return env
    return {**env, "DAYTWO_DBOS_SCHEMA": url.rsplit("%3D", 1)[1] + "_dbos"}


def start_server(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daytwo", "serve", "--port", str(port), *args],
        env={**os.environ, **own_dbos_schema(env)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
    except BaseException:
        stop_server(proc)
        raise
    return proc, url


def stop_server(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> None:
    """Stop a process started in its own session (Ctrl-C by default), killing it after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _setup_db(env: dict[str, str], tenant: str) -> str:
    full = {**os.environ, **env}
    subprocess.run([sys.executable, "-m", "daytwo", "db", "upgrade"], env=full, check=True)
    args = ["keys", "create", "--role", "admin", "--tenant", tenant, "--json"]
    out = subprocess.run(
        [sys.executable, "-m", "daytwo", *args],
        env=full,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return str(json.loads(out)["key"])


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_over_postgres_act_as_one(pg_url: str) -> None:
    env = {"DAYTWO_DATABASE_URL": pg_url}
    key = _setup_db(env, "acme")
    proc, url = start_server(env, "--workers", "2")
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            # A session opened through one worker is honoured by whichever answers next.
            r = c.post("/login", data={"key": key, "next": "/"}, follow_redirects=False)
            assert r.status_code == 303
            for _ in range(30):
                r = c.get("/api/v1/me")
                assert r.status_code == 200
                assert r.json()["tenant"] == "acme"
            # A key created through the API is usable at once on every worker.
            # A cookie-authenticated write carries the page's CSRF token.
            token = csrf_of(c.get("/runs").text)
            r = c.post("/api/v1/keys", json={"role": "viewer"}, headers={"X-CSRF-Token": token})
            assert r.status_code == 201, r.text
            new = r.json()["key"]
            for _ in range(10):
                r = httpx.get(f"{url}/api/v1/me", headers={"X-API-Key": new})
                assert r.json()["role"] == "viewer"
            _runs_across_workers(url, key, pg_url)
    finally:
        stop_server(proc)


@pytest.mark.slow
def test_serve_dashboard_prints_url_and_first_key(tmp_path: Path) -> None:
    """What `make demo` ends with: a URL, a first admin key, Ctrl-C stops cleanly."""
    env = {**os.environ, "DAYTWO_DATA_DIR": str(tmp_path / "data")}
    subprocess.run([sys.executable, "-m", "daytwo", "db", "upgrade"], env=env, check=True)
    port = free_port()
    code = (
        "from daytwo.settings import load_settings\n"
        "from daytwo.server import serve_dashboard\n"
        f"serve_dashboard(load_settings(), '127.0.0.1', {port})\n"
        "print('stopped', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)  # type: ignore[arg-type]
        with httpx.Client(base_url=url) as c:
            assert c.get("/", follow_redirects=False).headers["location"].startswith("/login")
            assert c.get("/static/app.js").status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert f"dashboard: {url}/" in out
    key = next(w for line in out.splitlines() for w in line.split() if w.startswith("dt_"))
    assert "stopped" in out, err
    assert proc.returncode == 0
    # The printed key logs in.
    from daytwo.server import KeyStore
    from daytwo.settings import Settings
    from daytwo.store import Store

    store = Store.from_settings(Settings(data_dir=tmp_path / "data"))
    try:
        assert KeyStore(store).authenticate(key).role == "admin"
    finally:
        store.dispose()


SCORER = {
    "name": "scorer",
    "steps": [
        {
            "id": "score",
            "kind": "tool",
            "tool": "risk_score",
            "arguments": {"account": "{{ input.account }}"},
        }
    ],
    "output": "score",
}


def _runs_across_workers(url: str, key: str, db_url: str) -> None:
    """Runs started through any worker are seen, with the same state, through every worker."""
    from daytwo.gateway import Gateway
    from daytwo.server.ownership import grant
    from daytwo.store import Store

    from .test_tools_costs_audit import risk_definition

    auth = {"Authorization": f"Bearer {key}"}
    store = Store(db_url)
    try:
        # A python backend: registered by the server operator on the host, shared with
        # the key's tenant (never over the API).
        gateway = Gateway(store)
        gateway.register(risk_definition())
        grant(store, "tool", "risk_score", "acme")
        gateway.create_agent("scorer", ["risk_score"])
    finally:
        store.dispose()
    r = httpx.post(f"{url}/api/v1/agents", json={"spec": SCORER}, headers=auth)
    assert r.status_code == 201, r.text
    started = []
    for i in range(6):  # a new connection each time: the kernel spreads them over workers
        r = httpx.post(
            f"{url}/api/v1/runs",
            json={"agent": "scorer", "inputs": {"account": f"acct-{i}"}},
            headers=auth,
        )
        assert r.status_code == 202, r.text
        started.append(r.json()["id"])
    deadline = time.monotonic() + 60
    done: dict[str, dict[str, object]] = {}
    while len(done) < len(started) and time.monotonic() < deadline:
        for rid in started:
            run = httpx.get(f"{url}/api/v1/runs/{rid}", headers=auth).json()
            if run["status"] in {"succeeded", "failed"}:
                done[rid] = run
        time.sleep(0.2)
    assert {rid: run["status"] for rid, run in done.items()} == dict.fromkeys(started, "succeeded")
    listed = {r["id"] for r in httpx.get(f"{url}/api/v1/runs", headers=auth).json()}
    assert set(started) <= listed


def test_agent_keys_act_for_their_tenant_on_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from daytwo.cli._context import state
    from daytwo.gateway import Gateway
    from daytwo.gateway.samples import register_samples
    from daytwo.server.ownership import claim

    assert cli(capsys, "db", "upgrade")[0] == 0
    store = state.store()
    with Gateway(store) as gw:
        register_samples(gw)
    claim(store, "tool", "orders_status_live", "acme", "tool", exists=False)  # acme's tool
    assert (
        cli(capsys, "grants", "add", "tool", "orders_status_cached", "--tenant", "globex")[0] == 0
    )
    key = {}
    for name, tenant in (("acme-bot", "acme"), ("globex-bot", "globex"), ("host-bot", "default")):
        code, out, err = cli(
            capsys, "tools", "agent-create", name, "--tool", "*", "--tenant", tenant, "--json"
        )
        assert code == 0, err
        key[name] = json.loads(out)["api_key"]
    args = '{"order_id": "A-1001"}'

    def call(tool: str, who: str) -> tuple[int, str, str]:
        return cli(capsys, "tools", "call", tool, "--args", args, "--api-key", key[who], "--json")

    assert call("orders_status_live", "acme-bot")[0] == 0
    assert call("orders_status_cached", "globex-bot")[0] == 0  # granted to globex
    assert call("orders_status_cached", "host-bot")[0] == 0  # made on the host: default's
    for who in ("globex-bot", "host-bot"):
        hidden = call("orders_status_live", who)
        missing = call("orders_status_nope", who)
        assert hidden[0] == missing[0] != 0
        assert "unknown tool 'orders_status_live'" in hidden[2]
        assert hidden[2] == missing[2].replace("orders_status_nope", "orders_status_live")
