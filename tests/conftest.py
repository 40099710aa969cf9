import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SHAKESPEARE = ROOT / "lmtools" / "data" / "tinyshakespeare.txt"
SHARED = ROOT.parent / "shared"
PTB = SHARED / "data" / "ptb"


def run_prog(prog: str, *args, input: bytes | None = None, env: dict | None = None, cwd=None):
    """Run an lm-* program as a real process (python -m lmtools.cli.<module>), bytes in and out."""
    module = {"lm-count": "count", "lm-info": "info", "lm-train": "train", "lm-ppl": "ppl",
              "lm-score": "score", "lm-gen": "gen", "lm-merge": "merge"}[prog]
    full_env = dict(os.environ)
    full_env.pop("LMTOOLS_DEBUG", None)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", f"lmtools.cli.{module}", *map(str, args)], input=input,
                          capture_output=True, env=full_env, cwd=cwd, timeout=300)


@pytest.fixture
def prog():
    return run_prog
