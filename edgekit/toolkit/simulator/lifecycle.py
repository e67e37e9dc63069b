"""One component's lifecycle as the nucleus runs it (GenericExternalService + Lifecycle).

States NEW -> INSTALLED -> STARTING -> RUNNING -> STOPPING -> FINISHED, plus ERRORED and BROKEN.
- Install (Skipif onpath/exists honoured) -> INSTALLED; a failure retries Install.
- Startup: STARTING until the script exits 0 or the component reports RUNNING over IPC
  (the process may keep running; a later non-zero exit is an error, a later exit 0 changes
  nothing). Run: RUNNING as it starts, exit 0 -> FINISHED. Neither: FINISHED after Install.
- Install never waits for dependencies; STARTING waits until every HARD dependency is ready
  (the device answers `dependencies_ready`); SOFT ones are not waited for.
- An error (non-zero exit, timeout, IPC ERRORED) runs Recover, then STOPPING runs Shutdown and
  stops the processes, and it starts again. Errors are counted per state the component was
  in; three in a row make it BROKEN (sticky until a new deployment), which from STARTING or
  RUNNING runs Shutdown once more. A gap of `error_reset_s` since the previous error forgets it.
- `request_restart` (a HARD dependency stopped being ready) stops it through Shutdown and
  starts it again without counting an error.
- Default timeouts: install 120 s, startup 120 s, shutdown 15 s, recover 60 s, run none;
  a step's `Timeout` overrides them. Tests shrink them through `Timeouts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.toolkit.greengrass.skipif import should_skip
from edgekit.toolkit.simulator.processes import LogSink, ProcessLimits, ScriptProcess, spawn

NEW, INSTALLED, STARTING, RUNNING = "NEW", "INSTALLED", "STARTING", "RUNNING"
STOPPING, FINISHED, ERRORED, BROKEN = "STOPPING", "FINISHED", "ERRORED", "BROKEN"
STATES = (NEW, INSTALLED, STARTING, RUNNING, STOPPING, FINISHED, ERRORED, BROKEN)
MAX_CONTINUAL_ERRORS = 3


@dataclass(frozen=True)
class Timeouts:
    install: float = 120.0
    startup: float = 120.0
    shutdown: float = 15.0
    recover: float = 60.0
    bootstrap: float = 120.0
    run: float | None = None
    error_reset_s: float = 3600.0
    kill_grace_s: float = 5.0
    restart_delay_s: float = 0.0

    def scaled(self, factor: float) -> Timeouts:
        return replace(
            self,
            install=self.install * factor,
            startup=self.startup * factor,
            shutdown=self.shutdown * factor,
            recover=self.recover * factor,
            bootstrap=self.bootstrap * factor,
        )


@dataclass(frozen=True)
class Step:
    name: str
    script: str
    timeout: float | None
    skipif: str | None
    setenv: dict[str, str]
    requires_privilege: bool


def parse_step(name: str, node: Any, default_timeout: float | None) -> Step | None:
    if node is None:
        return None
    if isinstance(node, str):
        return Step(name, node, default_timeout, None, {}, False)
    if not isinstance(node, dict) or not node.get("Script"):
        return None
    timeout = node.get("Timeout")
    return Step(
        name,
        str(node["Script"]),
        float(timeout) if timeout not in (None, "") else default_timeout,
        node.get("Skipif"),
        {str(k): _env_value(v) for k, v in (node.get("Setenv") or {}).items()},
        str(node.get("RequiresPrivilege", False)).lower() == "true",
    )


def _env_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class ComponentService:
    """Runs one component version's lifecycle on a device; `state` is what the nucleus reports."""

    def __init__(
        self,
        name: str,
        version: str,
        lifecycle: dict[str, Any],
        *,
        env: dict[str, str],
        work_dir: Path,
        log_path: Path,
        timeouts: Timeouts,
        limits: ProcessLimits = ProcessLimits(),
        on_state: Callable[[ComponentService, str], None] | None = None,
        on_process: Callable[[ScriptProcess | None], None] | None = None,
        dependencies_ready: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._dependencies_ready = dependencies_ready or (lambda: True)
        self._dependency_changed = asyncio.Event()
        self.version = version
        self.timeouts = timeouts
        self.limits = limits
        self.work_dir = work_dir
        self.log = LogSink(log_path, name)
        self._on_state = on_state
        self._on_process = on_process
        lc = {k: v for k, v in lifecycle.items()}
        base_env = dict(env)
        base_env.update({str(k): _env_value(v) for k, v in (lc.get("Setenv") or {}).items()})
        self.env = base_env
        t = timeouts
        self.steps = {
            "Bootstrap": parse_step("Bootstrap", lc.get("Bootstrap"), t.bootstrap),
            "Install": parse_step("Install", lc.get("Install"), t.install),
            "Startup": parse_step("Startup", lc.get("Startup"), t.startup),
            "Run": parse_step("Run", lc.get("Run"), t.run),
            "Shutdown": parse_step("Shutdown", lc.get("Shutdown"), t.shutdown),
            "Recover": parse_step("Recover", lc.get("Recover"), t.recover),
        }
        self.state = NEW
        self.history: list[tuple[float, str]] = [(time.time(), NEW)]
        self.status_detail = ""
        self.last_error = ""  # why the latest error happened (status_detail moves on)
        self._errors: dict[str, list[float]] = {}
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._main_proc: ScriptProcess | None = None
        self._stop_requested = False
        self._changed = asyncio.Event()
        self.restarts = 0

    # --- public -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._main(), name=f"svc-{self.name}"
            )

    async def stop(self) -> None:
        """Run Shutdown, stop the processes, end in FINISHED (BROKEN stays BROKEN)."""
        self._stop_requested = True
        self._events.put_nowait(("stop", None))
        self._dependency_changed.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.log.close()

    def dependency_changed(self) -> None:
        """A dependency changed state: look again whether this one may start."""
        self._dependency_changed.set()

    def request_restart(self) -> None:
        """GreengrassService.requestRestart: Shutdown, then start again (not an error)."""
        self._events.put_nowait(("restart", None))

    @property
    def startup_errored(self) -> bool:
        """GreengrassService.didStartupError: an error counted from STARTING."""
        return bool(self._errors.get(STARTING))

    def report(self, state: str) -> None:
        """An IPC UpdateState from the component."""
        self._events.put_nowait(("report", state))

    def kill_main_process(self, sig: int = 9) -> bool:
        """Fault injection: kill the Startup/Run process as if it crashed."""
        if self._main_proc is None or self._main_proc.proc.returncode is not None:
            return False
        self._main_proc.signal(sig)
        return True

    @property
    def main_pid(self) -> int | None:
        p = self._main_proc
        return p.pid if p is not None and p.proc.returncode is None else None

    async def wait_for(self, states: set[str] | tuple[str, ...], timeout: float) -> str:
        """Wait until the component is in, or passes through, one of `states`."""
        start = len(self.history) - 1
        deadline = time.monotonic() + timeout
        while not any(s in states for _, s in self.history[start:]):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError(f"{self.name} is {self.state}, wanted {sorted(states)}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.state

    # --- state machine ----------------------------------------------------------------

    def _set(self, state: str, detail: str = "") -> None:
        if state == self.state and not detail:
            return
        self.log.line(
            "INFO",
            "service-set-state",
            serviceName=self.name,
            currentState=self.state,
            newState=state,
        )
        self.state = state
        self.status_detail = detail
        self.history.append((time.time(), state))
        self._changed.set()
        if self._on_state:
            self._on_state(self, state)

    def _error(self, from_state: str, detail: str) -> bool:
        """Record an error from `from_state`; True when the component just became BROKEN."""
        now = time.time()
        errs = self._errors.setdefault(from_state, [])
        if errs and now - errs[-1] >= self.timeouts.error_reset_s:
            errs.clear()
        errs.append(now)
        self.last_error = detail
        self._set(ERRORED, detail)
        if len(errs) >= MAX_CONTINUAL_ERRORS:
            self._set(BROKEN, f"{detail} ({len(errs)} errors in a row from {from_state})")
            return True
        return False

    def _env_for(self, step: Step) -> dict[str, str]:
        env = dict(self.env)
        env.update(step.setenv)
        return env

    async def _run_step(self, step: Step | None) -> tuple[str, int | None]:
        """Run a step to completion: ('skipped'|'ok'|'failed'|'timeout'|'stopped', rc)."""
        if step is None:
            return "ok", None
        env = self._env_for(step)
        if should_skip(step.skipif, env, self.work_dir):
            self.log.line("INFO", f"{step.name} skipped", skipif=step.skipif or "")
            return "skipped", None
        proc = await spawn(
            step.script,
            env=env,
            cwd=self.work_dir,
            log=self.log,
            step=step.name,
            limits=self.limits,
        )
        self._notify_proc(proc)
        try:
            rc = await asyncio.wait_for(asyncio.shield(proc.wait()), step.timeout)
        except asyncio.TimeoutError:
            await proc.terminate(self.timeouts.kill_grace_s)
            self.log.line(
                "WARN", f"{step.name} timed out after {step.timeout}s", serviceName=self.name
            )
            return "timeout", None
        finally:
            self._notify_proc(None)
        return ("ok" if rc == 0 else "failed"), rc

    def _notify_proc(self, proc: ScriptProcess | None) -> None:
        if self._on_process:
            self._on_process(proc)

    async def _main(self) -> None:
        try:
            await self._lifecycle()
        except Exception as exc:  # never leave a device hanging on a simulator bug
            self.log.line("ERROR", f"simulator error: {exc!r}")
            self._set(BROKEN, f"simulator error: {exc}")
            raise

    async def _lifecycle(self) -> None:
        phase = NEW
        boot = self.steps["Bootstrap"]
        if boot is not None:
            outcome, rc = await self._run_step(boot)
            if outcome in ("failed", "timeout"):
                self._error(NEW, f"Bootstrap {outcome} (rc={rc})")
                self._set(BROKEN, "Bootstrap failed")
                return
        while not self._stop_requested:
            if phase == NEW:
                outcome, rc = await self._run_step(self.steps["Install"])
                if self._stop_requested:
                    break
                if outcome in ("failed", "timeout"):
                    code = "INSTALL_TIMEOUT" if outcome == "timeout" else f"INSTALL_ERRORED rc={rc}"
                    if self._error(NEW, code):
                        return
                    await self._recover()
                    await asyncio.sleep(self.timeouts.restart_delay_s)
                    continue
                self._errors.pop(NEW, None)
                self._set(INSTALLED)
                phase = INSTALLED
            # Install never waits for dependencies; STARTING waits for the HARD ones
            # (Lifecycle.handleCurrentStateInstalledAsync: waitForDependencyReady)
            if not await self._wait_for_dependencies():
                break
            result, from_state, detail = await self._start_and_supervise()
            if result == "finished":
                self._set(FINISHED)
                await self._wait_stop()
                return
            if result == "stopped":
                break
            if result == "restart":  # a HARD dependency left RUNNING: stop, start again
                self._set(STOPPING)
                await self._run_step(self.steps["Shutdown"])
                await self._stop_main()
                self.restarts += 1
                self._set(INSTALLED)
                continue
            broken = self._error(from_state, detail)
            if broken:
                # Lifecycle.handleCurrentStateBroken: from STARTING/RUNNING, shutdown() runs
                # the Shutdown step, then the processes are stopped
                if from_state in (STARTING, RUNNING):
                    await self._run_step(self.steps["Shutdown"])
                await self._stop_main()
                return
            await self._recover()
            self._set(STOPPING)
            await self._run_step(self.steps["Shutdown"])
            await self._stop_main()
            self.restarts += 1
            self._set(INSTALLED)
            await asyncio.sleep(self.timeouts.restart_delay_s)
        if self.state != BROKEN:
            self._set(STOPPING)
            await self._run_step(self.steps["Shutdown"])
            await self._stop_main()
            self._set(FINISHED)

    async def _wait_for_dependencies(self) -> bool:
        """Until every HARD dependency is ready; False when a stop came first."""
        while not self._stop_requested:
            self._dependency_changed.clear()
            if self._dependencies_ready():
                return True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._dependency_changed.wait(), 1.0)
        return False

    async def _wait_stop(self) -> None:
        while True:
            kind, _ = await self._events.get()
            if kind == "stop":
                return

    async def _recover(self) -> None:
        if self.steps["Recover"] is not None:
            await self._run_step(self.steps["Recover"])

    async def _stop_main(self) -> None:
        if self._main_proc is not None:
            await self._main_proc.terminate(self.timeouts.kill_grace_s)
            self._main_proc = None
            self._notify_proc(None)

    async def _start_and_supervise(self) -> tuple[str, str, str]:
        """Start Startup or Run and watch it: ('finished'|'stopped'|'errored', from_state, why)."""
        startup, run = self.steps["Startup"], self.steps["Run"]
        step = startup or run
        if step is None:
            return "finished", INSTALLED, ""
        # drop reports that belong to a previous run
        while not self._events.empty():
            kind, _ = self._events.get_nowait()
            if kind == "stop":
                return "stopped", self.state, ""
        env = self._env_for(step)
        if should_skip(step.skipif, env, self.work_dir):
            return "finished", INSTALLED, ""
        self._set(STARTING)
        proc = await spawn(
            step.script,
            env=env,
            cwd=self.work_dir,
            log=self.log,
            step=step.name,
            limits=self.limits,
        )
        self._main_proc = proc
        self._notify_proc(proc)
        token = object()

        async def watch_exit() -> None:
            rc = await proc.wait()
            self._events.put_nowait(("exit", (token, rc)))

        asyncio.get_running_loop().create_task(watch_exit())
        is_startup = startup is not None
        if not is_startup:
            self._set(RUNNING)
        deadline = time.monotonic() + step.timeout if step.timeout else None
        exited_ok = False
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                kind, value = await asyncio.wait_for(self._events.get(), timeout)
            except asyncio.TimeoutError:
                code = "STARTUP_TIMEOUT" if self.state == STARTING else "RUN_TIMEOUT"
                return "errored", self.state, code
            if kind == "stop":
                return "stopped", self.state, ""
            if kind == "restart":
                return "restart", self.state, ""
            if kind == "report":
                if value == "RUNNING" and self.state == STARTING:
                    self._errors.pop(STARTING, None)
                    self._set(RUNNING)
                    deadline = None
                elif value == "ERRORED":
                    return "errored", self.state, "reported ERRORED over IPC"
                continue
            if kind == "exit":
                owner, rc = value
                if owner is not token or exited_ok:
                    continue  # a previous run's process
                self._main_proc = None
                self._notify_proc(None)
                if rc != 0:
                    return "errored", self.state, f"{step.name} exited with {rc}"
                if not is_startup:
                    return "finished", RUNNING, ""
                # Startup exited 0: RUNNING if not yet, otherwise nothing changes
                exited_ok = True
                if self.state == STARTING:
                    self._errors.pop(STARTING, None)
                    self._set(RUNNING)
                deadline = None
