"""Modified Kneser-Ney on PTB: perplexities against the published/KenLM figures, and timings.

    .venv/bin/python bench/kn_ptb.py [PTB_DIR]      (default ../shared/data/ptb)

Counts PTB train to order 5 once, estimates orders 3 and 5 (timed, warm JIT), scores test and
valid with the vectorized reference scorer of tests/naive_smoothing.py, and times ARPA writing
and reading of the 5-gram. Prints a markdown table.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lmtools.io.arpa import read_arpa, write_arpa  # noqa: E402
from lmtools.ngram.counting import count_text  # noqa: E402
from lmtools.ngram.smoothing import smooth, truncate  # noqa: E402
from tests.naive_smoothing import perplexity  # noqa: E402

EXPECTED = {3: (148.281, 157.765), 5: (141.186, 148.007)}  # KenLM lmplz + query (README of the reference)


def main() -> None:
    ptb = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "ptb"
    t = time.perf_counter()
    counts = count_text([str(ptb / "train.txt")], 5)
    t_count = time.perf_counter() - t
    smooth(truncate(counts, 2))  # warm the JIT cache
    test = (ptb / "test.txt").read_text().split("\n")[:-1]
    valid = (ptb / "valid.txt").read_text().split("\n")[:-1]
    print(f"counting PTB train to order 5: {t_count:.2f} s, n-grams {counts.sizes()}\n")
    print("| order | n-grams | smoothing s | test ppl | KenLM | valid ppl | --kenlm-compat valid | KenLM |")
    print("|---|---|---|---|---|---|---|---|")
    models = {}
    for order in (3, 5):
        c = truncate(counts, order)
        best = min(_timed(lambda: smooth(c))[1] for _ in range(3))
        model = smooth(c)
        models[order] = model
        tp = perplexity(model, test)[0]
        vp = perplexity(model, valid)[0]
        vc = perplexity(smooth(c, kenlm_compat=True), valid)[0]
        print(f"| {order} | {sum(model.sizes())} | {best:.3f} | {tp:.4f} | {EXPECTED[order][0]} | "
              f"{vp:.4f} | {vc:.4f} | {EXPECTED[order][1]} |")
    m5 = models[5]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "kn5.arpa")
        with open(path, "wb") as f:
            _, t_write = _timed(lambda: write_arpa(m5, f))
        size = os.path.getsize(path)
        _, t_read = _timed(lambda: read_arpa(path))
    print(f"\nARPA 5-gram ({size / 1e6:.1f} MB, {sum(m5.sizes()) + 13} lines): write {t_write:.2f} s, "
          f"read {t_read:.2f} s")


def _timed(f):
    t = time.perf_counter()
    r = f()
    return r, time.perf_counter() - t


if __name__ == "__main__":
    main()
