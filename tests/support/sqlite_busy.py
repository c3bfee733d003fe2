"""Commands run beside a live server on one SQLite file, tried again as their refusal asks.

A command's SQLite transaction that read, then writes after the server wrote in between, is
refused at once ("database is locked"), not after the busy timeout: WAL cannot move a read
snapshot forward into a write. The command says nothing was changed and to try again; on a
loaded machine the gap is wide. (Starting SQLite write transactions with BEGIN IMMEDIATE would
make this wait instead: see the session notes.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
DATABASE_BUSY = "the database could not do it now"
"""A command's refusal when its SQLite transaction met one of the server's writes."""
DATABASE_BUSY_S = 10.0


def tried_while_busy(command: Callable[[], T], output: Callable[[T], str]) -> T:
    """``command()``, again while its ``output`` is that refusal, for up to ``DATABASE_BUSY_S``."""
    deadline = time.monotonic() + DATABASE_BUSY_S
    while True:
        done = command()
        if DATABASE_BUSY not in output(done) or time.monotonic() > deadline:
            return done
        time.sleep(0.2)
