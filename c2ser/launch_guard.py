"""A launcher's worker dies with its launcher (Linux).

torch's elastic agent, which runs inside ``accelerate launch`` (DeepSpeed configs included) and ``torchrun``, starts
every worker in a session of its own. When the launcher is killed outright (SIGKILL, the OOM killer, a
scheduler's hard kill of the launcher alone), nothing stops its workers: they go on training, orphaned, and a job
started again finds them writing into the same output folder. A Linux process can ask the kernel for a signal
when its parent dies (``prctl(PR_SET_PDEATHSIG)``); a worker (``LOCAL_RANK`` set, as launchers set it) asks for
SIGKILL as the first thing ``c2ser`` does. (A launcher killed in the fraction of a second between a worker's start
and that request still leaves it: the worker cannot tell, since a launcher run as a container's PID 1 is its
legitimate parent 1.)
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_launcher() -> bool:
    """Ask for SIGKILL when the parent dies, in a launched worker on Linux; True if asked."""
    if "LOCAL_RANK" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):  # no libc prctl (e.g. a static or non-glibc runtime): nothing to ask
        return False
    return True
