"""The lifecycle state machine with small shell-script components (sub-second timeouts)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edgekit.toolkit.simulator.lifecycle import (
    BROKEN,
    ERRORED,
    FINISHED,
    INSTALLED,
    RUNNING,
    STARTING,
    ComponentService,
    Timeouts,
)

FAST = Timeouts(install=1.0, startup=1.0, shutdown=0.5, recover=0.5, kill_grace_s=0.2)


def _svc(tmp_path: Path, lifecycle: dict, **kw) -> ComponentService:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return ComponentService(
        "com.test.C",
        "1.0.0",
        lifecycle,
        env={"PATH": "/usr/bin:/bin", "BASE": "b"},
        work_dir=work,
        log_path=tmp_path / "logs" / "com.test.C.log",
        timeouts=kw.pop("timeouts", FAST),
        **kw,
    )


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def _states(svc: ComponentService) -> list[str]:
    return [s for _, s in svc.history]


def test_run_exit_zero_finishes_and_setenv_reaches_the_step(tmp_path):
    async def go():
        svc = _svc(
            tmp_path,
            {
                "Setenv": {"A": "lifecycle", "B": 1},
                "Install": "echo installed > marker",
                "Run": {"Script": 'echo "$A $B $BASE $C" > out.txt', "Setenv": {"C": "step"}},
            },
        )
        svc.start()
        await svc.wait_for({FINISHED}, 5)
        await svc.stop()
        return svc

    svc = _run(go())
    assert (tmp_path / "work/out.txt").read_text().strip() == "lifecycle 1 b step"
    assert _states(svc)[:4] == ["NEW", INSTALLED, STARTING, RUNNING]
    assert svc.state == FINISHED
    log = (tmp_path / "logs/com.test.C.log").read_text()
    assert "services.com.test.C.lifecycle.Run" in log


def test_three_failures_in_a_row_make_it_broken_and_recover_runs(tmp_path):
    async def go():
        svc = _svc(tmp_path, {"Run": "echo boom >&2; exit 3", "Recover": "echo r >> recovered"})
        svc.start()
        await svc.wait_for({BROKEN}, 8)
        return svc

    svc = _run(go())
    states = _states(svc)
    assert states.count(ERRORED) == 3 and states[-1] == BROKEN
    # Recover ran after the first two errors, not after the one that broke it
    assert (tmp_path / "work/recovered").read_text().count("r") == 2
    assert "stderr. boom" in (tmp_path / "logs/com.test.C.log").read_text()


def test_install_failure_retries_install_then_breaks(tmp_path):
    async def go():
        svc = _svc(tmp_path, {"Install": "echo x >> tries; exit 1", "Run": "echo never > ran"})
        svc.start()
        await svc.wait_for({BROKEN}, 8)
        return svc

    svc = _run(go())
    assert (tmp_path / "work/tries").read_text().count("x") == 3
    assert not (tmp_path / "work/ran").exists()
    assert INSTALLED not in _states(svc)


def test_install_timeout_counts_as_an_error(tmp_path):
    t = Timeouts(install=0.3, startup=1, shutdown=0.5, recover=0.5, kill_grace_s=0.1)

    async def go():
        svc = _svc(tmp_path, {"Install": {"Script": "sleep 5", "Timeout": 0.2}}, timeouts=t)
        svc.start()
        await svc.wait_for({BROKEN}, 8)
        return svc

    svc = _run(go())
    assert svc.status_detail.startswith("INSTALL_TIMEOUT")


def test_skipif_onpath_and_exists(tmp_path):
    async def go():
        svc = _svc(
            tmp_path,
            {
                "Install": {"Script": "echo ran > install_ran", "Skipif": "onpath sh"},
                "Run": {"Script": "echo ran > run_ran", "Skipif": "exists nothing-here"},
            },
        )
        svc.start()
        await svc.wait_for({FINISHED}, 5)
        await svc.stop()

    _run(go())
    assert not (tmp_path / "work/install_ran").exists()  # sh is on PATH: skipped
    assert (tmp_path / "work/run_ran").exists()


def test_startup_must_report_running_or_it_times_out(tmp_path):
    async def go():
        svc = _svc(tmp_path, {"Startup": "sleep 30"})
        svc.start()
        await svc.wait_for({ERRORED}, 5)
        first = svc.last_error
        await svc.wait_for({STARTING}, 5)
        svc.report("RUNNING")  # the restarted startup reports in time
        await svc.wait_for({RUNNING}, 5)
        await svc.stop()
        return svc, first

    svc, first = _run(go())
    assert first == "STARTUP_TIMEOUT"
    assert svc.state == FINISHED
    assert svc.restarts == 1


def test_startup_that_reported_running_and_then_crashes_is_restarted(tmp_path):
    async def go():
        svc = _svc(tmp_path, {"Startup": "sleep 30", "Shutdown": "echo s >> shut"})
        svc.start()
        await svc.wait_for({STARTING}, 5)
        svc.report("RUNNING")
        await svc.wait_for({RUNNING}, 5)
        pid = svc.main_pid
        assert svc.kill_main_process()  # the "agent killed" fault
        await svc.wait_for({ERRORED}, 5)
        await svc.wait_for({STARTING}, 5)
        svc.report("RUNNING")
        await svc.wait_for({RUNNING}, 5)
        new_pid = svc.main_pid
        await svc.stop()
        return svc, pid, new_pid

    svc, pid, new_pid = _run(go())
    assert pid != new_pid and new_pid is not None
    assert (tmp_path / "work/shut").read_text().count("s") == 2  # after the crash, and at stop
    assert svc.state == FINISHED


def test_startup_exit_zero_is_running(tmp_path):
    async def go():
        svc = _svc(tmp_path, {"Startup": "exit 0"})
        svc.start()
        await svc.wait_for({RUNNING}, 5)
        await asyncio.sleep(0.2)
        state = svc.state
        await svc.stop()
        return state

    assert _run(go()) == RUNNING


@pytest.mark.parametrize("state", ["ERRORED"])
def test_ipc_errored_report_is_an_error(tmp_path, state):
    async def go():
        svc = _svc(tmp_path, {"Startup": "sleep 30"})
        svc.start()
        await svc.wait_for({STARTING}, 5)
        svc.report(state)
        await svc.wait_for({ERRORED}, 5)
        detail = svc.last_error
        await svc.stop()
        return detail

    assert "reported ERRORED" in _run(go())
