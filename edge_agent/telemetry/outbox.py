"""The durable outbox: every telemetry message is committed to SQLite (WAL) before anyone tries to
send it, and deleted only after the broker acknowledged it (QoS 1).

The per-device sequence number is assigned here, in the same transaction as the insert, so a
``kill -9`` can never leave a gap: either the message and its seq are on disk or neither is.
Replays after a crash resend the same bytes, so duplicates carry the same seq and the collector
drops them. The outbox is bounded (messages and bytes); when full the oldest messages go first
and the count of dropped messages is kept (and reported in every ``metrics`` message).

The agent never dies of its own telemetry (DESIGN.md, trust boundaries):

* A damaged outbox (not a database, truncated, overwritten pages, another schema or a newer
  one, a folder in its place) is moved aside as ``<name>.damaged-<UTC time>`` with its WAL,
  kept for inspection, and a new one is started. The sequence continues from what could be
  read: the damaged file's own counter when it still answers, else ``<name>.seq``, a
  high-water mark written before each commit. When no outbox can be made where it was asked
  (a file where its folder should be, a read-only folder), telemetry goes to an in-memory
  outbox (``durable: false``) and the agent serves on. Each event is reported once, in the
  ``outbox.events`` of the next ``hello``/``metrics`` message.
* A message that cannot be stored (disk full, I/O error) still consumes its seq, so the
  collector sees the gap, and it is counted in ``dropped_total`` (and ``store_failed_total``).
  The WAL is checkpointed often (and truncated whenever the outbox empties or a write fails),
  so a small disk recovers as soon as space returns instead of waiting for 4 MiB of WAL.

Schema versions are kept in ``PRAGMA user_version`` (``edge_agent.sqlite_schema``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import atomic, telemetry
from edge_agent.sqlite_schema import SchemaTooNewError, migrate, user_version
from edge_agent.telemetry.transports.base import NotDeliveredError

log = logging.getLogger("edge_agent.telemetry.outbox")

# user_version n is reached by MIGRATIONS[n-1]; migration 1 adopts files made before versions.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL,
        payload BLOB NOT NULL, bytes INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER);
    INSERT OR IGNORE INTO meta VALUES ('next_seq', 1), ('dropped_total', 0);
    """,
)
COLUMNS = {"messages": ["seq", "topic", "payload", "bytes"], "meta": ["key", "value"]}
# The WAL is checkpointed and truncated after every enqueue and whenever the outbox empties; in
# between (a backlog being acknowledged) every 8 pages, and cut back to 32 KiB afterwards.
WAL_AUTOCHECKPOINT_PAGES = 8
JOURNAL_SIZE_LIMIT = 32 * 1024
# Free space left on the outbox's disk for deletes and checkpoints: below it (plus the message
# itself) a message is dropped and counted rather than written, so acknowledgements can still
# free space (a WAL that fills the disk could never be checkpointed into the database).
MIN_FREE_BYTES = 64 * 1024
# SQLite result codes that mean "this file is not a usable outbox" rather than "cannot write now".
DAMAGE_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_SCHEMA")
MAX_EVENTS = 20  # unreported events kept (older ones are counted, not listed)


@dataclass(frozen=True)
class Pending:
    seq: int
    topic: str
    payload: bytes


class DiskFull(Exception):
    """Not enough free space to store a message and keep the outbox able to shrink."""


class Damaged(Exception):
    """The file at the outbox's path is not a usable outbox (the message says why)."""


def _code(exc: BaseException) -> str:
    return getattr(exc, "sqlite_errorname", "") or ""


def is_damage(exc: BaseException) -> bool:
    if isinstance(exc, Damaged):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = _code(exc)
    if code:
        return code.startswith(DAMAGE_CODES)
    # an old sqlite3 module without error names: Python maps CORRUPT/NOTADB to DatabaseError
    return type(exc) is sqlite3.DatabaseError


class Outbox:
    """Bounded durable queue of encoded telemetry; ``path=None`` keeps it in memory (no file)."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        max_messages: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        min_free_bytes: int = MIN_FREE_BYTES,
    ) -> None:
        self.path = None if path is None else Path(path).absolute()
        self.min_free_bytes = min_free_bytes
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.durable = self.path is not None
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self._events: list[dict[str, Any]] = []
        self._events_missed = 0
        self._store_failed_total = 0
        self._unsaved_drops = 0  # counted while the disk refused writes, saved on the next commit
        self._storing_fails = False
        self._last_stats = {"pending": 0, "pending_bytes": 0, "dropped_total": 0}
        self._closed = False
        self._db: sqlite3.Connection | None = None
        self._next_seq = 1
        with self._lock:
            self._open_or_recover()

    # -- opening, and recovering from damage ---------------------------------------------------
    @property
    def seq_file(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ".seq")

    def _open_or_recover(self) -> None:
        if self.path is None:
            self._use_memory()
            return
        try:
            self._db = self._open_file(self.path)
        except Damaged as exc:
            self._recover(str(exc), salvage=True)
            return
        except (OSError, sqlite3.Error) as exc:
            self._fall_back_to_memory(f"cannot open the outbox {self.path}: {_text(exc)}")
            return
        self._next_seq = max(self._meta("next_seq"), self._read_seq_file())

    def _open_file(self, path: Path) -> sqlite3.Connection:
        """Open (or create) and verify the outbox at ``path``; ``Damaged`` when it is not one."""
        if path.is_dir():
            raise Damaged(f"a folder is in the outbox's place ({path})")
        path.parent.mkdir(parents=True, exist_ok=True)  # OSError when a file is in the way
        fresh = not path.exists() or path.stat().st_size == 0
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            if fresh:  # only settable before the first table exists
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            else:
                _verify(db)  # read only: a file that is not ours is kept exactly as it was
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            migrate(db, MIGRATIONS)
            keys = {r[0] for r in db.execute("SELECT key FROM meta").fetchall()}
            if not {"next_seq", "dropped_total"} <= keys:
                raise Damaged("wrong schema: the meta table lacks next_seq/dropped_total")
        except Damaged:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            if is_damage(exc):
                raise Damaged(f"{_text(exc)}") from None
            raise
        return db

    def _use_memory(self) -> None:
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        migrate(db, MIGRATIONS)
        db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (self._next_seq,))
        self._db = db

    def _fall_back_to_memory(self, reason: str) -> None:
        log.error("%s; telemetry is kept in memory until the agent restarts", reason)
        self.durable = False
        self._use_memory()
        self._event("unavailable", reason)

    def _recover(self, reason: str, *, salvage: bool) -> None:
        """Move the damaged outbox aside (kept for inspection) and start a new one there."""
        assert self.path is not None
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        salvaged = self._salvage_seq(self.path) if salvage else 0
        self._next_seq = max(self._next_seq, salvaged, self._read_seq_file())
        try:
            moved = _set_aside(self.path)
        except OSError as exc:
            self._fall_back_to_memory(
                f"the outbox {self.path} is damaged ({reason}) and could "
                f"not be moved aside: {_text(exc)}"
            )
            return
        log.error(
            "the outbox %s is damaged (%s): moved to %s, starting a new one at seq %d",
            self.path,
            reason,
            moved,
            self._next_seq,
        )
        try:
            self._db = self._open_file(self.path)
        except (Damaged, OSError, sqlite3.Error) as exc:
            self._fall_back_to_memory(f"cannot start a new outbox at {self.path}: {_text(exc)}")
            self._events[-1]["moved_to"] = str(moved)
            return
        self._conn.execute("UPDATE meta SET value=? WHERE key='next_seq'", (self._next_seq,))
        self._event("damaged", reason, moved_to=str(moved))

    @staticmethod
    def _salvage_seq(path: Path) -> int:
        """The next seq the damaged file still tells (0 when it tells nothing)."""
        if not path.is_file():
            return 0
        best = 0
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        except sqlite3.Error:
            return 0
        try:
            for sql in (
                "SELECT value FROM meta WHERE key='next_seq'",
                "SELECT MAX(seq) + 1 FROM messages",
            ):
                with contextlib.suppress(sqlite3.Error, TypeError, ValueError):
                    row = db.execute(sql).fetchone()
                    if row and row[0] is not None:
                        best = max(best, int(row[0]))
        finally:
            db.close()
        return best

    def _read_seq_file(self) -> int:
        seq_file = self.seq_file
        if seq_file is None:
            return 0
        try:
            return max(0, int(seq_file.read_text("ascii").strip()))
        except (OSError, ValueError, UnicodeDecodeError):
            return 0

    def _write_seq_file(self, next_seq: int) -> None:
        seq_file = self.seq_file
        if seq_file is None:
            return
        with contextlib.suppress(OSError):  # best effort: the database has it too
            atomic.write_text(seq_file, f"{next_seq}\n")

    def _event(self, kind: str, reason: str, **extra: Any) -> None:
        event = {
            "kind": kind,
            "at": time.time(),
            "reason": reason,
            "resumed_seq": self._next_seq,
            "durable": self.durable,
            **extra,
        }
        self._events.append(event)
        if len(self._events) > MAX_EVENTS:
            self._events.pop(0)
            self._events_missed += 1

    # -- the queue ----------------------------------------------------------------------------
    @property
    def _conn(self) -> sqlite3.Connection:
        """The open database: the constructor always leaves one (a file, or memory), and only
        ``_recover`` clears it, for as long as it takes to open the next."""
        db = self._db
        assert db is not None, "the outbox has no open database"
        return db

    def _meta(self, key: str) -> int:
        return int(self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    def enqueue(self, topic: str, message: dict[str, Any]) -> list[int]:
        """Split if needed, give each part the next seq, commit; returns the seqs stored.

        Never raises for storage problems: a message that cannot be stored returns [] and
        is counted as dropped, its seqs left as a gap for the collector to see.
        """
        parts = telemetry.split(message)
        with self._lock:
            if self._closed:
                return []
            first = self._next_seq
            self._next_seq += len(parts)
            payloads = []
            for offset, part in enumerate(parts):
                part["seq"] = first + offset
                payloads.append(telemetry.encode(part))
            for attempt in range(3):
                try:
                    self._store(topic, first, payloads)
                    break
                except DiskFull as exc:
                    self._store_failed(len(payloads), exc)
                    return []
                except sqlite3.Error as exc:
                    if attempt < 2 and is_damage(exc) and self.durable:
                        self._recover(_text(exc), salvage=False)
                        continue
                    if attempt < 2 and _code(exc) == "SQLITE_FULL":
                        self._checkpoint()
                        continue
                    self._store_failed(len(payloads), exc)
                    return []
            else:  # pragma: no cover - the loop always breaks or returns
                return []
            if self._storing_fails:
                self._storing_fails = False
                log.warning("telemetry is stored again (seq %d)", first)
            self._added.notify_all()
        return list(range(first, first + len(payloads)))

    def _store(self, topic: str, first: int, payloads: list[bytes]) -> None:
        db = self._conn
        self._check_free_space(sum(len(p) for p in payloads))
        self._write_seq_file(self._next_seq)
        db.execute("BEGIN IMMEDIATE")
        try:
            for offset, payload in enumerate(payloads):
                db.execute(
                    "INSERT INTO messages VALUES (?, ?, ?, ?)",
                    (first + offset, topic, payload, len(payload)),
                )
            db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (self._next_seq,))
            dropped = self._unsaved_drops + self._trim()
            if dropped:
                db.execute("UPDATE meta SET value=value+? WHERE key='dropped_total'", (dropped,))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            raise
        self._unsaved_drops = 0
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _check_free_space(self, size: int) -> None:
        if self.path is None or not self.durable or self.min_free_bytes <= 0:
            return
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        if free < 2 * size + self.min_free_bytes:
            raise DiskFull(
                f"{free} bytes free on the outbox's disk, {2 * size + self.min_free_bytes} "
                "needed to store the message and keep room for acknowledgements"
            )

    def _store_failed(self, count: int, exc: BaseException) -> None:
        self._store_failed_total += count
        self._unsaved_drops += count
        level = logging.DEBUG if self._storing_fails else logging.WARNING
        log.log(
            level,
            "telemetry could not be stored (%s): %d message(s) dropped so far, the seq gap "
            "shows it; serving goes on",
            _text(exc),
            self._store_failed_total,
        )
        self._storing_fails = True
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Give space back (the outbox emptied, or the disk is full): free pages to the file
        system, then the WAL into the database and the WAL file cut to nothing."""
        with contextlib.suppress(sqlite3.Error):
            self._vacuum()
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _vacuum(self, min_pages: int = 16) -> None:
        """Return free pages to the file system (files made with auto_vacuum=INCREMENTAL).

        Python's sqlite3 steps a PRAGMA that returns no rows only once, and each step of
        ``incremental_vacuum`` frees one page, so it is stepped here, in one transaction."""
        db = self._conn
        free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
        if free < min_pages or int(db.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for _ in range(free):
                db.execute("PRAGMA incremental_vacuum(1)")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _trim(self) -> int:
        count, total = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM messages"
        ).fetchone()
        dropped = 0
        while count > self.max_messages or (total > self.max_bytes and count > 1):
            seq, size = self._conn.execute(
                "SELECT seq, bytes FROM messages ORDER BY seq LIMIT 1"
            ).fetchone()
            self._conn.execute("DELETE FROM messages WHERE seq=?", (seq,))
            count, total, dropped = count - 1, total - size, dropped + 1
        return dropped

    def _guarded(self, what: str, fn: Callable[[], Any], default: Any) -> Any:
        """Run a read or a delete; damage is recovered from, other errors logged."""
        if self._closed:
            return default
        try:
            return fn()
        except sqlite3.Error as exc:
            if is_damage(exc) and self.durable:
                self._recover(_text(exc), salvage=True)
            else:
                log.debug("outbox %s failed: %s", what, _text(exc))
            return default

    def peek(self, limit: int = 1) -> list[Pending]:
        """The oldest messages, in seq order (not removed)."""
        with self._lock:
            rows = self._guarded(
                "read",
                lambda: self._conn.execute(
                    "SELECT seq, topic, payload FROM messages ORDER BY seq LIMIT ?", (limit,)
                ).fetchall(),
                [],
            )
        return [Pending(int(s), t, bytes(p)) for s, t, p in rows]

    def ack(self, seq: int) -> None:
        """The broker acknowledged ``seq``: forget it (and give space back once empty)."""

        def delete() -> None:
            self._conn.execute("DELETE FROM messages WHERE seq=?", (seq,))
            if self._conn.execute("SELECT 1 FROM messages LIMIT 1").fetchone() is None:
                self._checkpoint()

        with self._lock:
            self._guarded("delete", delete, None)

    def wait(self, timeout: float) -> None:
        """Block until something is enqueued (or the timeout passes)."""
        with self._lock:
            if not self._closed:
                self._added.wait(timeout)

    def wake(self) -> None:
        """Release every ``wait`` now (stopping)."""
        with self._lock:
            self._added.notify_all()

    def stats(self) -> dict[str, Any]:
        with self._lock:

            def read() -> dict[str, int]:
                pending, size = self._conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM messages"
                ).fetchone()
                return {
                    "pending": int(pending),
                    "pending_bytes": int(size),
                    "dropped_total": self._meta("dropped_total"),
                }

            stats = self._guarded("count", read, None) or dict(self._last_stats)
            self._last_stats = stats
            return {
                **stats,
                "dropped_total": stats["dropped_total"] + self._unsaved_drops,
                "store_failed_total": self._store_failed_total,
                "next_seq": self._next_seq,
                "durable": self.durable,
            }

    def report(self) -> dict[str, Any]:
        """The ``outbox`` block of a hello/metrics body: counts, and events not yet reported.

        Call ``reported(block)`` once the message carrying it is stored, so each event is sent
        once (and again if that message could not be stored)."""
        stats = self.stats()
        block: dict[str, Any] = {
            "pending": stats["pending"],
            "dropped_total": stats["dropped_total"],
            "store_failed_total": stats["store_failed_total"],
            "durable": stats["durable"],
        }
        with self._lock:
            if self._events:
                block["events"] = [dict(e) for e in self._events]
            if self._events_missed:
                block["events_missed"] = self._events_missed
        return block

    def reported(self, block: dict[str, Any]) -> None:
        sent = block.get("events") or []
        with self._lock:
            del self._events[: len(sent)]
            self._events_missed = max(0, self._events_missed - block.get("events_missed", 0))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._added.notify_all()
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()


def _verify(db: sqlite3.Connection) -> None:
    """Is this existing file an outbox this release can use? Raises ``Damaged`` saying why."""
    found = [r[0] for r in db.execute("PRAGMA quick_check(5)").fetchall()]
    if found != ["ok"]:
        raise Damaged(_one_line(f"integrity check failed: {'; '.join(map(str, found))}"))
    version = user_version(db)
    if version > len(MIGRATIONS):
        raise Damaged(f"written by a newer agent: {SchemaTooNewError(version, len(MIGRATIONS))}")
    for table, columns in COLUMNS.items():
        have = [r[1] for r in db.execute(f"PRAGMA table_info({table})").fetchall()]
        if (have or version >= 1) and have != columns:
            raise Damaged(f"wrong schema: table {table} has columns {have}, not {columns}")


def _text(exc: BaseException, limit: int = 300) -> str:
    """One line, bounded: it travels in a telemetry message."""
    code = _code(exc)
    text = f"{exc} ({code})" if code else str(exc) or type(exc).__name__
    return _one_line(text, limit)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _set_aside(path: Path) -> Path:
    """Rename ``path`` (file or folder) and its SQLite side files to ``<name>.damaged-<time>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while any(Path(f"{dest}{s}").exists() for s in ("", "-wal", "-shm", "-journal")):
        n += 1
        dest = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    if path.exists() or path.is_symlink():
        os.replace(path, dest)
    for suffix in ("-wal", "-shm", "-journal"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            with contextlib.suppress(OSError):
                os.replace(side, Path(f"{dest}{suffix}"))
    return dest


def jittered(delay: float, rng: random.Random | None = None) -> float:
    """``delay`` spread over [delay/2, delay] ("equal jitter"), so a fleet that lost its broker
    together does not reconnect and resend in lock-step."""
    return delay * (0.5 + 0.5 * (rng or random).random())


class Publisher:
    """Drains the outbox through a transport on its own thread, oldest first, one ack at a time.

    Strict order per device: message n+1 is not sent before n was acknowledged, so a broker
    outage can only ever cause re-sends of the same seq, never reordering.

    Two retry schedules, both doubling up to a cap, each delay jittered (``jittered``): a
    failed send (offline, timeout, refused) is retried soon (0.1 s up to 2 s) because the
    transport reconnects by itself; a message the broker acknowledged as delivered to nobody
    (``NotDeliveredError``) waits on its own schedule (``undelivered_retry_s`` up to
    ``undelivered_retry_max_s``) because what is missing is a subscriber, which can take much
    longer to come back than a connection.
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
            try:
                done = self.publish_pending(stop=self._stop)
            except Exception:  # never let the thread die: telemetry must not stop for good
                log.exception("publishing from the outbox failed; retrying")
                done = False
                self.last_error = None
            if self._stop.is_set():
                return
            if done:
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
                self._stop.wait(jittered(undelivered))
                undelivered = min(undelivered * 2, self.undelivered_retry[1])
            else:
                self._stop.wait(jittered(failed))
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
                timeout = self.timeout_s
                if deadline is not None:
                    timeout = max(0.05, min(timeout, deadline - time.monotonic()))
                try:
                    self.transport.publish(item.topic, item.payload, timeout)
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
        """Try to empty the outbox within ``timeout_s`` (for shutdown); True when empty.

        Returns at once when nothing is pending; otherwise never takes longer than
        ``timeout_s`` (the publisher thread's own send included), whatever the broker does.
        What is not sent stays in the outbox for the next start.
        """
        deadline = time.monotonic() + timeout_s
        self.stop(join_timeout=timeout_s)
        while True:
            if self.outbox.stats()["pending"] == 0:
                return True
            if self.publish_pending(deadline=deadline):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(0.1, remaining))

    def stop(self, join_timeout: float | None = None) -> None:
        self._stop.set()
        self.outbox.wake()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(self.timeout_s + 1 if join_timeout is None else join_timeout)
