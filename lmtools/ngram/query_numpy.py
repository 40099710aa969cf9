"""The plain-numpy scoring path of an n-gram model (no numba): the same numbers as the kernels of
kernels/query.py, bit for bit, for inputs too small to be worth loading them. ``score_numpy``
binary-searches the model's sorted n-gram arrays; ``score_tables_numpy`` probes the stored hash
tables as the kernels do (a mapped model: no n-gram array is read whole). Both take a
lmtools.ngram.query.QueryModel (``qm``: read only; not imported here, which it imports) and a token
stream, and return (log10 p, matched order, zero) per position, as QueryModel.score_ids."""

from __future__ import annotations

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.kernels.records import NO_CONTEXT
from lmtools.vocab import BOS_ID


def _lex_search(R: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Row index in R (sorted lexicographically) of each row of Q, or -1."""
    m = R.shape[0]
    q = Q.shape[0]
    if m == 0 or q == 0:
        return np.full(q, -1, np.int64)
    lo = np.zeros(q, np.int64)
    hi = np.full(q, m, np.int64)
    act = np.arange(q)
    while act.size:
        l, h = lo[act], hi[act]
        mid = (l + h) // 2
        Rm = R[mid]
        Qa = Q[act]
        neq = Rm != Qa
        first = neq.argmax(axis=1)
        ar = np.arange(act.size)
        less = neq[ar, first] & (Rm[ar, first] < Qa[ar, first])
        lo[act] = np.where(less, mid + 1, l)
        hi[act] = np.where(less, h, mid)
        act = act[lo[act] < hi[act]]
    ok = lo < m
    idx = np.where(ok, lo, 0)
    ok &= np.all(R[idx] == Q, axis=1)
    return np.where(ok, lo, -1)


def score_numpy(qm, ids: np.ndarray):
    """The same numbers as kernels/query.score_ids, with numpy only (for small inputs)."""
    model = qm.model
    N = qm.order
    T = ids.size
    is_start = (ids == BOS_ID) | (ids == NO_CONTEXT)
    if T == 0:
        return np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.bool_)
    seg = np.cumsum(is_start) - 1
    starts = np.flatnonzero(is_start)
    if seg[0] < 0:
        raise ValueError("a token stream must start a sentence")
    s_of = starts[seg]
    ctx = np.arange(T) - s_of - (ids[s_of] == NO_CONTEXT)  # context tokens available at t
    w = np.where(ids < 0, 0, ids)
    found = np.zeros((N + 1, T), np.bool_)
    lp_n = np.zeros((N + 1, T), np.float32)
    bo_n = np.zeros((N + 1, T), np.float64)
    found[1] = ids >= 0
    lp_n[1] = qm.uni_lp[w]
    bo_n[1] = np.where(found[1], qm.uni_bo[w], 0.0)
    for n in range(2, N + 1):
        pos = np.flatnonzero((ctx >= n - 1) & (ids >= 0))
        if pos.size == 0:
            continue
        Q = np.stack([ids[pos - n + 1 + j] for j in range(n)], axis=1)
        idx = _lex_search(model.ngrams[n - 1], Q)
        ok = idx >= 0
        p, i = pos[ok], idx[ok]
        found[n, p] = True
        lp_n[n, p] = model.logprob[n - 1][i]
        bo_n[n, p] = model.backoff[n - 1][i]
    m = np.ones(T, np.int32)
    lp = lp_n[1].copy()
    for n in range(2, N + 1):
        sel = found[n]
        m[sel] = n
        lp[sel] = lp_n[n][sel]
    total = lp.astype(np.float64)
    kmax = np.minimum(N - 1, ctx)
    for k in range(1, N):
        prev = np.zeros(T, np.float64)
        prev[1:] = np.where(found[k, :-1], bo_n[k, :-1], 0.0)
        sel = (k >= m) & (k <= kmax)
        total[sel] += prev[sel]
    tokens = ~is_start
    total[~tokens] = 0.0
    m[~tokens] = 0
    zero = tokens & ((total <= LOG_ZERO) | (lp <= LOG_ZERO))  # as kernels/query._score_range
    return total, m, zero


# -- the stored tables probed with numpy ---------------------------------------------------------
# kernels/query.py's hash constants (mix, extend), as numpy scalars: uint64 arrays wrap mod 2**64
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K1 = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    return x ^ (x >> np.uint64(31))


def _home(keys: np.ndarray, size: int) -> np.ndarray:
    """kernels/query.home of many keys."""
    return (((keys >> np.uint64(32)) * np.uint64(size)) >> np.uint64(32)).astype(np.int64)


def _probe(utab: np.ndarray, start: int, size: int, keys: np.ndarray, top: bool) -> np.ndarray:
    """kernels/query.find_entry (``top``: find_top) for many keys at once, over the tables' uint32
    view: where each key's log10 p is in their float32 view, or -1. Each probe stops at an empty entry
    or at a larger key not wrapped past the table's end; at most one pass over the table, as the
    kernel (a damaged table may be full)."""
    slot = _home(keys, size)
    out = np.full(keys.size, -1, np.int64)
    act = np.arange(keys.size)
    for _ in range(size):
        j = 4 * start + 3 * slot if top else 4 * (start + slot)
        k = utab[j].astype(np.uint64) | (utab[j + 1].astype(np.uint64) << np.uint64(32))
        want = keys[act]
        hit = k == want
        out[act[hit]] = j[hit] + 2
        go = ~hit & (k != 0) & ~((k > want) & (_home(k, size) <= slot))
        if not go.any():
            break
        act, slot = act[go], slot[go] + 1
        slot[slot == size] = 0
    return out


def score_tables_numpy(qm, ids: np.ndarray):
    """kernels/query.score_ids's numbers bit for bit, with numpy over the stored tables (mapped: only
    the probed entries are read). Position by position the kernel walks n = 2.. and stops at the first
    miss; here each order is probed for every position still walking. The kernel's stop for a
    prefix-closed model (reach[t] <= reach[t-1] + 1) is a recurrence; as reach[t] - t it is a running
    minimum within each sentence, taken at once with one offset per sentence."""
    _, ftab, utab, base, slots, seed, closed = qm.tables()
    N = int(qm.order)
    T = ids.size
    if T == 0:
        return np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.bool_)
    is_start = (ids == BOS_ID) | (ids < 0)
    seg = np.cumsum(is_start) - 1
    if seg[0] < 0:
        raise ValueError("a token stream must start a sentence")
    starts = np.flatnonzero(is_start)
    s_of = starts[seg]
    t_idx = np.arange(T)
    ctx = t_idx - s_of - (ids[s_of] < 0)  # context tokens available at t (the kernel's ctxu)
    word = ~is_start
    w = np.where(ids >= 0, ids, 0)
    # reach0[t]: where the walk stops without the prefix-closed bound; value[n, t]: where the log10 p
    # of the order-n n-gram found ending at t is in the tables' float32 view
    reach0 = np.where(word, 1, np.where(ids == BOS_ID, 1, 0)).astype(np.int64)
    value = np.full((N + 1, T), -1, np.int64)
    pos = np.flatnonzero(word & (ctx >= 1))
    h = _mix(w[pos].astype(np.uint64) + np.uint64(seed))  # kernels/query.hash_word
    for n in range(2, N + 1):
        if pos.size == 0:
            break
        h = _mix(h * _K1 + ids[pos - n + 1].astype(np.uint64) + np.uint64(1))  # extend: one word older
        e = _probe(utab, int(base[n]), int(slots[n]), h | np.uint64(1), n == N)
        ok = e >= 0
        pos, h = pos[ok], h[ok]
        value[n, pos] = e[ok]
        reach0[pos] = n
        more = ctx[pos] >= n  # the next order needs one more word of context
        pos, h = pos[more], h[more]
    if closed:
        big = 2 * (T + N + 1)
        a = reach0 - t_idx - seg * big
        reach = np.minimum.accumulate(a) + seg * big + t_idx
    else:
        reach = reach0
    lp = qm.uni_lp[w].astype(np.float32)
    m = np.ones(T, np.int32)
    bo = np.zeros((N + 1, T), np.float64)  # backoffs of the n-grams found ending at t, by length
    bo[1] = np.where(word | (ids == BOS_ID), qm.uni_bo[w], 0.0)
    for n in range(2, N + 1):
        at = np.flatnonzero(reach >= n)
        j = value[n, at]
        if n < N:  # the highest order has no backoff (none read: kmax < N)
            bo[n, at] = ftab[j + 1]
        v = ftab[j]
        real = v == v  # not a placeholder
        lp[at[real]] = v[real]
        m[at[real]] = n
    total = lp.astype(np.float64)
    prev_reach = np.zeros(T, np.int64)
    prev_reach[1:] = reach[:-1]
    kmax = np.minimum(N - 1, prev_reach)
    for k in range(1, N):
        sel = np.flatnonzero(word & (k >= m) & (k <= kmax))
        total[sel] += bo[k, sel - 1]
    total[~word] = 0.0
    m[~word] = 0
    zero = word & ((total <= LOG_ZERO) | (lp <= LOG_ZERO))  # as kernels/query._score_range
    return total, m, zero
