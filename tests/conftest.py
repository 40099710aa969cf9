import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SHAKESPEARE = ROOT / "lmtools" / "data" / "tinyshakespeare.txt"
SHARED = ROOT.parent / "shared"
PTB = SHARED / "data" / "ptb"


def error_line(r, prog: str, code: int) -> str:
    """The one line ``prog: error: what; what to do`` of a failed run, after checking its exit status.
    ``r`` is a subprocess result (bytes) or a click CliRunner result."""
    if hasattr(r, "exit_code"):
        status, err = r.exit_code, r.stderr
    else:
        status, err = r.returncode, r.stderr.decode(errors="replace")
    lines = err.strip().splitlines()
    assert status == code, (status, err)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: ") and "; " in lines[0], lines[0]
    return lines[0]


# Each program and its module under lmtools.cli.
PROGRAMS = {"lm-count": "count", "lm-train": "train", "lm-ppl": "ppl", "lm-score": "score", "lm-gen": "gen",
            "lm-info": "info", "lm-merge": "merge", "lm-mix": "mix",
            "lm-prune": "prune"}


def run_prog(prog: str, *args, input: bytes | None = None, env: dict | None = None, cwd=None):
    """Run an lm-* program as a real process (python -m lmtools.cli.<module>), bytes in and out."""
    module = PROGRAMS[prog]
    full_env = dict(os.environ)
    full_env.pop("LMTOOLS_DEBUG", None)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", f"lmtools.cli.{module}", *map(str, args)], input=input,
                          capture_output=True, env=full_env, cwd=cwd, timeout=300)


@pytest.fixture
def prog():
    return run_prog


# A program run in process (click's CliRunner) sets what a real program must: SIGPIPE to its default
# action (`| head` ends it quietly), its handlers for SIGINT/TERM/HUP and a wakeup fd. Left in the test
# process, SIGPIPE's default kills it (an xdist worker, "node down") the next time a test writes to a
# subprocess that has exited. Every test starts and ends with the state the test process began with,
# whatever a module fixture did before it.
_SIGNALS = [getattr(signal, n) for n in ("SIGPIPE", "SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]
_BASELINE_HANDLERS = {s: signal.getsignal(s) for s in _SIGNALS}


def _restore_signal_baseline() -> None:
    for s, h in _BASELINE_HANDLERS.items():
        if h is not None:
            signal.signal(s, h)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:  # not the main thread
        pass


@pytest.fixture(autouse=True)
def signal_baseline():
    _restore_signal_baseline()
    yield
    _restore_signal_baseline()


def pytest_sessionstart(session):
    """On a fresh clone (no kernel in numba's cache), compile the programs' kernels first, two processes
    at once (tests/warm_kernels.py); once, in the main process, not in each xdist worker."""
    import tempfile

    from tests import warm_kernels

    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("LMTOOLS_TEST_WARM") == "0":
        return
    if warm_kernels.cache_is_cold():
        with tempfile.TemporaryDirectory(prefix="lmtools-warm-") as d:
            warm_kernels.warm_in_parallel(Path(d))


# ----------------------------------------------------------------------------------------------
# Models built once per session and shared by the test modules (never modify them in a test)

KENLM = DATA / "kenlm"
KENLM_O3 = KENLM / "tinyshakespeare-train.o3.arpa.xz"
# every n-gram of lmplz -o 5 whose text hashes into 1 of 8 buckets (tests/data/kenlm/README.md)
KENLM_O5_SAMPLE = KENLM / "tinyshakespeare-train.o5.sample8.arpa.xz"
KENLM_O5_SAMPLE_BUCKETS = 8


def shakespeare_lines() -> list[str]:
    """Tiny Shakespeare's lines (40,000, no newlines)."""
    lines = SHAKESPEARE.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@pytest.fixture(scope="session")
def kenlm_train_file(tmp_path_factory) -> Path:
    """KenLM's training text for its reference models: head -n 36000 of Tiny Shakespeare."""
    path = tmp_path_factory.mktemp("kenlm-train") / "train.txt"
    path.write_text("\n".join(shakespeare_lines()[:36000]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def kenlm_train_counts5(kenlm_train_file):
    """Counts of orders 1..5 of KenLM's training text (truncate() gives lower orders)."""
    from lmtools.ngram.counting import count_text

    return count_text([str(kenlm_train_file)], 5)


@pytest.fixture(scope="session")
def kenlm_train_kn5(kenlm_train_counts5):
    """Our modified Kneser-Ney 5-gram of KenLM's training text (lmplz -o 5's model)."""
    from lmtools.ngram.smoothing import smooth

    return smooth(kenlm_train_counts5, "kn-modified", warn=lambda m: None)


@pytest.fixture(scope="session")
def kenlm_train_kn3(kenlm_train_counts5):
    """Our modified Kneser-Ney trigram of KenLM's training text (lmplz -o 3's model)."""
    from lmtools.ngram.smoothing import smooth

    return smooth(kenlm_train_counts5, "kn-modified", order=3, warn=lambda m: None)


@pytest.fixture(scope="session")
def kenlm_arpa3():
    """KenLM's own trigram (the vendored ARPA), read once."""
    from lmtools.io.arpa import read_arpa

    return read_arpa(str(KENLM_O3), warn=lambda m: None)
