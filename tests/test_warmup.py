"""lm-train's warm-up in a pipe (lmtools.cli.warmup): it loads numba's kernels only while upstream is
still at work, so that a small input (estimated without numba) never waits for them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from lmtools.cli import warmup

SMOOTH = {"method": "kn-modified", "interpolate": None, "k": 1.0, "alpha": 0.4, "kenlm_compat": False}


def _numba_loaded_after_warm_up(waiting: bool) -> bool:
    code = ("import sys\nfrom lmtools.cli.warmup import warm_counts_path\n"
            f"warm_counts_path(3, {SMOOTH!r}, waiting=lambda: {waiting})\n"
            "print('numba' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip() == "True"


def test_numba_is_loaded_only_while_the_input_is_awaited():
    assert _numba_loaded_after_warm_up(True)
    assert not _numba_loaded_after_warm_up(False)


def test_stdin_waiting_sees_the_input_arrive(monkeypatch):
    r, w = os.pipe()
    try:
        class Stdin:
            def fileno(self):
                return r

        monkeypatch.setattr(sys, "stdin", Stdin())
        monkeypatch.setattr(warmup, "FIRST_LOOK_S", 0.05)
        t = time.monotonic()
        assert warmup.stdin_waiting([])  # nothing written: upstream at work (after the first look's wait)
        assert time.monotonic() - t >= 0.04
        assert warmup.stdin_waiting([True])
        os.write(w, b"x")
        assert not warmup.stdin_waiting([True])  # data
        os.read(r, 1)
        os.close(w)
        w = None
        assert not warmup.stdin_waiting([True])  # the end of the input
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
