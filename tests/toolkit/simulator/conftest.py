"""Fixtures for the simulator tests: an asyncio loop in a thread (the emulator's side) so the
real, synchronous awsiotsdk client can be driven from the test thread."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        async def _call() -> Any:
            return fn(*args)

        return self.run(_call())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short folder under /tmp: Unix socket paths are limited to ~107 bytes."""
    d = Path(tempfile.mkdtemp(prefix="eks-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
