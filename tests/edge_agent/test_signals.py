"""edge_agent.signals: SIGTERM as a plain flag, the one way the agent and the fleet collector
take it (a handler that takes a lock can deadlock the main thread that holds it)."""

from __future__ import annotations

import os
import signal
import time

from edge_agent.signals import StopFlag


def _wait_for(flag: StopFlag, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not flag and time.monotonic() < deadline:
        time.sleep(0.01)  # the handler runs on the main thread between two bytecodes
    return bool(flag)


def test_sigterm_sets_the_flag_and_restore_puts_the_handler_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    flag = StopFlag().install()
    try:
        assert not flag
        assert signal.getsignal(signal.SIGTERM) != before
        os.kill(os.getpid(), signal.SIGTERM)
        assert _wait_for(flag)
    finally:
        flag.restore()
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_with_block_restores_every_installed_signal() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopFlag().install((signal.SIGTERM, signal.SIGINT)) as flag:
        os.kill(os.getpid(), signal.SIGINT)
        assert _wait_for(flag)
        assert signal.getsignal(signal.SIGINT) != before[1]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_installing_twice_restores_the_first_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    flag = StopFlag().install()
    flag.install()  # the agent installs before start-up and again in run()
    flag.restore()
    assert signal.getsignal(signal.SIGTERM) == before
