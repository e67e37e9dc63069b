"""The durable outbox: every telemetry message is committed to SQLite (WAL) before anyone tries to
send it, and deleted only after the broker acknowledged it (QoS 1).

The per-device sequence number is assigned here, in the same transaction as the insert, so a
``kill -9`` can never leave a gap: either the message and its seq are on disk or neither is.
Replays after a crash resend the same bytes, so duplicates carry the same seq and the collector
drops them. The outbox is bounded (messages and bytes); when full the oldest messages go first
and the count of dropped messages is kept (and reported in every ``metrics`` message).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import telemetry
from edge_agent.transports.base import NotDeliveredError

log = logging.getLogger("edge_agent.outbox")


@dataclass(frozen=True)
class Pending:
    seq: int
    topic: str
    payload: bytes


class Outbox:
    def __init__(
        self,
        path: str | Path,
        *,
        max_messages: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
            "payload BLOB NOT NULL, bytes INTEGER NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', 1), ('dropped_total', 0)")

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    def enqueue(self, topic: str, message: dict[str, Any]) -> list[int]:
        """Split if needed, give each part the next seq, commit; returns the seqs assigned."""
        parts = telemetry.split(message)
        seqs = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._meta("next_seq")
                for part in parts:
                    part["seq"] = seq
                    payload = telemetry.encode(part)
                    self._db.execute(
                        "INSERT INTO messages VALUES (?, ?, ?, ?)",
                        (seq, topic, payload, len(payload)),
                    )
                    seqs.append(seq)
                    seq += 1
                self._db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (seq,))
                self._trim()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._added.notify_all()
        return seqs

    def _trim(self) -> None:
        count, total = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM messages"
        ).fetchone()
        dropped = 0
        while count > self.max_messages or (total > self.max_bytes and count > 1):
            seq, size = self._db.execute(
                "SELECT seq, bytes FROM messages ORDER BY seq LIMIT 1"
            ).fetchone()
            self._db.execute("DELETE FROM messages WHERE seq=?", (seq,))
            count, total, dropped = count - 1, total - size, dropped + 1
        if dropped:
            self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped_total'", (dropped,))

    def peek(self, limit: int = 1) -> list[Pending]:
        """The oldest messages, in seq order (not removed)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM messages ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [Pending(int(s), t, bytes(p)) for s, t, p in rows]

    def ack(self, seq: int) -> None:
        """The broker acknowledged ``seq``: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE seq=?", (seq,))

    def wait(self, timeout: float) -> None:
        """Block until something is enqueued (or the timeout passes)."""
        with self._lock:
            self._added.wait(timeout)

    def stats(self) -> dict[str, int]:
        with self._lock:
            pending, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM messages"
            ).fetchone()
            return {
                "pending": int(pending),
                "pending_bytes": int(size),
                "dropped_total": self._meta("dropped_total"),
                "next_seq": self._meta("next_seq"),
            }

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Publisher:
    """Drains the outbox through a transport on its own thread, oldest first, one ack at a time.

    Strict order per device: message n+1 is not sent before n was acknowledged, so a broker
    outage can only ever cause re-sends of the same seq, never reordering.

    Two retry schedules, both doubling up to a cap: a failed send (offline, timeout, refused)
    is retried soon (0.1 s up to 2 s) because the transport reconnects by itself; a message the
    broker acknowledged as delivered to nobody (``NotDeliveredError``) waits on its own
    schedule (``undelivered_retry_s`` up to ``undelivered_retry_max_s``) because what is missing
    is a subscriber, which can take much longer to come back than a connection.
    """

    RETRY_S = (0.1, 2.0)

    def __init__(
        self,
        outbox: Outbox,
        transport: Any,
        *,
        timeout_s: float = 10.0,
        on_error: Callable[[Exception], None] | None = None,
        undelivered_retry_s: float = 1.0,
        undelivered_retry_max_s: float = 10.0,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.timeout_s = timeout_s
        self.on_error = on_error
        self.undelivered_retry = (
            undelivered_retry_s,
            max(undelivered_retry_s, undelivered_retry_max_s),
        )
        self.sent = 0
        self.failures = 0
        self.undelivered = 0  # sends acknowledged as "no subscriber": kept and retried
        self.last_error: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edge-agent-publisher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        failed, undelivered = self.RETRY_S[0], self.undelivered_retry[0]
        waiting_for_subscriber = False
        while not self._stop.is_set():
            if self.publish_pending(stop=self._stop):
                failed, undelivered = self.RETRY_S[0], self.undelivered_retry[0]
                if waiting_for_subscriber:
                    log.info("a subscriber is back: the held messages were delivered")
                    waiting_for_subscriber = False
                self.outbox.wait(0.5)
            elif isinstance(self.last_error, NotDeliveredError):
                if not waiting_for_subscriber:
                    log.warning(
                        "%s; %d message(s) held in the outbox, retrying every %.1f-%.1f s",
                        self.last_error,
                        self.outbox.stats()["pending"],
                        *self.undelivered_retry,
                    )
                    waiting_for_subscriber = True
                self._stop.wait(undelivered)
                undelivered = min(undelivered * 2, self.undelivered_retry[1])
            else:
                self._stop.wait(failed)
                failed = min(failed * 2, self.RETRY_S[1])

    def publish_pending(
        self, deadline: float | None = None, stop: threading.Event | None = None
    ) -> bool:
        """Send until the outbox is empty; False when a send failed (left in the outbox)."""
        while not (stop is not None and stop.is_set()):
            if deadline is not None and time.monotonic() > deadline:
                return False
            batch = self.outbox.peek(16)
            if not batch:
                return True
            for item in batch:
                if not self.transport.connected():
                    self.last_error = None
                    return False
                try:
                    self.transport.publish(item.topic, item.payload, self.timeout_s)
                except NotDeliveredError as exc:  # the broker is fine, nobody listened: keep it
                    self.undelivered += 1
                    self.last_error = exc
                    if self.on_error:
                        self.on_error(exc)
                    return False
                except Exception as exc:  # transport errors: keep the message, retry later
                    self.failures += 1
                    self.last_error = exc
                    if self.on_error:
                        self.on_error(exc)
                    return False
                self.outbox.ack(item.seq)
                self.sent += 1
        return False

    def flush(self, timeout_s: float) -> bool:
        """Try to empty the outbox within ``timeout_s`` (for shutdown); True when empty."""
        self.stop()
        deadline = time.monotonic() + timeout_s
        while True:
            if self.publish_pending(deadline=deadline):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(self.timeout_s + 1)
