"""Run ``bertkit ARGS`` as a torchrun worker whose rank 1 kills itself (SIGKILL) right after step 5 on
the first attempt: what a crashed machine or an out-of-memory kill does to one process of a job."""

from __future__ import annotations

import os
import signal
import sys

from bertkit.cli.app import main
from bertkit.training import loop

KILL_AFTER_STEP = 5
real_report = loop.report_step


def report(bar, train_log, state, *rest):
    real_report(bar, train_log, state, *rest)
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if first_attempt and os.environ.get("RANK") == "1" and state.step == KILL_AFTER_STEP:
        os.kill(os.getpid(), signal.SIGKILL)


loop.report_step = report
sys.exit(main(sys.argv[1:]))
