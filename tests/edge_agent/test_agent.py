"""The agent end to end on the in-process transport: hello and metrics on the right topics,
REST (KServe v2) with a bearer token, atomic swap that refuses a corrupted model, commands."""

from __future__ import annotations

import http.client
import json
import time

import pytest
from agent_helpers import config, kserve_body, sample_feeds

from edge_agent import telemetry
from edge_agent.agent import Agent
from edge_agent.errors import IntegrityError
from edge_agent.schemas import validation_errors
from edge_agent.telemetry.transports.inprocess import Bus, InProcessTransport


@pytest.fixture
def run_agent(tmp_path):
    agents = []

    def start(bundle, bus=None, **changes):
        bus = bus or Bus()
        agent = Agent(config(bundle, tmp_path, **changes), InProcessTransport(bus=bus)).start()
        agents.append(agent)
        return agent, bus

    yield start
    for agent in agents:
        agent.stop(flush_timeout=1)


def _messages(bus, kind=None):
    out = [json.loads(p) for t, p in bus.messages if t.startswith("dt/")]
    return [m for m in out if kind is None or m["type"] == kind]


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _request(agent, method, path, body=None, token=None):
    conn = http.client.HTTPConnection(*agent.rest.address, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    resp = conn.getresponse()
    data = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, data


def test_hello_and_metrics_on_their_topics(run_agent, cnn_bundle):
    agent, bus = run_agent(cnn_bundle, window_s=0.3)
    for _ in range(5):
        agent.engine.infer(sample_feeds(cnn_bundle, 2))
    assert _wait(lambda: len(_messages(bus, "metrics")) >= 2)
    topics = {t for t, _ in bus.messages}
    assert "dt/edgekit/test-thing/hello" in topics and "dt/edgekit/test-thing/metrics" in topics
    messages = _messages(bus)
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    for m in messages:
        assert validation_errors(m, "telemetry") == [], m["type"]
        assert m["model"]["sha256"] == agent.engine.model.sha256
        assert m["component_version"] == "1.2.3"
    hello = messages[0]
    assert hello["type"] == "hello" and hello["body"]["hardware"]["os"]
    assert hello["body"]["bundle"]["selected"] == "fp32"
    first = _messages(bus, "metrics")[0]["body"]
    assert first["requests"]["ok"] == 5 and first["requests"]["rows"] == 10
    assert first["latency_ms"]["count"] == 5


def test_rest_v2_endpoints_and_token(run_agent, cnn_bundle):
    agent, _ = run_agent(cnn_bundle, port=0, token="s3cret")
    name = agent.engine.model.name
    assert _request(agent, "GET", "/v2/health/live") == (200, {"live": True})
    assert _request(agent, "GET", "/v2/health/ready")[0] == 200
    assert _request(agent, "GET", f"/v2/models/{name}")[0] == 401
    status, meta = _request(agent, "GET", f"/v2/models/{name}", token="s3cret")
    assert status == 200 and meta["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}
    ]
    assert _request(agent, "GET", f"/v2/models/{name}/ready", token="s3cret")[0] == 200
    assert _request(agent, "GET", "/v2/models/other", token="s3cret")[0] == 404
    body = kserve_body(sample_feeds(cnn_bundle, 3))
    status, resp = _request(agent, "POST", f"/v2/models/{name}/infer", body, token="s3cret")
    assert status == 200 and resp["outputs"][0]["shape"] == [3, 10] and resp["id"]
    status, fb = _request(
        agent,
        "POST",
        f"/v2/models/{name}/feedback",
        {"inference_id": resp["id"], "labels": [0, 1, 2]},
        "s3cret",
    )
    assert status == 200 and fb["joined"] == 1
    status, err = _request(
        agent, "POST", f"/v2/models/{name}/infer", {"inputs": []}, token="s3cret"
    )
    assert status == 400 and "inputs" in err["error"]
    assert agent.rest.address[0] == "127.0.0.1"


def test_corrupted_swap_is_refused_and_old_model_keeps_serving(run_agent, copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    agent, bus = run_agent(path, window_s=30)
    before = agent.engine.model.sha256
    # a second variant whose file is corrupted after it was registered
    from edge_agent.contracts.bundle import Bundle

    bundle = Bundle.open(path)
    bundle.add_variant("copy", path / "fp32.onnx", {"precision": "fp32"})
    bundle.save()
    data = bytearray((path / "copy.onnx").read_bytes())
    data[100] ^= 0x55
    (path / "copy.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        agent.swap(variant="copy")
    assert agent.engine.model.sha256 == before
    agent.engine.infer(sample_feeds(cnn_bundle, 1))  # still serving
    assert _wait(lambda: _messages(bus, "alerts"))
    alerts = _messages(bus, "alerts")
    assert alerts[-1]["body"]["alerts"][0]["rule"] == "swap_failed"
    # repaired, the swap goes through and the old window leaves with the old digest
    (path / "copy.onnx").write_bytes((path / "fp32.onnx").read_bytes())
    result = agent.swap(variant="copy")
    assert result["to"]["variant"] == "copy" and agent.engine.model.variant == "copy"
    assert _wait(lambda: _messages(bus, "metrics"))
    metrics = _messages(bus, "metrics")
    assert metrics[-1]["model"]["variant"] == "fp32" and metrics[-1]["body"]["requests"]["ok"] == 1


def test_commands_feedback_and_config(run_agent, cnn_bundle):
    agent, bus = run_agent(cnn_bundle, window_s=30)
    iid, _, _ = agent.engine.infer(sample_feeds(cnn_bundle, 1))
    bus.publish(
        telemetry.command_topic("test-thing", "feedback"),
        json.dumps({"inference_id": iid, "label": 3}).encode(),
    )
    bus.publish(
        telemetry.command_topic("test-thing", "config"),
        json.dumps({"windowS": 12, "alertM": 1}).encode(),
    )
    assert _wait(lambda: agent.config.window_s == 12 and agent.config.alert_m == 1)
    body = agent.close_window()
    assert body["quality"]["labels"] == 1


def test_a_config_command_cannot_set_the_alert_hook(run_agent, cnn_bundle):
    """`{"alertHook": {"command": [...]}}` on the config command topic set a command the agent
    runs on the next firing alert: code execution for anyone who may publish there (found by
    tryhostile). The rest of the message still applies."""
    agent, bus = run_agent(cnn_bundle, window_s=30)
    bus.publish(
        telemetry.command_topic("test-thing", "config"),
        json.dumps({"alertHook": {"command": ["touch", "pwned"]}, "windowS": 11}).encode(),
    )
    assert _wait(lambda: agent.config.window_s == 11)
    assert agent.config.alert_hook is None


def test_bench_command_publishes_results(run_agent, regression_bundle):
    agent, bus = run_agent(regression_bundle, window_s=30)
    bus.publish(
        telemetry.command_topic("test-thing", "bench"),
        json.dumps({"request_id": "r1", "budget_s": 2}).encode(),
    )
    assert _wait(lambda: _messages(bus, "bench"), timeout=30)
    bench = _messages(bus, "bench")[0]
    assert bench["body"]["request_id"] == "r1" and bench["body"]["error"] is None
    record = bench["body"]["results"]["fp32"]
    assert "latency_ms" in json.dumps(record) or "latency" in json.dumps(record)
    assert validation_errors(bench, "telemetry") == []


def test_the_stop_signal_handler_takes_no_lock(run_agent, cnn_bundle):
    """The handler runs on the main thread, also while it holds the stop Event's lock inside
    Event.wait(): calling Event.set() there deadlocked an agent on SIGTERM (seen under load)."""
    import signal
    import threading

    agent, _bus = run_agent(cnn_bundle)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    agent.handle_signals()
    try:
        handler = signal.getsignal(signal.SIGTERM)
        done = threading.Event()

        def as_if_interrupted_inside_wait() -> None:
            with agent._stop._cond:  # held, as Event.wait() holds it around its inner wait
                handler(signal.SIGTERM, None)
            done.set()

        threading.Thread(target=as_if_interrupted_inside_wait, daemon=True).start()
        if not done.wait(5):
            agent._stop = threading.Event()  # the stuck thread holds the old one's lock forever
            raise AssertionError("the signal handler blocked on the stop Event's lock")
        assert agent.run() == 0  # and the agent stops on it
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
