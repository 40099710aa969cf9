"""A static mixture of back-off n-gram models: one model that approximates sum_k lambda_k p_k(w|h).

The mixed model (SRILM's ``ngram -mix-lm ... -write-lm``; Stolcke 2002, "SRILM - an extensible
language modeling toolkit", section on model interpolation) holds:

- the union of the models' vocabularies: ``<unk> <s> </s>``, then every word with a unigram in some
  model, in order of first appearance (model by model, in each model's id order);
- the union of their n-grams (and every context of one, so that each context can carry a backoff
  weight), each with p(w|h) = sum_k lambda_k p_k(w|h), where each p_k follows its own back-off rule
  (lmtools/ngram/model.py) and a context word outside model k is model k's ``<unk>``, as in the
  dynamic mixture (lmtools/mixture.py);
- backoff weights recomputed so that every context sums to one over the union vocabulary:
  bow(h) = (1 - sum_{w: hw explicit} p(w|h)) / (1 - sum_{w: hw explicit} p_mix(w|h')), h' = h
  without its oldest word, p_mix the mixed model's own (backed-off) lower-order probability.

A predicted word outside model k's vocabulary gets p_k = 0 from that model (the dynamic mixture of
lm-ppl gives it p_k(<unk>|h) instead): so the mixed distribution sums to one, since each p_k sums
to one over its own vocabulary. Where the vocabularies agree (models of the same text), the mixed
model's explicit n-grams carry exactly the dynamic mixture's probabilities; an n-gram explicit in
no model backs off, which is where the static model differs from the dynamic one.

The components' probabilities come from their scorers (``QueryModel.score_ids``: one stream per
n-gram, ``NO_CONTEXT`` then its words), the lower-order sums from a scorer of the mixed model's
lower orders, built order by order.
"""

from __future__ import annotations

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.errors import LmError
from lmtools.ngram.model import NGramModel
from lmtools.ngram.query import QueryModel
from lmtools.ngram.scores import NO_CONTEXT
from lmtools.vocab import BOS_ID, SPECIALS, UNK_ID

ROWS_PER_CALL = 1 << 20  # n-grams scored per call (bounds the streams' memory)


def union_vocab(vocabs: list[list[str]], present: list[np.ndarray] | None = None):
    """(words, maps): the union vocabulary (specials first, then first appearance, list by list)
    and per list the map union id -> its own id (-1 where the word is absent; a special always maps
    to itself). ``present[k]``: bool per id of list k, the ids that count (default: all)."""
    words = list(SPECIALS)
    index = {w: i for i, w in enumerate(words)}
    for k, vocab in enumerate(vocabs):
        keep = present[k] if present is not None else None
        for i, w in enumerate(vocab):
            if (keep is None or keep[i]) and w not in index:
                index[w] = len(words)
                words.append(w)
    maps = []
    for k, vocab in enumerate(vocabs):
        keep = present[k] if present is not None else None
        m = np.full(len(words), -1, np.int64)
        for i, w in enumerate(vocab):
            if i < len(SPECIALS) or keep is None or keep[i]:
                m[index[w]] = i
        m[: len(SPECIALS)] = np.arange(len(SPECIALS))
        maps.append(m)
    return words, maps


def unique_rows(rows: np.ndarray) -> np.ndarray:
    """The distinct rows, in lexicographic order (the order NGramModel keeps)."""
    if rows.shape[0] == 0:
        return np.ascontiguousarray(rows, np.int32)
    order = np.lexsort([rows[:, j] for j in range(rows.shape[1] - 1, -1, -1)])
    r = rows[order]
    keep = np.ones(r.shape[0], np.bool_)
    keep[1:] = np.any(r[1:] != r[:-1], axis=1)
    return np.ascontiguousarray(r[keep], np.int32)


def find_rows(R: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Index in R (distinct rows) of each row of Q, or -1: one lexicographic sort of both, where a
    row of R comes just before the equal rows of Q."""
    m, q = R.shape[0], Q.shape[0]
    out = np.full(q, -1, np.int64)
    if m == 0 or q == 0:
        return out
    both = np.concatenate([R, Q]).astype(np.int64)
    tag = np.concatenate([np.zeros(m, np.int8), np.ones(q, np.int8)])
    order = np.lexsort([tag] + [both[:, j] for j in range(both.shape[1] - 1, -1, -1)])
    from_r = order < m
    last_r = np.maximum.accumulate(np.where(from_r, np.arange(order.size), -1))
    at_q = np.flatnonzero(~from_r & (last_r >= 0))
    cand = order[last_r[at_q]]
    qi = order[at_q] - m
    same = np.all(both[cand] == both[order[at_q]], axis=1)
    out[qi[same]] = cand[same]
    return out


def _scored_last(qm: QueryModel, rows: np.ndarray) -> np.ndarray:
    """log10 p(last word | the others) of each row (model ids) under qm, -inf where p = 0."""
    m, n = rows.shape
    out = np.empty(m, np.float64)
    for a in range(0, m, ROWS_PER_CALL):
        b = min(m, a + ROWS_PER_CALL)
        stream = np.empty((b - a, n + 1), np.int32)
        stream[:, 0] = NO_CONTEXT  # each row its own sentence; a row starting with <s> starts one itself
        stream[:, 1:] = rows[a:b]
        lp, _, zero = qm.score_ids(stream.reshape(-1), fast=True)
        last = lp.reshape(b - a, n + 1)[:, n]
        out[a:b] = np.where(zero.reshape(b - a, n + 1)[:, n] | (last <= LOG_ZERO), -np.inf, last)
    return out


def component_log10(qm: QueryModel, umap: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """log10 p_k(w | h) of each union n-gram row (h w) under one model: its context words mapped to
    the model's ids (absent ones to <unk>); -inf where w is absent from the model."""
    mapped = umap[rows]
    absent = mapped[:, -1] < 0
    mapped = np.where(mapped < 0, UNK_ID, mapped).astype(np.int32)
    out = _scored_last(qm, mapped)
    out[absent] = -np.inf
    return out


def mix_log10(parts: list[np.ndarray], lambdas) -> np.ndarray:
    """log10 sum_k lambda_k 10^parts[k] (LOG_ZERO where the sum is 0), as float32 for the model."""
    L = np.stack(parts)
    top = L.max(axis=0)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = (np.asarray(lambdas, np.float64)[:, None] * np.power(10.0, L - safe)).sum(axis=0)
        lp = np.log10(acc) + safe
    lp = np.where(np.isfinite(lp) & (lp > LOG_ZERO), lp, LOG_ZERO)
    return np.minimum(lp, 0.0).astype(np.float32)


def backoff_log10(explicit: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """log10 bow(h) from the explicit words' mass under h and under h' (per context). A context whose
    lower-order mass is all explicit too keeps bow 1; one whose own mass is all explicit gets p = 0."""
    num = np.maximum(1.0 - explicit, 0.0)
    den = np.maximum(1.0 - lower, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        bow = np.where(den > 1e-12, num / den, 1.0)
        lb = np.where(bow > 0.0, np.log10(bow), LOG_ZERO)
    return np.maximum(lb, LOG_ZERO).astype(np.float32)


def _probs(lp: np.ndarray) -> np.ndarray:
    lp = np.asarray(lp, np.float64)
    return np.where(lp <= LOG_ZERO, 0.0, np.power(10.0, lp))


def static_mixture(models: list[NGramModel], lambdas, names: list[str] | None = None, progress=None) -> NGramModel:
    """One back-off model approximating the linear mixture of ``models`` with weights ``lambdas``
    (see the module docstring). ``progress(message)`` hears of each stage."""
    say = progress or (lambda msg: None)
    names = names or [f"model {k + 1}" for k in range(len(models))]
    for m, name in zip(models, names):
        if m.scores_only:
            raise LmError(f"{name}: a stupid-backoff model gives scores, not probabilities",
                          "a static mixture needs normalized models (lm-train --method kn-modified)")
    K = len(models)
    lam = np.asarray(lambdas, np.float64)
    present = []
    for m in models:
        p = np.zeros(len(m.vocab), np.bool_)
        p[np.asarray(m.ngrams[0]).reshape(-1)] = True
        present.append(p)
    vocab, umaps = union_vocab([list(m.vocab) for m in models], present)
    U = len(vocab)
    N = max(m.order for m in models)
    # model id -> union id, for each model's own n-grams (-1: a word without a unigram, never in the union)
    to_union = []
    for k, m in enumerate(models):
        inv = np.full(len(m.vocab), -1, np.int64)
        ok = umaps[k] >= 0
        inv[umaps[k][ok]] = np.flatnonzero(ok)
        inv[~present[k]] = -1
        inv[: len(SPECIALS)] = np.arange(len(SPECIALS))
        to_union.append(inv)
    rows: list[np.ndarray] = []
    for n in range(1, N + 1):
        parts = []
        for k, m in enumerate(models):
            if n <= m.order:
                g = to_union[k][np.asarray(m.ngrams[n - 1], np.int64)]
                parts.append(g[np.all(g >= 0, axis=1)])
        rows.append(np.concatenate(parts).astype(np.int32) if parts else np.zeros((0, n), np.int32))
    rows[0] = np.arange(U, dtype=np.int32)[:, None]  # every word of the union, the specials included
    for n in range(N, 1, -1):  # every context of an n-gram is an n-gram itself (it carries the backoff)
        rows[n - 1] = unique_rows(rows[n - 1])
        rows[n - 2] = np.concatenate([rows[n - 2], rows[n - 1][:, :-1]])
    rows[0] = unique_rows(rows[0])
    say("n-grams in the union: " + " ".join(str(r.shape[0]) for r in rows))

    scorers = [QueryModel(m, name) for m, name in zip(models, names)]
    logprob = []
    for n in range(1, N + 1):
        parts = [component_log10(scorers[k], umaps[k], rows[n - 1]) for k in range(K)]
        lp = mix_log10(parts, lam)
        if n == 1:
            lp[rows[0][:, 0] == BOS_ID] = 0.0  # <s> is only a context (the smoothers' convention)
        logprob.append(lp)
        say(f"order {n}: mixed probabilities of {rows[n - 1].shape[0]} n-grams")
    backoff = [np.zeros(r.shape[0], np.float32) for r in rows]
    for n in range(1, N):
        children = rows[n]
        parent = find_rows(rows[n - 1], children[:, :-1])
        if parent.size and parent.min() < 0:
            raise AssertionError("a context missing from the union")
        explicit = np.bincount(parent, _probs(logprob[n]), minlength=rows[n - 1].shape[0])
        lower_model = NGramModel(vocab, rows[:n], logprob[:n], backoff[:n], method="mix", scores_only=False)
        lower = _scored_last(QueryModel(lower_model, "mixture"), children[:, 1:])
        lower_mass = np.bincount(parent, np.where(np.isfinite(lower), np.power(10.0, lower), 0.0),
                                 minlength=rows[n - 1].shape[0])
        backoff[n - 1] = backoff_log10(explicit, lower_mass)
        say(f"order {n}: backoff weights of {rows[n - 1].shape[0]} contexts")
    info = {"lambdas": [float(x) for x in lam], "models": list(names)}
    return NGramModel(vocab, rows, logprob, backoff, method="mix", info=info, scores_only=False)
