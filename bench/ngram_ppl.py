"""Perplexity of a text under an NGramModel, vectorized over the tokens (a check for lm-train).

A small stand-alone scorer of the ARPA back-off rule (DESIGN.md, "Query"), independent of the
query engine: for each position t and order n it finds the n-gram ending at t by its prefix (the
(n-1)-gram ending at t-1) and last word, with one searchsorted per order.

    python bench/ngram_ppl.py MODEL TEXT        # MODEL: ARPA or lmtools model file
"""

from __future__ import annotations

import sys

import numpy as np


def ngram_keys(model):
    """keys[n-1][i] = index of the prefix of n-gram i in order n-1, times V, plus its last word."""
    from lmtools.kernels.smooth import prefix_index

    V = len(model.vocab)
    keys = [model.ngrams[0][:, 0].astype(np.int64)]
    for n in range(2, model.order + 1):
        g = model.ngrams[n - 1]
        pre = prefix_index(np.ascontiguousarray(g), np.ascontiguousarray(model.ngrams[n - 2]))
        assert g.shape[0] == 0 or pre.min() >= 0, "n-gram whose prefix is missing"
        keys.append(pre * V + g[:, n - 1])
    return keys


def encode(model, lines):
    """Token ids of ``<s> w.. </s>`` per line (words outside the vocabulary -> <unk>) and an OOV mask."""
    idx = {w: i for i, w in enumerate(model.vocab)}
    ids, oov = [], []
    for line in lines:
        words = [w for w in line.split() if w not in ("<s>", "</s>")]
        ids.append(1)
        oov.append(False)
        for w in words:
            i = idx.get(w, -1)
            ids.append(0 if i < 0 else i)
            oov.append(i < 0)
        ids.append(2)
        oov.append(False)
    return np.array(ids, np.int64), np.array(oov, bool)


def score_ids(model, ids, keys=None):
    """log10 p of every position (NaN at <s>), by the back-off rule."""
    keys = keys or ngram_keys(model)
    V = len(model.vocab)
    N = model.order
    T = ids.shape[0]
    found = [ids.copy()]  # index of the order-n n-gram ending at t, -1 if absent
    for n in range(2, N + 1):
        prev = np.full(T, -1, np.int64)
        prev[1:] = found[n - 2][:-1]
        target = np.where(prev >= 0, prev * V + ids, -1)
        pos = np.searchsorted(keys[n - 1], target)
        pos = np.minimum(pos, max(keys[n - 1].shape[0] - 1, 0))
        ok = (prev >= 0) & (keys[n - 1].shape[0] > 0)
        ok &= keys[n - 1][pos] == target if keys[n - 1].shape[0] else False
        found.append(np.where(ok, pos, -1))
    lp = model.logprob[0][ids].astype(np.float64)
    longest = np.ones(T, np.int64)
    for n in range(2, N + 1):
        hit = found[n - 1] >= 0
        lp = np.where(hit, model.logprob[n - 1][np.maximum(found[n - 1], 0)], lp)
        longest = np.where(hit, n, longest)
    # back-off weights of the contexts longer than the matched one: order-k n-grams ending at t-1
    for k in range(1, N):
        ctx = np.full(T, -1, np.int64)
        ctx[1:] = found[k - 1][:-1]
        add = (ctx >= 0) & (k >= longest)
        lp = lp + np.where(add, model.backoff[k - 1][np.maximum(ctx, 0)], 0.0)
    lp[ids == 1] = np.nan
    return lp


def perplexity(model, lines):
    ids, oov = encode(model, lines)
    lp = score_ids(model, ids)
    scored = ids != 1
    incl = 10 ** (-np.nansum(lp[scored]) / scored.sum())
    ex = scored & ~oov
    excl = 10 ** (-np.nansum(lp[ex]) / ex.sum())
    return incl, excl, int(oov.sum()), int(scored.sum())


if __name__ == "__main__":
    from lmtools.io.models import load_model

    m = load_model(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    incl, excl, n_oov, n = perplexity(m, lines)
    print(f"ppl incl. OOV {incl:.6f}  excl. OOV {excl:.6f}  OOVs {n_oov}  tokens {n}")
