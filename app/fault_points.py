"""Test-only fault injection for long actions (force sessions, the notification outbox): a process dies here
as a killed worker would (TAS_FAULT_KILL_AT=<step>) or freezes as a paused VM would (TAS_FAULT_STOP_AT=<step>).
Does nothing unless the variable names the step."""
from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

FAULT_ENV = "TAS_FAULT_KILL_AT"  # tests only: the step at which this process kills itself
FAULT_STOP_ENV = "TAS_FAULT_STOP_AT"  # tests only: the step at which it freezes (SIGSTOP) until woken up


def fault_point(step: str) -> None:
    """Die (SIGKILL) or freeze (SIGSTOP) here when the test asked for this step."""
    if os.environ.get(FAULT_ENV) == step:
        log.warning("Fault injection: killing this process at %s", step)
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(FAULT_STOP_ENV) == step:
        log.warning("Fault injection: freezing this process at %s", step)
        os.kill(os.getpid(), signal.SIGSTOP)
