"""Perplexity of an FFNN model alone and linearly interpolated with an n-gram model, on PTB.

    python bench/ffnn_mix.py ffnn.lm kn5.lm

The weight of the FFNN is chosen on the validation text (grid 0.05 .. 0.95) and then applied to
the test text, the usual protocol; the same mixture is what ``lm-ppl -m kn5.lm -m ffnn.lm
--lambda W`` computes (W = the n-gram model's weight).
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lmtools.ngram.query import load_scorer  # noqa: E402

PTB = os.environ.get("PTB_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                                             "data", "ptb"))


def token_logp(scorer, path):
    with open(path, "rb") as f:
        sc = scorer.score_text(f.read())
    keep = sc.ids != 1
    return sc.logp[keep]


def ppl(lp):
    return float(10 ** (-lp.mean()))


def mix(a, b, w):
    return np.logaddexp(np.log(w) + a * np.log(10), np.log(1 - w) + b * np.log(10)) / np.log(10)


def main():
    ffnn, ngram = sys.argv[1], sys.argv[2]
    f, g = load_scorer([ffnn]), load_scorer([ngram])
    fv, gv = token_logp(f, os.path.join(PTB, "valid.txt")), token_logp(g, os.path.join(PTB, "valid.txt"))
    ft, gt = token_logp(f, os.path.join(PTB, "test.txt")), token_logp(g, os.path.join(PTB, "test.txt"))
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    vals = [ppl(mix(fv, gv, w)) for w in grid]
    w = float(grid[int(np.argmin(vals))])
    res = {"ffnn_valid": ppl(fv), "ffnn_test": ppl(ft), "ngram_valid": ppl(gv), "ngram_test": ppl(gt),
           "ffnn_weight": w, "mix_valid": min(vals), "mix_test": ppl(mix(ft, gt, w)), "tokens_test": int(ft.size)}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
