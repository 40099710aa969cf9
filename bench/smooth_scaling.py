"""Estimation cost against the number of n-grams: PTB train at 1x, 4x and 16x.

    .venv/bin/python bench/smooth_scaling.py [--order 5] [--factors 1,4,16] [PTB_DIR]

A k-x corpus is k copies of PTB train in which copy j tags every word with ``~j`` (``<unk>``
stays), so it has about k times the distinct n-grams of PTB, not k times the same ones.
Counting is done once per corpus (lm-count's API, not timed); smoothing (interpolated modified
Kneser-Ney, warm JIT) is timed, best of 3, and reported per million n-grams.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lmtools.ngram.counting import count_text  # noqa: E402
from lmtools.ngram.smoothing import smooth  # noqa: E402


def tagged_corpus(src: Path, k: int, out: str) -> None:
    lines = src.read_text().split("\n")
    with open(out, "w") as f:
        for j in range(k):
            tag = f"~{j}" if j else ""
            for line in lines:
                if line:
                    f.write(" ".join(w if w == "<unk>" else w + tag for w in line.split()) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ptb", nargs="?", default=str(ROOT.parent / "shared" / "data" / "ptb"))
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--factors", default="1,4,16")
    args = ap.parse_args()
    print("| corpus | n-grams | smoothing s | s per M n-grams |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for k in (int(x) for x in args.factors.split(",")):
            path = os.path.join(d, f"ptb{k}.txt")
            tagged_corpus(Path(args.ptb) / "train.txt", k, path)
            counts = count_text([path], args.order)
            os.unlink(path)
            smooth(counts)  # warm
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                smooth(counts)
                best = min(best, time.perf_counter() - t)
            m = sum(counts.sizes())
            print(f"| PTB x{k} | {m} | {best:.3f} | {best / m * 1e6:.3f} |", flush=True)
            del counts


if __name__ == "__main__":
    main()
