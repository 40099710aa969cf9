"""Running the programs inside the test process through click's CliRunner (no subprocess: cheap).

Import numba before any program runs in process: lm-count's skip_blas would otherwise leave a later
FFNN in the same process without BLAS. Test modules import ``keep_signal_handlers`` (an autouse fixture)
so that the handlers a program installs for its process do not replace pytest's own.
"""

from __future__ import annotations

import importlib
import signal

import numba  # noqa: F401
import pytest
from click.testing import CliRunner

from tests.conftest import PROGRAMS


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def program_main(prog: str):
    """The click command of ``prog`` (``lm-count`` ...)."""
    return importlib.import_module(f"lmtools.cli.{PROGRAMS[prog]}").main


def invoke(prog: str, *args, input: bytes | None = None):
    return CliRunner().invoke(program_main(prog), [str(a) for a in args], input=input, prog_name=prog)


def ok(r):
    assert r.exit_code == 0, (r.exit_code, r.stderr, r.exception)
    return r
