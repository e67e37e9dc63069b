"""A stop signal as a plain flag, the one way the agent and the fleet collector take SIGTERM.

The handler only sets an attribute: no lock, no Event. Python runs a signal handler on the
main thread between any two bytecodes, also while that thread holds an Event's lock inside
Event.wait(); Event.set() there waits for that lock forever (an agent hung on SIGTERM that
way, under load). The loop that waits polls the flag with a short sleep, which a signal cuts
short.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from types import FrameType
from typing import Any


class StopFlag:
    """True once one of the installed signals arrived. `install` keeps the handlers it
    replaced so that `restore` (or leaving the `with` block) puts them back."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}

    def __bool__(self) -> bool:
        return self.raised

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.raised = True  # a plain attribute: see the module docstring

    def install(self, signums: Iterable[int] = (signal.SIGTERM,)) -> StopFlag:
        """Take these signals (main thread only, as signal.signal requires)."""
        for signum in signums:
            self._previous.setdefault(signum, signal.signal(signum, self._handle))
        return self

    def restore(self) -> None:
        """Put back the handlers `install` replaced."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def __enter__(self) -> StopFlag:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.restore()
