"""Running one lifecycle script as the nucleus does: `sh -c`, cwd = the component's work folder,
stdout/stderr line by line into logs/<component>.log, its own process group so it can be
stopped whole, and the device profile's limits (CPU affinity, address-space cap) applied in
the child before it starts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessLimits:
    cpus: tuple[int, ...] | None = None  # os.sched_setaffinity in the child
    memory_bytes: int | None = None  # RLIMIT_AS in the child

    def preexec(self) -> Callable[[], None] | None:
        if not self.cpus and not self.memory_bytes:
            return None
        cpus, mem = self.cpus, self.memory_bytes

        def apply() -> None:  # runs in the child between fork and exec
            if cpus:
                os.sched_setaffinity(0, cpus)
            if mem:
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

        return apply


class LogSink:
    """Appends lines in the nucleus's log shape to one component's log file."""

    def __init__(self, path: Path, component: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.component = component
        self._fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def line(self, level: str, text: str, **ctx: str) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        extra = ", ".join(f"{k}={v}" for k, v in ctx.items())
        with contextlib.suppress(ValueError):
            self._fh.write(f"{stamp} [{level}] {self.component}: {text}. {{{extra}}}\n")

    def close(self) -> None:
        self._fh.close()


class ScriptProcess:
    def __init__(self, proc: asyncio.subprocess.Process, pumps: list[asyncio.Task]) -> None:
        self.proc = proc
        self.pumps = pumps

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait(self) -> int:
        rc = await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self.pumps), 2)
        return rc

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def terminate(self, grace_s: float) -> int:
        """SIGTERM to the group, SIGKILL after the grace period."""
        if self.proc.returncode is None:
            self.signal(signal.SIGCONT)  # a throttled (stopped) process must be able to exit
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except asyncio.TimeoutError:
                self.signal(signal.SIGKILL)
        rc = await self.wait()
        self.signal(signal.SIGKILL)  # children that outlived the shell
        return rc


async def _pump(stream: asyncio.StreamReader, log: LogSink, tag: str, ctx: dict[str, str]) -> None:
    level = "INFO" if tag == "stdout" else "WARN"
    while True:
        raw = await stream.readline()
        if not raw:
            return
        log.line(level, f"{tag}. {raw.decode('utf-8', 'replace').rstrip()}", **ctx)


async def spawn(
    script: str,
    *,
    env: dict[str, str],
    cwd: Path,
    log: LogSink,
    step: str,
    limits: ProcessLimits,
) -> ScriptProcess:
    ctx = {"scriptName": f"services.{log.component}.lifecycle.{step}", "serviceName": log.component}
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        script,
        cwd=str(cwd),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=limits.preexec(),
        limit=1 << 20,
    )
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        asyncio.create_task(_pump(proc.stdout, log, "stdout", ctx)),
        asyncio.create_task(_pump(proc.stderr, log, "stderr", ctx)),
    ]
    log.line("INFO", "shell-runner-start", **ctx, command=repr(script[:200]))
    return ScriptProcess(proc, pumps)
