"""Compile the programs' numba kernels before the tests run, in two processes at once.

On a fresh clone numba's cache is empty and the first test to reach each kernel pays for its
compilation (most of the suite's time). conftest.py runs this once per session when the cache holds
no kernel yet: the n-gram programs in one lane and the FFNN ones in the other, on tiny inputs, so
the compilation uses both cores and the tests (and the xdist workers, which would otherwise each
compile the same kernel at the same time) load the kernels from the cache.
Run by hand: python -m tests.warm_kernels ngram|ffnn DIR
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "lmtools" / "data" / "tinyshakespeare.txt"


def _run(module: str, *args, input: bytes | None = None) -> None:
    subprocess.run([sys.executable, "-m", f"lmtools.cli.{module}", *map(str, args)], input=input, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


def ngram(d: Path) -> None:
    text = d / "text.txt"
    text.write_bytes(SHAKESPEARE.read_bytes()[:300_000])  # above the small-input threshold: the numba paths
    _run("count", "-n", "3", text, "-o", d / "c3.lm")
    _run("train", "-q", "-o", d / "kn3.lm", d / "c3.lm")
    _run("count", "-n", "3", "--text", text, "-o", d / "c3.txt")  # text counts: writer and reader kernels
    _run("train", "-q", "-o", d / "kn3t.lm", d / "c3.txt")
    _run("ppl", "-m", d / "kn3.lm", text)
    _run("ppl", "-m", d / "c3.lm", text)
    _run("score", "-m", d / "kn3.lm", text)
    _run("train", "-q", "--trie", "-o", d / "t3.lm", d / "kn3.lm")  # the compact form's build and scoring kernels
    _run("ppl", "-m", d / "t3.lm", text)
    _run("gen", "-m", d / "c3.lm", "-s", "5", "--seed", "1")
    _run("gen", "-m", d / "kn3.lm", "-s", "5", "--seed", "1", "--scores")
    ffnn(d, ("class",))  # after the other lane's softmax model has compiled the kernels both layers use


def ffnn(d: Path, layers=("softmax",)) -> None:
    text = d / "small.txt"
    text.write_bytes(b"".join(SHAKESPEARE.read_bytes().splitlines(keepends=True)[:300]))
    for layer in layers:
        model = d / f"ffnn-{layer}.lm"
        _run("train", "-q", "--method", "ffnn", "--context", "2", "--dim", "8", "--hidden", "8", "--epochs", "1",
             "--seed", "1", "--output-layer", layer, text, "-o", model)
        _run("ppl", "-m", model, text)
        _run("score", "-m", model, text)
        _run("gen", "-m", model, "-s", "3", "--seed", "1")


def cache_is_cold() -> bool:
    """No compiled lmtools kernel in numba's cache (NUMBA_CACHE_DIR or the kernels' __pycache__)."""
    where = os.environ.get("NUMBA_CACHE_DIR")
    root = Path(where) if where else ROOT / "lmtools" / "kernels" / "__pycache__"
    return not root.is_dir() or not any(root.rglob("*.nbi"))


def warm_in_parallel(d: Path) -> None:
    """Both lanes at once, each in its own process; returns when both are done."""
    procs = []
    for lane in ("ngram", "ffnn"):
        (d / lane).mkdir(parents=True, exist_ok=True)
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.warm_kernels", lane, str(d / lane)], cwd=ROOT))
    for p in procs:
        p.wait()


if __name__ == "__main__":
    {"ngram": ngram, "ffnn": ffnn}[sys.argv[1]](Path(sys.argv[2]))
