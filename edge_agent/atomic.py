"""Atomic writes: build next to the target, then rename, so a failure leaves nothing half-written."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | Path) -> None:
    """Make a rename (or a new entry) in ``folder`` durable: without it a power loss right after
    ``os.replace`` can bring back the old file, or none. A no-op where folders cannot be opened
    (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename itself stands
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays show up in metrics; keep this module free of a numpy import.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _host_tag() -> str:
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _owner_tag() -> str:
    """pid and host of the process that makes a staging folder, in its name, so a later run can
    tell a dead run's leftovers from a live one's."""
    return f"{os.getpid()}@{_host_tag()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True


def clean_stale_staging(target: str | Path) -> list[Path]:
    """Remove the staging folders (and swapped-out old outputs) that an interrupted run of ours
    left beside `target`: only those named with this host and a process that is gone."""
    import re

    target = Path(target).absolute()
    host = _host_tag()
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:(\d+)@{host}\..+\.partial|old-(\d+))$")
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        m = pattern.match(entry.name)
        if not m or entry.is_symlink() or not entry.is_dir():
            continue
        pid = int(m.group(1) or m.group(2))
        if pid == os.getpid() or pid_alive(pid):
            continue
        if m.group(2) and not target.exists():
            os.replace(entry, target)  # killed between the two renames: put the old one back
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def staging_dir(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a fresh folder beside `target`; on success rename it to `target`.

    On any exception the staging folder is removed and `target` is left as it was.
    With `replace=True` an existing target is swapped out only after the new one is complete.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(target)
    stage = Path(
        tempfile.mkdtemp(
            prefix=f".{target.name}.{_owner_tag()}.", suffix=".partial", dir=target.parent
        )
    )
    # mkdtemp makes the folder private (0700); the result should get the usual umask mode
    os.chmod(stage, 0o777 & ~_umask())
    try:
        yield stage
        if target.exists():
            if not replace:
                raise FileExistsError(f"{target} already exists")
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(stage, target)
            fsync_dir(target.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, target)
            fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
