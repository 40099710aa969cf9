"""Plain-Python references for sampling: p(w | h) of an NGramModel by the ARPA back-off rule, word
by word, and the truncated sampling distributions (temperature, top-k, top-p), with no numba and
no sorted-array tricks: dictionaries and the rule as written."""

from __future__ import annotations

import math


def tables(model):
    """({ngram tuple: log10 p}, {ngram tuple: log10 backoff}) of every order."""
    lp, bo = {}, {}
    for n in range(1, model.order + 1):
        for row, p, b in zip(model.ngrams[n - 1].tolist(), model.logprob[n - 1].tolist(),
                             model.backoff[n - 1].tolist()):
            lp[tuple(row)] = float(p)
            bo[tuple(row)] = float(b)
    return lp, bo


def cond_log10(lp, bo, order, history, w):
    """log10 p(w | history) (history: ids, oldest first, <s> included): longest match plus the
    backoffs of the longer context suffixes found in the model."""
    h = tuple(history[-(order - 1):]) if order > 1 else ()
    for m in range(len(h), -1, -1):
        ctx = h[len(h) - m:]
        if ctx + (w,) in lp:
            total = lp[ctx + (w,)]
            for k in range(m + 1, len(h) + 1):
                total += bo.get(h[len(h) - k:], 0.0)
            return total
    return -math.inf


def distribution(model, history):
    """[p(w | history) for w in the vocabulary], <s> = 0 (it is only a context)."""
    lp, bo = tables(model)
    out = []
    for w in range(len(model.vocab)):
        x = cond_log10(lp, bo, model.order, list(history), w)
        out.append(0.0 if w == 1 or x <= -99 else 10.0 ** x)
    return out


def truncated(p, temperature=1.0, top_k=0, top_p=1.0, allow_unk=False):
    """The distribution a sampler draws from: <s> (and <unk> unless allowed) removed, p^(1/T)
    renormalized, then the k most likely (ties: smaller id), then the smallest most-likely-first
    set reaching mass top_p, renormalized."""
    q = [0.0 if (w == 1 or (w == 0 and not allow_unk) or x <= 0) else x ** (1.0 / temperature)
         for w, x in enumerate(p)]
    order = sorted((w for w in range(len(q)) if q[w] > 0), key=lambda w: (-q[w], w))
    if top_k:
        order = order[:top_k]
    total = sum(q[w] for w in order)
    if top_p < 1.0:
        keep, acc = [], 0.0
        for w in order:
            keep.append(w)
            acc += q[w]
            if acc >= top_p * total:
                break
        order = keep
    total = sum(q[w] for w in order)
    out = [0.0] * len(q)
    for w in order:
        out[w] = q[w] / total
    return out
