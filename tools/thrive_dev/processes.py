"""Stopping the background processes the dev tools start (the sandbox, `make airflow`'s four)."""

from __future__ import annotations

import os
import signal
import time


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs. A child of ours that exited is reaped here: until it is, it
    stays a zombie that ``kill(pid, 0)`` still finds (a test stopping the sandbox it started waited
    out the whole grace period)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def terminate(pid: int, *, group: bool = False, grace: float = 10.0) -> None:
    """SIGTERM ``pid`` (its whole process group with ``group``), SIGKILL if still there after ``grace`` s."""
    send = os.killpg if group else os.kill
    try:
        send(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        send(pid, signal.SIGKILL)
