"""The fleet collector: messages in (MQTT or the simulator's in-process cloud), batches into the
store, acknowledgements after the commit, then rules and alert actions.

Ingestion is one writer thread draining a queue in batches (one store transaction each), which
is what makes thousands of messages per second possible on a small machine. A QoS 1 message is
acknowledged to the broker only after the transaction that stored it committed, so a crash
between receipt and commit means a redelivery (dropped as a duplicate), never a loss.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.toolkit.fleet.actions import ActionContext, AlertRouter, Publish
from edgekit.toolkit.fleet.ingest import Parsed, Received, Rejected, parse
from edgekit.toolkit.fleet.lab import BundleIndex
from edgekit.toolkit.fleet.rules import FleetRules, RulesConfig
from edgekit.toolkit.fleet.store import Store, WriteResult
from edgekit.toolkit.fleet.stores import open_fleet_store

log = logging.getLogger("edgekit.fleet")
# What building a message's rows raises on a body of the wrong shape (the database's own
# errors, a lost connection included, are retried)
_DATA_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)


@dataclass
class CollectorStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts: int = 0
    failed_batches: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "alerts": self.alerts,
            "failed_batches": self.failed_batches,
            "by_type": dict(self.by_type),
        }


class Collector:
    def __init__(
        self,
        store: Store,
        *,
        rules: FleetRules | None = None,
        router: AlertRouter | None = None,
        batch_max: int = 2000,
    ) -> None:
        self.store = store
        self.rules = rules
        self.router = router
        self.batch_max = batch_max
        self.stats = CollectorStats()
        self._queue: queue.SimpleQueue[Received | None] = queue.SimpleQueue()
        self._done = threading.Condition()
        self._submitted = 0
        self._processed = 0
        self._thread: threading.Thread | None = None
        self.action_context: ActionContext | None = None

    @classmethod
    def open(
        cls,
        db: str | Path,  # a SQLite file or a postgresql:// URL
        *,
        bundles: Iterable[Path] = (),
        search_roots: Iterable[Path] = (),
        config: RulesConfig | None = None,
        publish: Publish | None = None,
        keep_payloads: bool = True,
    ) -> Collector:
        """Store, bundle index, rules and alert routes wired together (what the CLI uses)."""
        store = open_fleet_store(db, keep_payloads=keep_payloads)
        config = config or RulesConfig()
        index = BundleIndex(bundles, search_roots)
        ctx = ActionContext(publish=publish)
        router = AlertRouter(config.build_routes(ctx), record=store.add_action_result)
        collector = cls(store, rules=FleetRules(config, index, store), router=router)
        collector.action_context = ctx
        return collector

    def set_publisher(self, publish: Publish | None) -> None:
        """Give topic actions a connection (the MQTT source calls this once connected)."""
        if self.action_context is not None:
            self.action_context.publish = publish

    # -- input ---------------------------------------------------------------------------------
    def submit(
        self,
        topic: str,
        payload: bytes,
        ack: Callable[[], None] | None = None,
        received_at: float | None = None,
    ) -> None:
        """Queue one message (thread-safe, never blocks); ``ack`` runs after it is stored."""
        item = Received(topic, bytes(payload), received_at or time.time(), ack)
        with self._done:
            self._submitted += 1
        self._queue.put(item)

    def listener(self, thing: str, topic: str, payload: bytes) -> None:
        """The simulator's in-process cloud listener signature: (thing, topic, payload)."""
        if topic.startswith("dt/edgekit/"):
            self.submit(topic, payload)

    # -- the writer ------------------------------------------------------------------------------
    def start(self) -> Collector:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="fleet-writer", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                self._periodic()
                continue
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self.process(batch)
            self._periodic()
            if stop:
                return

    def _periodic(self) -> None:
        if self.rules is None:
            return
        try:
            self._route(self.store.add_alerts(self.rules.periodic()))
        except Exception:
            log.exception("periodic fleet rules failed")

    def process(self, batch: list[Received]) -> WriteResult | None:
        """Parse, store in one transaction, acknowledge, evaluate rules, route alerts.

        The cyclic garbage collector is paused for the batch: parsing allocates hundreds of
        objects per message and would otherwise trigger collections every few messages."""
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._process(batch)
        finally:
            if paused:
                gc.enable()

    def _process(self, batch: list[Received]) -> WriteResult | None:
        parsed = [parse(item) for item in batch]
        result = None
        for attempt in range(3):
            try:
                result = self.store.write(parsed)
                break
            except _DATA_ERRORS:
                break  # a message's own content: the same every time, so no retry
            except Exception:
                log.exception("storing a batch of %d failed (attempt %d)", len(batch), attempt + 1)
                time.sleep(0.2 * (attempt + 1))
        if result is None:
            result = self._write_one_by_one(parsed)
        if result is None:
            self.stats.failed_batches += 1  # not acknowledged: the broker will redeliver
        else:
            for item in batch:
                if item.ack is not None:
                    try:
                        item.ack()
                    except Exception:  # the connection may be gone; redelivery is deduplicated
                        log.debug("ack failed", exc_info=True)
            self._account(result, len(batch))
            alerts = list(result.alerts)
            if self.rules is not None and result.new:
                try:
                    alerts += self.store.add_alerts(self.rules.on_messages(result.new))
                except Exception:
                    log.exception("fleet rules failed")
            self._route(alerts)
        with self._done:
            self._processed += len(batch)
            self._done.notify_all()
        return result

    def _write_one_by_one(self, parsed: list[Parsed | Rejected]) -> WriteResult | None:
        """A batch that fails every time may hold a message that cannot be stored (a body of
        the wrong shape, from a faulty or hostile device): unacknowledged, it came back with
        the broker's redelivery and failed its batch again, stalling every device's telemetry.
        Each message is written alone; one that still fails is stored as rejected, with the
        reason. None when even that fails: the store itself is failing."""
        total = WriteResult()
        for item in parsed:
            try:
                one = self.store.write([item])
            except Exception as exc:
                if isinstance(item, Rejected):
                    return None
                why = f"message cannot be stored: {type(exc).__name__}: {exc}"[:500]
                try:
                    one = self.store.write([Rejected(item.received, why)])
                except Exception:
                    log.exception("storing a rejected message failed")
                    return None
                log.warning("%s/%s seq %s rejected: %s", item.thing, item.type, item.seq, why)
            total.new += one.new
            total.duplicates += one.duplicates
            total.rejected += one.rejected
            total.alerts += one.alerts
        return total

    def _account(self, result: WriteResult, n: int) -> None:
        s = self.stats
        s.received += n
        s.stored += len(result.new)
        s.duplicates += result.duplicates
        s.rejected += result.rejected
        for p in result.new:
            s.by_type[p.type] = s.by_type.get(p.type, 0) + 1

    def _route(self, alerts: list[dict[str, Any]]) -> None:
        self.stats.alerts += len(alerts)
        if alerts and self.router is not None:
            self.router.dispatch(alerts)

    # -- lifecycle -------------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is stored (and its actions ran)."""
        deadline = time.monotonic() + timeout
        with self._done:
            target = self._submitted
            while self._processed < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(min(left, 0.2))
        if self.router is not None:
            self.router.drain()
        return True

    def evaluate(self) -> list[dict[str, Any]]:
        """Run the periodic rules now (end of a run, or a test); returns the new alerts."""
        if self.rules is None:
            return []
        alerts = self.store.add_alerts(self.rules.periodic(force=True))
        self._route(alerts)
        if self.router is not None:
            self.router.drain()
        return alerts

    def close(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self.flush(timeout)
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self.router is not None:
            self.router.drain()
        self.store.close()
