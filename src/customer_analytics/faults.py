"""Fault injection for tests that kill a real process at a named moment.

With ``CA_KILL_AT=<point>`` in its environment, a process sends itself SIGKILL when it reaches
:func:`kill_point` ``(<point>)``: no clean-up, no ``finally``, no flush, exactly like the OOM killer or
``kill -9``. Unset (always, outside tests), :func:`kill_point` does nothing.

Points: ``registry:model-written``, ``registry:meta-written``, ``registry:renamed`` (see
:meth:`registry.LocalRegistry.log_model`).
"""

from __future__ import annotations

import os
import signal

KILL_VAR = "CA_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process if ``CA_KILL_AT`` names ``name`` (a comma-separated list is allowed)."""
    wanted = os.environ.get(KILL_VAR)
    if wanted and name in {w.strip() for w in wanted.split(",")}:
        os.kill(os.getpid(), signal.SIGKILL)
