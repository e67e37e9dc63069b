"""The agent never dies of its own telemetry (issue 19): every kind of damaged outbox is moved
aside (kept byte for byte), a new one is started with the sequence continuing, and the event is
reported; a full disk (a real small tmpfs) drops and counts messages as seq gaps that the fleet
store sees, and the outbox recovers when space comes back, also when it filled the disk itself."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent import telemetry
from edge_agent.schemas import validation_errors
from edge_agent.sqlite_schema import user_version
from edge_agent.telemetry.outbox import Outbox

TOPIC = "dt/edgekit/dev/metrics"


def _msg(i: int, pad: int = 0) -> dict:
    return telemetry.make_message(
        "metrics",
        thing="dev",
        component_version="1",
        model={"name": "m", "variant": "fp32", "sha256": "b" * 64},
        window=(i, i + 1),
        body={"i": i, "pad": os.urandom(pad // 2).hex()},
    )


def _filled(path: Path, n: int = 40, pad: int = 2000) -> Path:
    box = Outbox(path)
    for i in range(n):
        box.enqueue(TOPIC, _msg(i, pad))
    box.close()
    return path


def _random_bytes(p: Path) -> None:
    p.write_bytes(os.urandom(p.stat().st_size))


def _truncated(p: Path) -> None:
    os.truncate(p, p.stat().st_size // 2)


def _truncated_header(p: Path) -> None:
    os.truncate(p, 50)


def _overwritten_pages(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[4096 : 4096 * 3] = os.urandom(8192)  # pages 2 and 3; the header page stays valid
    p.write_bytes(bytes(data))


def _wrong_schema(p: Path) -> None:
    p.unlink()
    db = sqlite3.connect(p)
    db.execute("CREATE TABLE messages (id INTEGER, body TEXT)")
    db.commit()
    db.close()


def _newer_schema(p: Path) -> None:
    db = sqlite3.connect(p)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()


def _folder(p: Path) -> None:
    p.unlink()
    p.mkdir()
    (p / "keep.txt").write_text("mine")


DAMAGE = {
    "random_bytes": _random_bytes,
    "truncated": _truncated,
    "truncated_header": _truncated_header,
    "overwritten_pages": _overwritten_pages,
    "wrong_schema": _wrong_schema,
    "newer_schema": _newer_schema,
    "folder_in_its_place": _folder,
}


def _snapshot(p: Path) -> bytes | dict:
    if p.is_dir():
        return {f.name: f.read_bytes() for f in p.iterdir()}
    return p.read_bytes()


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_outbox_is_moved_aside_and_replaced(tmp_path, damage):
    path = _filled(tmp_path / "outbox.sqlite")
    for side in ("-wal", "-shm"):  # a clean close leaves none; damage the main file alone
        Path(f"{path}{side}").unlink(missing_ok=True)
    DAMAGE[damage](path)
    before = _snapshot(path)

    box = Outbox(path)  # before: sqlite3.DatabaseError (or IsADirectoryError) escaped
    seqs = box.enqueue(TOPIC, _msg(99))
    block = box.report()

    assert seqs == [41], "the sequence continues past the damaged outbox's (no reuse)"
    assert block["durable"] is True and len(block["events"]) == 1
    event = block["events"][0]
    assert event["kind"] == "damaged" and event["resumed_seq"] == 41 and event["reason"]
    kept = Path(event["moved_to"])
    assert kept.parent == tmp_path and kept.name.startswith("outbox.sqlite.damaged-")
    assert _snapshot(kept) == before, "the damaged outbox is kept as it was, for inspection"
    assert path.is_file() and user_version(sqlite3.connect(path)) == 1
    assert [p.seq for p in box.peek(10)] == [41]
    schema_errors = validation_errors(_metrics_with(block), "telemetry")
    assert not [e for e in schema_errors if "outbox" in e], schema_errors
    box.reported(block)
    assert "events" not in box.report(), "an event is reported once"
    box.close()


def _metrics_with(block: dict) -> dict:
    msg = _msg(1)
    msg["seq"] = 1
    msg["body"] = {"outbox": block}
    return msg


def test_a_file_where_the_folder_should_be_keeps_telemetry_in_memory(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    box = Outbox(blocker / "outbox.sqlite")
    assert box.enqueue(TOPIC, _msg(1)) == [1]
    block = box.report()
    assert block["durable"] is False
    assert block["events"][0]["kind"] == "unavailable"
    assert str(blocker) in block["events"][0]["reason"]
    assert blocker.read_text() == "not a folder", "the file in the way is not ours to move"
    assert [p.seq for p in box.peek(5)] == [1]
    box.close()


def test_damage_found_while_running_is_recovered_on_the_next_write(tmp_path):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    for i in range(30):
        box.enqueue(TOPIC, _msg(i, 3000))
    # another process scribbles over the pages while the agent runs
    with open(path, "r+b") as fh:
        fh.seek(4096)
        fh.write(os.urandom(4096 * 8))
    box._db.execute("PRAGMA cache_size=0")  # drop what the connection cached
    box.peek(100)
    seqs = box.enqueue(TOPIC, _msg(100))
    assert seqs and seqs[0] >= 31
    assert box.report()["events"][0]["kind"] == "damaged"
    box.close()


def test_legacy_outbox_without_a_version_is_adopted(tmp_path):
    path = tmp_path / "outbox.sqlite"
    db = sqlite3.connect(path)  # the layout of the release before user_version
    db.execute(
        "CREATE TABLE messages (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, bytes INTEGER NOT NULL)"
    )
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER)")
    db.execute("INSERT INTO meta VALUES ('next_seq', 8), ('dropped_total', 2)")
    db.execute("INSERT INTO messages VALUES (7, 't', x'7b7d', 2)")
    db.commit()
    db.close()
    box = Outbox(path)
    assert "events" not in box.report()
    assert [p.seq for p in box.peek(5)] == [7]
    assert box.enqueue(TOPIC, _msg(1)) == [8]
    assert box.stats()["dropped_total"] == 2
    box.close()
    assert user_version(sqlite3.connect(path)) == 1


# -- disk full, on a real small file system -------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 320 KiB tmpfs (root only: mount(2)); skipped where it cannot be mounted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=320k,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Take every free byte of the file system (a real ENOSPC, no simulation)."""
    filler = folder / "filler"
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as fh:
        while True:
            fh.write(b"\0" * 4096)
    assert os.statvfs(folder).f_bavail == 0
    return filler


@pytest.mark.parametrize("reserve", [None, 0], ids=["free_space_reserve", "raw_sqlite_full"])
def test_full_disk_counts_drops_as_a_gap_and_recovers(tiny_disk, reserve):
    kwargs = {} if reserve is None else {"min_free_bytes": reserve}
    box = Outbox(tiny_disk / "outbox.sqlite", **kwargs)
    assert box.enqueue(TOPIC, _msg(1, 2000)) == [1]
    filler = _fill(tiny_disk)
    lost = [box.enqueue(TOPIC, _msg(i, 2000)) for i in range(2, 12)]
    assert lost == [[]] * 10, "nothing can be stored on a full disk, and nothing raises"
    stats = box.stats()
    assert stats["store_failed_total"] == 10 and stats["dropped_total"] == 10
    filler.unlink()  # space comes back
    assert box.enqueue(TOPIC, _msg(12, 2000)) == [12], "the lost messages' seqs stay a gap"
    assert [p.seq for p in box.peek(10)] == [1, 12]
    box.close()
    reopened = Outbox(tiny_disk / "outbox.sqlite")
    assert reopened.stats()["dropped_total"] == 10, "the drop count was stored with seq 12"
    reopened.close()


def test_an_outbox_that_filled_the_disk_itself_recovers_once_acknowledged(tiny_disk):
    box = Outbox(tiny_disk / "outbox.sqlite")
    results = [box.enqueue(TOPIC, _msg(i, 6000)) for i in range(120)]
    stored = [s for r in results for s in r]
    assert 0 < len(stored) < 120, "the disk filled up part way"
    assert box.stats()["store_failed_total"] == 120 - len(stored)
    for pending in box.peek(1000):  # the broker takes the backlog
        box.ack(pending.seq)
    assert box.stats()["pending"] == 0
    assert box.enqueue(TOPIC, _msg(500, 6000)) == [121]
    wal = tiny_disk / "outbox.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size <= 64 * 1024, "the WAL was checkpointed"
    box.close()


def test_agent_on_a_full_disk_keeps_serving_and_the_fleet_sees_the_gap(
    tiny_disk, cnn_bundle, tmp_path
):
    from agent_helpers import config, sample_feeds

    from edge_agent.agent import Agent
    from edge_agent.telemetry.transports.inprocess import Bus, InProcessTransport
    from edgekit.toolkit.fleet.ingest import Received, parse
    from edgekit.toolkit.fleet.store import SqliteStore

    bus = Bus()
    bus.online = False  # everything stays in the outbox on the tiny disk
    cfg = config(cnn_bundle, tmp_path, outbox=str(tiny_disk / "outbox.sqlite"), window_s=3600)
    agent = Agent(cfg, InProcessTransport(bus=bus)).start()
    try:
        feeds = sample_feeds(cnn_bundle, 1)
        filler = _fill(tiny_disk)
        for _ in range(5):
            agent.engine.infer(feeds)  # inference goes on
            agent.close_window()  # these windows cannot be stored
        filler.unlink()
        agent.engine.infer(feeds)
        body = agent.close_window()
        assert body["outbox"]["store_failed_total"] >= 5
        bus.online = True
        assert agent.publisher.flush(10)
    finally:
        agent.stop(flush_timeout=1)
    store = SqliteStore(tmp_path / "fleet.sqlite")
    store.write([parse(Received(t, p)) for t, p in bus.messages])
    gaps = store.gaps()
    assert sum(g.missing for g in gaps) == body["outbox"]["dropped_total"] >= 5
    last = [json.loads(p) for _, p in bus.messages][-1]
    assert last["body"]["outbox"]["dropped_total"] >= 5
    store.close()


FSIZE_SCRIPT = """
import json, os, resource, signal, sys
from edge_agent import telemetry
from edge_agent.telemetry.outbox import Outbox

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
path = sys.argv[1]


def msg(i):
    return telemetry.make_message(
        "metrics", thing="dev", component_version="1",
        model={"name": "m", "variant": "fp32", "sha256": "b" * 64},
        window=(i, i + 1), body={"pad": os.urandom(10_000).hex()},
    )


box = Outbox(path, min_free_bytes=0)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (96 * 1024, hard))  # the disk is "full" at 96 KiB
during = [box.enqueue("dt/edgekit/dev/metrics", msg(i)) for i in range(12)]
failed = box.stats()["store_failed_total"]
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space comes back
after = box.enqueue("dt/edgekit/dev/metrics", msg(99))
stored = [p.seq for p in box.peek(100)]
print(json.dumps({"during": during, "failed": failed, "after": after, "stored": stored,
                  "dropped_total": box.stats()["dropped_total"]}))
"""


def test_a_file_size_limit_is_a_full_disk_too(tmp_path):
    """Without root (no tmpfs): RLIMIT_FSIZE in a child process makes the writes fail for real
    (EFBIG, which SQLite reports as an I/O error rather than SQLITE_FULL)."""
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_SCRIPT, str(tmp_path / "outbox.sqlite")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    lost = [i + 1 for i, seqs in enumerate(result["during"]) if not seqs]
    assert lost and result["failed"] == len(lost), result
    assert result["after"] == [13], "the seq went on over the lost messages"
    assert result["stored"] == [s for s in range(1, 14) if s not in lost]
    assert result["dropped_total"] == len(lost)
    assert "Traceback" not in done.stderr
