"""An exclusive lock on a folder, so read-modify-write of a file inside it loses no update.

Two `edgekit quantize` runs on one bundle each read the manifest, add their variant and write it
back: without a lock the second write drops the first variant. On POSIX the lock is `flock` on
the folder itself (no file is left behind, and the kernel frees it when a process dies); where
`fcntl` is missing, a lock file made with O_EXCL that holds the owner's pid (a dead owner's
file is taken over).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from edge_agent.atomic import pid_alive
from edge_agent.errors import BadInputError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".edgekit.lock"  # only where fcntl is missing
DEFAULT_TIMEOUT_S = 120.0
POLL_S = 0.05


class LockTimeoutError(BadInputError):
    """Another process held the lock for longer than we were willing to wait."""


def _timeout_error(folder: Path, timeout: float) -> LockTimeoutError:
    return LockTimeoutError(
        f"{folder} is being written by another edgekit command (waited {timeout:.0f} s)",
        hint="wait for the other command to finish, then run this one again",
    )


@contextlib.contextmanager
def locked(folder: str | Path, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive lock on `folder` for the body; wait up to `timeout` seconds for it."""
    folder = Path(folder)
    if fcntl is None:  # pragma: no cover - Windows
        with _file_lock(folder, timeout):
            yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _timeout_error(folder, timeout) from None
                time.sleep(POLL_S)  # waiting for the other writer, not synchronising a test
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _file_lock(folder: Path, timeout: float) -> Iterator[None]:  # pragma: no cover - Windows
    path = folder / LOCK_FILE
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            break
        except FileExistsError:
            with contextlib.suppress(OSError, ValueError):
                if not pid_alive(int(path.read_text().strip() or "0")):
                    path.unlink()
                    continue
            if time.monotonic() >= deadline:
                raise _timeout_error(folder, timeout) from None
            time.sleep(POLL_S)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
