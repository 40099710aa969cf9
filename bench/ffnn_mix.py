"""Perplexity of FFNN models alone and linearly interpolated with an n-gram model, on PTB.

    python bench/ffnn_mix.py kn5.lm ffnn.lm [ffnn2.lm ...]

Mixture weights are estimated on the validation text (EM, the usual protocol) and then applied
to the test text. The two-model mixture is what ``lm-ppl -m kn5.lm -m ffnn.lm --lambda W``
computes (W = the n-gram model's weight, printed below).
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lmtools.kinds import load_scorer  # noqa: E402

PTB = os.environ.get("PTB_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                                             "data", "ptb"))


def token_logp(path, text):
    with open(text, "rb") as f:
        sc = load_scorer([path]).score_text(f.read())
    return sc.logp[sc.ids != 1] * np.log(10.0)  # natural log, scored tokens only


def em_weights(L, iters=100):
    """Mixture weights maximizing the likelihood of the rows of L (k models x T tokens, ln p)."""
    k = L.shape[0]
    w = np.full(k, 1.0 / k)
    for _ in range(iters):
        a = np.log(w)[:, None] + L
        post = np.exp(a - np.logaddexp.reduce(a, axis=0))
        w = post.mean(axis=1)
    return w


def ppl(L, w):
    return float(np.exp(-np.logaddexp.reduce(np.log(w)[:, None] + L, axis=0).mean()))


def main():
    paths = sys.argv[1:]
    valid = np.stack([token_logp(p, os.path.join(PTB, "valid.txt")) for p in paths])
    test = np.stack([token_logp(p, os.path.join(PTB, "test.txt")) for p in paths])
    res = {"models": paths, "alone": {p: {"valid": float(np.exp(-v.mean())), "test": float(np.exp(-t.mean()))}
                                      for p, v, t in zip(paths, valid, test)}}
    for k in range(2, len(paths) + 1):
        w = em_weights(valid[:k])
        res[f"mix_first_{k}"] = {"weights": [round(float(x), 4) for x in w], "valid": ppl(valid[:k], w),
                                 "test": ppl(test[:k], w)}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
