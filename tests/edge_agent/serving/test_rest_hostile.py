"""The REST server under hostile and careless clients, against `python -m edge_agent serve` in its
own process (its threads and memory are measured there): every request gets an HTTP answer,
stalled clients are closed at the request deadline and hold no threads, parallel big bodies stay
within the in-flight byte cap, 100 concurrent clients see no resets, early disconnects log one
debug line, a port in use is a one-line error."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from agent_helpers import config, kserve_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent import cli
from edge_agent.contracts.bundle import Bundle
from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Engine
from edge_agent.serving.rest import RestServer

ROOT = Path(__file__).resolve().parents[3]


class Served:
    def __init__(self, proc: subprocess.Popen, lines: list[str], address: tuple[str, int]):
        self.proc, self.lines, self.address = proc, lines, address

    def status(self, key: str) -> int:
        """A number from /proc/<pid>/status (Threads, VmHWM in kB, ...)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def post(self, path: str, body: bytes, timeout: float = 30) -> tuple[int, bytes, dict]:
        conn = http.client.HTTPConnection(*self.address, timeout=timeout)
        try:
            conn.request("POST", path, body=body)
            resp = conn.getresponse()
            return resp.status, resp.read(), dict(resp.getheaders())
        finally:
            conn.close()


@contextlib.contextmanager
def serve(
    bundle: Path, tmp_path: Path, settings_: dict | None = None, *flags: str
) -> Iterator[Served]:
    cfg = tmp_path / "agent.json"
    cfg.write_text(json.dumps(settings_ or {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", *flags, "serve", "--bundle", str(bundle), "--port", "0",
         "--transport", "none", "--outbox", str(tmp_path / "o.sqlite"), "--config", str(cfg)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "edge-agent ready" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(60), "".join(lines)
        url = next(ln for ln in lines if "edge-agent ready" in ln).split("rest=")[1].split()[0]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield Served(proc, lines, (host, int(port)))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _name(bundle: Path) -> str:
    return Bundle.open(bundle).manifest["name"]


def _infer_body(rows: int = 1) -> bytes:
    return json.dumps(kserve_body({"input": np.zeros((rows, 1, 8, 8), dtype=np.float32)})).encode()


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def test_600_stalled_clients_hold_no_threads_and_are_closed_at_the_deadline(cnn_bundle, tmp_path):
    _raise_fd_limit(4096)  # the server inherits it
    timeout_s = 2.0
    with serve(
        cnn_bundle, tmp_path, {"rest_request_timeout_s": timeout_s, "rest_max_connections": 1000}
    ) as srv:
        path = f"/v2/models/{_name(cnn_bundle)}/infer"
        assert srv.post(path, _infer_body())[0] == 200
        threads_before = srv.status("Threads")
        stalled = []
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode()
        for _ in range(600):
            sock = socket.create_connection(srv.address, timeout=10)
            sock.sendall(head + b'{"inputs": [')  # and then nothing more
            stalled.append(sock)
        opened = time.monotonic()
        # while they stall: the server still answers, on the same few threads
        assert srv.post(path, _infer_body())[0] == 200
        assert srv.status("Threads") <= threads_before + 2
        selector = selectors.DefaultSelector()
        for sock in stalled:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        answers: dict[socket.socket, bytes] = {}
        closed = 0
        deadline = time.monotonic() + 60
        while closed < len(stalled) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                sock = key.fileobj
                try:
                    data = sock.recv(4096)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if data:
                    answers[sock] = answers.get(sock, b"") + data
                    continue
                selector.unregister(sock)
                sock.close()
                closed += 1
        elapsed = time.monotonic() - opened
        assert closed == 600, f"{600 - closed} stalled connections still open after {elapsed:.0f} s"
        assert elapsed >= timeout_s * 0.9
        timed_out = [a for a in answers.values() if a.startswith(b"HTTP/1.1 408")]
        assert len(timed_out) == 600, {a[:40] for a in answers.values()}
        assert srv.post(path, _infer_body())[0] == 200


def test_20_parallel_32mb_bodies_stay_under_the_in_flight_cap(cnn_bundle, tmp_path):
    """32 MiB bodies at the default caps (32 MiB a body, 64 MiB in flight): the rest get 503
    with Retry-After, and the server's peak memory grows by a bounded amount (the stdlib server
    grew by ~550 MB here)."""
    with serve(cnn_bundle, tmp_path) as srv:
        path = f"/v2/models/{_name(cnn_bundle)}/infer"
        assert srv.post(path, _infer_body())[0] == 200
        peak_before = srv.status("VmHWM") * 1024
        size = 32 * 2**20 - 4096
        body = b'{"inputs": [], "pad": "' + b"x" * (size - 30) + b'"}'
        results: list[tuple[int, dict] | Exception] = []
        barrier = threading.Barrier(20)

        def send() -> None:
            barrier.wait()
            try:
                status, _, headers = srv.post(path, body, timeout=120)
                results.append((status, headers))
            except Exception as exc:  # a reset or a broken pipe fails the test
                results.append(exc)

        workers = [threading.Thread(target=send) for _ in range(20)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(180)
        errors = [r for r in results if isinstance(r, Exception)]
        assert not errors and len(results) == 20, errors
        statuses = sorted(r[0] for r in results)
        assert set(statuses) <= {400, 503}, statuses
        busy = [h for s, h in results if s == 503]
        assert busy and all(h.get("retry-after") == "1" for h in busy)
        grown = srv.status("VmHWM") * 1024 - peak_before
        assert grown < 256 * 2**20, f"peak memory grew by {grown / 2**20:.0f} MiB"


def test_100_concurrent_clients_no_resets_no_errors(cnn_bundle, tmp_path):
    with serve(cnn_bundle, tmp_path) as srv:
        path = f"/v2/models/{_name(cnn_bundle)}/infer"
        body = _infer_body()
        failures: list[str] = []
        barrier = threading.Barrier(100)

        def client(i: int) -> None:
            barrier.wait()
            try:
                for _ in range(4):  # a new connection each time: the listen backlog matters
                    status, data, _ = srv.post(path, body)
                    if status != 200:
                        failures.append(f"{status} {data[:80]!r}")
                conn = http.client.HTTPConnection(*srv.address, timeout=30)
                for _ in range(4):  # and keep-alive
                    conn.request("POST", path, body=body)
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        failures.append(str(resp.status))
                conn.close()
            except Exception as exc:
                failures.append(repr(exc))

        workers = [threading.Thread(target=client, args=(i,)) for i in range(100)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(300)
        assert failures == []


def test_early_disconnects_log_one_debug_line_and_no_traceback(cnn_bundle, tmp_path):
    with serve(cnn_bundle, tmp_path, None, "-v") as srv:
        path = f"/v2/models/{_name(cnn_bundle)}/infer"
        body = _infer_body(8)
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        for i in range(40):
            with socket.create_connection(srv.address, timeout=10) as sock:
                # half the body then gone, or the whole request then gone before the answer
                sock.sendall(head + (body[: len(body) // 2] if i % 2 else body))
        for _ in range(20):  # not HTTP at all: a 400 each, and nothing in the log
            with socket.create_connection(srv.address, timeout=10) as sock:
                sock.sendall(b"\x16\x03\x01 not http\r\n\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 400")
        assert srv.post(path, _infer_body())[0] == 200
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) == 0
    text = "".join(srv.lines)
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
    assert " WARNING " not in text, text[-3000:]
    left = [ln for ln in srv.lines if "left before sending its whole request" in ln]
    assert 1 <= len(left) <= 20 and all(" DEBUG " in ln for ln in left)


def test_port_in_use_is_one_line_exit_2(cnn_bundle, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "edge_agent", "serve", "--bundle", str(cnn_bundle),
             "--port", str(port), "--transport", "none"],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"port {port}" in errors[0] and "--port" in errors[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_token_from_file_or_environment(tmp_path, monkeypatch):
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    parse = cli._parser().parse_args
    assert cli.build_config(parse(["serve", "--token-file", str(secret)]), {}).token == "from-file"
    env = {cli.TOKEN_ENV: "from-env"}
    assert cli.build_config(parse(["serve"]), env).token == "from-env"
    assert cli.build_config(parse(["serve", "--token", "flag"]), env).token == "flag"
    assert cli.build_config(parse(["serve", "--token-file", str(secret)]), env).token == "from-file"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(Exception, match="token file .* is empty"):
        cli.build_config(parse(["serve", "--token-file", str(empty)]), {})
    with pytest.raises(Exception, match="cannot read the token file"):
        cli.build_config(parse(["serve", "--token-file", str(tmp_path / "nope")]), {})
    # `--token-file /dev/zero` (or any huge file) read until MemoryError (found by tryhostile)
    with pytest.raises(Exception, match="holds more than 65,536 bytes"):
        cli.build_config(parse(["serve", "--token-file", "/dev/zero"]), {})


# -- every request gets an HTTP answer: hypothesis over the request space ----------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=30,
)
shapes = st.lists(st.integers(-2, 9), max_size=6) | st.lists(st.just(1), min_size=60, max_size=70)
tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["input", "x"]) | json_values,
        "shape": shapes | json_values,
        "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL", "FP16", "BF16"]),
        "data": st.lists(st.floats() | st.integers(-(2**70), 2**70), max_size=80) | json_values,
        "parameters": st.fixed_dictionaries(
            {"binary_data_size": st.integers(-1, 300) | json_values}
        )
        | json_values,
    },
)
requests_ = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.lists(tensors, max_size=3) | json_values,
        "outputs": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["logits", "z"])}), max_size=2
        )
        | json_values,
        "parameters": st.fixed_dictionaries({"binary_data_output": st.booleans()}) | json_values,
        "id": json_values,
    },
)


@pytest.fixture(scope="module")
def fuzz_server(cnn_bundle, tmp_path_factory):
    engine = Engine(
        config(cnn_bundle, tmp_path_factory.mktemp("fz"), max_batch=8), model_mod.load(cnn_bundle)
    )
    server = RestServer(engine, "127.0.0.1", 0, None, 256 * 1024)
    server.start()
    yield server, engine
    server.stop()
    engine.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=requests_ | json_values,
    tail=st.binary(max_size=300),
    header_length=st.none()
    | st.just("exact")
    | st.integers(-5, 400).map(str)
    | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=4),
    encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity"]),
    path=st.sampled_from(["/infer", "/versions/fp32/infer", "/versions/x/infer", "/feedback"]),
)
def test_every_request_gets_an_http_answer(fuzz_server, body, tail, header_length, encoding, path):
    server, engine = fuzz_server
    head = json.dumps(body).encode()
    raw = head + tail if header_length is not None else head
    headers = {"Content-Type": "application/json"}
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = (
            str(len(head)) if header_length == "exact" else header_length
        )
    if encoding is not None:
        headers["Content-Encoding"] = encoding
        if encoding == "gzip":
            raw = gzip.compress(raw)
    conn = http.client.HTTPConnection(*server.address, timeout=30)
    conn.request("POST", f"/v2/models/{engine.model.name}{path}", body=raw, headers=headers)
    resp = conn.getresponse()  # a dropped connection raises here and fails the example
    data = resp.read()
    conn.close()
    assert resp.status in (200, 400, 404, 413, 415), (resp.status, data[:300])
    assert resp.status == 200 or json.loads(data)["error"]


def test_65_dimensions_get_a_400_over_http(fuzz_server):
    server, engine = fuzz_server
    body = {"inputs": [{"name": "input", "shape": [1] * 65, "datatype": "FP32", "data": [0.5]}]}
    conn = http.client.HTTPConnection(*server.address, timeout=30)
    conn.request("POST", f"/v2/models/{engine.model.name}/infer", body=json.dumps(body))
    resp = conn.getresponse()
    assert resp.status == 400 and b"rank 65" in resp.read()
