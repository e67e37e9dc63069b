"""The agent's first contact and its stop, as real processes (issues 13, 18, 19): no outbox file
without a transport and never one in the current folder, SIGTERM fast when idle (no flush),
a bounded flush with the broker down that keeps what it could not send, and a damaged outbox
that no longer takes the model offline."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.mosquitto import MqttCollector

ROOT = Path(__file__).resolve().parents[2]
THING = "life-1"


class Served:
    """``edge-agent serve`` in its own current folder, with its own state home."""

    def __init__(self, tmp_path: Path, bundle: Path, *args: str) -> None:
        self.cwd = tmp_path / "cwd"
        self.state_home = tmp_path / "state"
        self.cwd.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "XDG_STATE_HOME": str(self.state_home),
            "HOME": str(tmp_path / "home"),
        }
        for key in ("EDGE_AGENT_STATE_DIR", "SVCUID", "AWS_IOT_THING_NAME"):
            env.pop(key, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "serve", "--bundle", str(bundle)]
            + ["--thing", THING, "--port", "-1", *args],
            cwd=self.cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        for line in self.proc.stderr:
            self.stderr.append(line)
            if line.startswith("edge-agent ready"):
                return
        raise AssertionError("the agent did not start:\n" + "".join(self.stderr))

    @property
    def default_outbox(self) -> Path:
        return self.state_home / "edge-agent" / THING / "outbox.sqlite"

    def terminate(self, timeout: float = 30) -> tuple[int, float, str]:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        # read stderr while waiting: an agent blocked on a full pipe would never exit
        _, rest = self.proc.communicate(timeout=timeout)
        elapsed = time.monotonic() - start
        return self.proc.returncode, elapsed, "".join(self.stderr) + rest


def test_without_a_transport_there_is_no_outbox_and_sigterm_is_fast(cnn_bundle, tmp_path):
    times = []
    for _ in range(2):
        served = Served(tmp_path, cnn_bundle)
        rc, elapsed, stderr = served.terminate()
        assert rc == 0, stderr
        times.append(elapsed)
        assert "Traceback" not in stderr and "outbox" not in stderr, stderr
    # before: 5-7 s (a 5 s flush for messages no transport could ever take). The agent's own
    # stop takes milliseconds; the rest is the interpreter's teardown (onnxruntime's included),
    # 0.3 s on a quiet machine but over 1 s on a loaded 2-core one: 3 s still fails that flush.
    assert min(times) < 3.0, f"SIGTERM to exit took {times} s while idle"
    assert list(served.cwd.iterdir()) == [], "nothing written to the current folder"
    assert not served.state_home.exists(), "no outbox file without a transport"


@pytest.mark.broker
def test_default_outbox_lives_in_the_state_folder(mosquitto_broker, cnn_bundle, tmp_path):
    with MqttCollector(mosquitto_broker, f"dt/edgekit/{THING}/+") as collector:
        served = Served(tmp_path, cnn_bundle, "--mqtt", mosquitto_broker.url)
        assert collector.wait_for(lambda ms: any(m.topic.endswith("/hello") for m in ms), 20)
        assert served.default_outbox.is_file()
        assert list(served.cwd.iterdir()) == []
        rc, elapsed, stderr = served.terminate()
    assert rc == 0, stderr
    assert "stay in the outbox" not in stderr, "nothing is said about 0 messages"
    assert elapsed < 5, elapsed


@pytest.mark.broker
def test_broker_down_at_stop_waits_a_bounded_time_and_keeps_the_rest(
    mosquitto_broker, cnn_bundle, tmp_path
):
    outbox = tmp_path / "kept" / "outbox.sqlite"
    with MqttCollector(mosquitto_broker, f"dt/edgekit/{THING}/+") as collector:
        served = Served(
            tmp_path,
            cnn_bundle,
            "--mqtt",
            mosquitto_broker.url,
            "--outbox",
            "../kept/outbox.sqlite",
        )
        assert collector.wait_for(lambda ms: len(ms) >= 1, 20)
        mosquitto_broker.stop()
        received = {json.loads(m.payload)["seq"] for m in collector.messages}
    time.sleep(0.5)  # the windows of a running agent go on piling up in the outbox
    rc, elapsed, stderr = served.terminate()
    assert rc == 0, stderr
    assert elapsed < 8, f"stop took {elapsed:.1f} s with the broker down (Greengrass allows 15)"
    db = sqlite3.connect(outbox)
    kept = [r[0] for r in db.execute("SELECT seq FROM messages ORDER BY seq")]
    next_seq = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
    db.close()
    assert kept, "the last window is kept for the next start"
    assert f"{len(kept)} message(s) stay in the outbox" in stderr, stderr
    assert set(range(1, next_seq)) <= received | set(kept), "every seq was sent or kept"


@pytest.mark.broker
@pytest.mark.parametrize("damage", ["random_bytes", "folder"])
def test_a_damaged_outbox_no_longer_takes_the_model_offline(
    mosquitto_broker, cnn_bundle, tmp_path, damage
):
    outbox = tmp_path / "outbox.sqlite"
    if damage == "folder":
        outbox.mkdir()
    else:
        outbox.write_bytes(os.urandom(20_000))
    with MqttCollector(mosquitto_broker, f"dt/edgekit/{THING}/+") as collector:
        # before: exit 1 with a sqlite3 traceback, nothing served
        served = Served(
            tmp_path, cnn_bundle, "--mqtt", mosquitto_broker.url, "--outbox", str(outbox)
        )
        assert collector.wait_for(lambda ms: any(m.topic.endswith("/hello") for m in ms), 20)
        rc, _elapsed, stderr = served.terminate()
        hello = next(json.loads(m.payload) for m in collector.messages if "hello" in m.topic)
    assert rc == 0, stderr
    events = hello["body"]["outbox"]["events"]
    assert [e["kind"] for e in events] == ["damaged"]
    assert Path(events[0]["moved_to"]).exists() and outbox.is_file()
    assert "Traceback" not in stderr
