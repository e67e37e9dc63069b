"""REST load: requests per second, p50/p99 latency, errors and connection resets of the agent's
KServe v2 endpoint at 1, 16 and 100 concurrent clients, and the latency REST adds per request
over the in-process path.

The agent runs as its own process (``python -m edge_agent serve``), the load generator in others
(asyncio, raw HTTP/1.1, so the clients are not the bottleneck); closed loop: each client sends its
next request when the previous answer is in. Two client kinds: keep-alive connections, and a new
connection per request (what exposes a short listen backlog as resets).

``--agent-path DIR`` serves with the ``edge_agent`` found in DIR (e.g. an older checkout, for a
before/after comparison); the default is this checkout.

Run: ``.venv/bin/python benchmarks/rest_load.py [--quick] [--seconds 5] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CLIENTS = (1, 16, 100)


# -- the load generator (runs in worker processes) ----------------------------------------------
async def _client(host, port, request, stop_at, keep_alive, out) -> None:
    reader = writer = None
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if not keep_alive:
                writer.close()
                writer = None
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
            out["resets"] += 1
            out["last_error"] = repr(exc)
            writer = None
            continue
        except OSError as exc:
            out["errors"] += 1
            out["last_error"] = repr(exc)
            writer = None
            continue
        if status == 200:
            out["latencies"].append(time.perf_counter() - t0)
        else:
            out["errors"] += 1
            out["last_error"] = f"HTTP {status}"
    if writer is not None:
        writer.close()


def _worker(host, port, request, clients, seconds, keep_alive, queue) -> None:
    out = {"latencies": [], "errors": 0, "resets": 0, "last_error": None}

    async def run() -> None:
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(
            *(_client(host, port, request, stop_at, keep_alive, out) for _ in range(clients))
        )

    asyncio.run(run())
    queue.put(out)


def load(address, request: bytes, clients: int, seconds: float, keep_alive: bool) -> dict:
    processes = min(clients, max(1, (os.cpu_count() or 2) - 1), 4)
    share = [clients // processes + (i < clients % processes) for i in range(processes)]
    queue: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=_worker, args=(*address, request, n, seconds, keep_alive, queue))
        for n in share
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    lat = sorted(x for r in results for x in r["latencies"])
    n = len(lat)
    return {
        "clients": clients,
        "connections": "keep-alive" if keep_alive else "new per request",
        "requests": n,
        "rps": n / seconds,
        "p50_ms": lat[n // 2] * 1e3 if n else None,
        "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1e3 if n else None,
        "errors": sum(r["errors"] for r in results),
        "resets": sum(r["resets"] for r in results),
        "last_error": next((r["last_error"] for r in results if r["last_error"]), None),
        "wall_s": wall,
    }


# -- the server under test -----------------------------------------------------------------------
class Served:
    def __init__(self, bundle: Path, agent_path: Path, tmp: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "serve", "--bundle", str(bundle), "--port", "0",
             "--transport", "none", "--outbox", str(tmp / "outbox.sqlite")],
            cwd=tmp, env={**os.environ, "PYTHONPATH": str(agent_path)},
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        ready = threading.Event()
        self.lines: list[str] = []

        def read() -> None:
            for line in self.proc.stderr:
                self.lines.append(line)
                if "edge-agent ready" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120):
            raise SystemExit("the agent did not start:\n" + "".join(self.lines))
        url = next(x for x in self.lines if "edge-agent ready" in x).split("rest=")[1].split()[0]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.address = (host, int(port))

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def in_process_latency(bundle: Path, x: np.ndarray, n: int) -> float:
    from edge_agent.config import AgentConfig
    from edge_agent.serving import model as model_mod
    from edge_agent.serving.engine import Engine

    engine = Engine(AgentConfig(bundle=str(bundle)), model_mod.load(bundle))
    samples = []
    for i in range(n + 50):
        t = time.perf_counter()
        engine.infer({"input": x})
        if i >= 50:
            samples.append(time.perf_counter() - t)
    engine.close()
    return statistics.median(samples) * 1e3


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per point (proves the script)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per point")
    parser.add_argument("--agent-path", type=Path, default=ROOT, help="where edge_agent is")
    parser.add_argument("--label", default=None, help="name of this run in the output")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    from agent_perf import make_bundle  # the ~1 MB MLP of the agent benchmark

    with tempfile.TemporaryDirectory(prefix="edgekit-rest-load-") as tmp_name:
        tmp = Path(tmp_name)
        bundle = make_bundle(tmp)
        name = json.loads((bundle / "manifest.json").read_text())["name"]
        x = np.random.default_rng(2).standard_normal((1, 256)).astype(np.float32)
        body = json.dumps(
            {"inputs": [{"name": "input", "shape": [1, 256], "datatype": "FP32",
                         "data": x.ravel().tolist()}]}
        ).encode()  # fmt: skip
        request = (
            f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        server = Served(bundle, args.agent_path.resolve(), tmp)
        points = []
        try:
            load(server.address, request, 4, min(seconds, 1.0), True)  # warm-up
            for clients in CLIENTS:
                points.append(load(server.address, request, clients, seconds, True))
                print(json.dumps(points[-1]), flush=True)
            points.append(load(server.address, request, 100, seconds, False))
            print(json.dumps(points[-1]), flush=True)
        finally:
            server.close()
        local_ms = in_process_latency(bundle, x, 2000 if not args.quick else 300)
    one = points[0]
    result = {
        "label": args.label or str(args.agent_path),
        "machine": machine(),
        "seconds_per_point": seconds,
        "points": points,
        "in_process_p50_ms": local_ms,
        "rest_p50_ms": one["p50_ms"],
        "rest_added_p50_ms": one["p50_ms"] - local_ms if one["p50_ms"] else None,
    }
    print()
    print(f"{result['label']} — {result['machine']}")
    print("| clients | connections | req/s | p50 ms | p99 ms | errors | resets |")
    print("|---|---|---|---|---|---|---|")
    for p in points:
        print(
            f"| {p['clients']} | {p['connections']} | {p['rps']:.0f} | {p['p50_ms']:.2f} | "
            f"{p['p99_ms']:.2f} | {p['errors']} | {p['resets']} |"
        )
    print(
        f"REST added latency (1 client, p50): {result['rest_added_p50_ms']:.3f} ms "
        f"(REST {one['p50_ms']:.3f} ms, in-process {local_ms:.3f} ms)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
