"""The collector's SQS side (AWS IoT Core → topic rule → SQS → `fleet collect --sqs URL`).

Long polls the queue and submits each message to the collector; a message is deleted from the
queue only after the transaction that stored it committed (deletes batched by ten). A collector
that dies leaves its messages invisible for the visibility timeout, then SQS hands them to any
collector reading the queue; copies already stored are dropped by the (thing, seq) key. Several
collectors on one queue split it with no coordinator of ours.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from typing import Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.fleet.aws_rule import decode_forwarded
from edgekit.toolkit.fleet.collector import Collector

log = logging.getLogger("edgekit.fleet.sqs")
NOT_FORWARDED = "sqs/not-a-forwarded-message"  # rejected by the parser, recorded, deleted


class SqsSource:
    def __init__(
        self,
        collector: Collector,
        queue_url: str,
        client: Any,
        *,
        wait_s: int = 10,
        visibility_s: int = 60,
        idle_s: float = 0.5,
    ) -> None:
        self.collector = collector
        self.queue_url = queue_url
        self.client = client
        self.wait_s = wait_s
        self.visibility_s = visibility_s
        self.idle_s = idle_s
        self.filters = [queue_url]
        self.host, self.port = queue_url, 443
        self.connected = threading.Event()
        self.received = 0
        self.deleted = 0
        self.last_error: str | None = None
        self._acked: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def check(client: Any, queue_url: str) -> None:
        """The queue is there and readable (BadInputError naming it when not)."""
        try:
            client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        except Exception as exc:  # botocore ClientError, endpoint errors
            raise BadInputError(
                f"cannot read the SQS queue {queue_url}: {exc}",
                hint="pass the queue URL the topic rule writes to (and its `region`)",
            ) from None

    def start(self) -> SqsSource:
        """Check the queue, then poll it on a thread."""
        self.check(self.client, self.queue_url)
        self.connected.set()
        self._thread = threading.Thread(target=self._loop, name="fleet-sqs", daemon=True)
        self._thread.start()
        return self

    def poll_once(self) -> int:
        """One receive (up to 10 messages); returns how many were submitted."""
        resp = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.wait_s,
            VisibilityTimeout=self.visibility_s,
        )
        messages = resp.get("Messages") or []
        for m in messages:
            handle = m["ReceiptHandle"]
            try:
                topic, payload = decode_forwarded(m["Body"])
            except ValueError:
                topic, payload = NOT_FORWARDED, m["Body"].encode("utf-8", "replace")
            self.collector.submit(topic, payload, functools.partial(self._acked.put, handle))
        self.received += len(messages)
        return len(messages)

    def delete_acknowledged(self) -> int:
        """Delete what the collector stored (batches of ten, SQS's maximum)."""
        handles: list[str] = []
        while True:
            try:
                handles.append(self._acked.get_nowait())
            except queue.Empty:
                break
        for i in range(0, len(handles), 10):
            chunk = handles[i : i + 10]
            resp = self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(k), "ReceiptHandle": h} for k, h in enumerate(chunk)],
            )
            self.deleted += len(resp.get("Successful") or [])
            for failed in resp.get("Failed") or []:  # comes back after the visibility timeout
                log.warning("SQS delete failed: %s", failed)
        return len(handles)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                got = self.poll_once()
                self.delete_acknowledged()
                self.connected.set()
                if not got and self.wait_s < 1:
                    # a short poll on an empty queue would spin: the receive loop then holds
                    # the GIL against the writer (seen: a 30-message batch took over 60 s)
                    self._stop.wait(self.idle_s)
            except Exception as exc:  # network, throttling: keep polling, undeleted come back
                self.connected.clear()
                self.last_error = repr(exc)
                log.warning("SQS poll failed: %r", exc)
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.wait_s + 5)
            self._thread = None
        self.delete_acknowledged()
        self.connected.clear()
