"""Scoring over the compact trie form (numba, no I/O): lmtools/ngram/trie.py describes the layout.

The rule is that of kernels/query.py: log10 p(w | h) = log10 p(h_m w) of the longest n-gram of the
model ending in w, plus the backoffs of the contexts h_k (k words, m <= k <= min(N-1, |h|)) that
are in the model. The trie is reached from the contexts: the n-gram of order n ending at t extends
the n-gram of order n-1 ending at t-1 (its prefix, always in the model where the n-gram is: the
converter refuses other models), so each position keeps the rows found at the previous one and
costs one search per order, within that row's child range. In a suffix-closed model (every
model lmtools or KenLM estimates) the walk stops at the first order without a match, as
kernels/query.py's does: no longer n-gram can end there.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from lmtools.constants import LOG_ZERO

BOS = 1
WORDS, PROB, BACKOFF, OFFSETS = 0, 1, 2, 3


class TrieArrays(NamedTuple):
    order: int
    uni_lp: np.ndarray  # float32 (V,)
    uni_bo: np.ndarray  # float32 (V,)
    packed: np.ndarray  # uint64
    centers: np.ndarray  # float32
    fields: np.ndarray  # int64 (N+1, 4, 3): first word, bits, count per field
    cstart: np.ndarray  # int64 (N+1, 2)
    qraw: bool  # q = 32: codes are float32 bits
    braw: bool
    closed: bool  # suffix-closed (every n-gram's newest n-1 words are an n-gram of the model)


@njit(cache=True, inline="always")
def get(packed, at, bits, i):
    """Value i of a field of ``bits`` bits starting at word ``at`` (least significant bit first)."""
    # Without branches: an inlined helper that reads an array under a condition, or returns early,
    # leaves numba's reference counting of the array (atomic operations) in the caller's loop.
    pos = i * bits
    w = at + (pos >> 6)
    s = np.uint64(pos & 63)
    lo = packed[w] >> s
    # the next word (the last one stands in for it at the end: the value then fits in word w), shifted
    # up by 64 - s in two steps (s = 0 gives 0, not an undefined shift by 64); bits past ``bits`` are
    # masked off, so it adds nothing when the value does not cross into it
    hi = (packed[min(w + 1, packed.shape[0] - 1)] << np.uint64(1)) << (np.uint64(63) - s)
    mask = ((np.uint64(1) << np.uint64(bits - 1)) << np.uint64(1)) - np.uint64(1)  # bits = 64: all ones
    return (lo | hi) & mask


@njit(cache=True, inline="always")
def _value(T, n, f, code, raw, scratch, fscratch):
    if raw:
        scratch[0] = np.uint32(code)
        return fscratch[0]
    return T.centers[T.cstart[n, 0 if f == PROB else 1] + np.int64(code)]


@njit(cache=True, inline="always")
def _child(T, n, row, w):
    """Row of order n extending ``row`` of order n-1 with word w, or -1 (binary search in its range;
    the range is clamped to the order, so damaged offsets cannot read outside the packed words)."""
    fields = T.fields
    o_at = fields[n - 1, OFFSETS, 0]
    o_bits = fields[n - 1, OFFSETS, 1]
    lo = np.int64(get(T.packed, o_at, o_bits, row))
    hi = np.int64(get(T.packed, o_at, o_bits, row + 1))
    m = fields[n, WORDS, 2]
    lo = min(max(lo, 0), m)
    hi = min(max(hi, lo), m)
    target = np.int64(w)
    at = fields[n, WORDS, 0]
    bits = fields[n, WORDS, 1]
    # Interpolation search (the ids of a range are sorted and spread over 0..V): a guess from the
    # values at the range's ends, a few probes where binary search needs log2 of the range's size
    # (thousands of children after a frequent word); binary steps once the range is small.
    if hi - lo > 16:
        x_lo = np.int64(get(T.packed, at, bits, lo))
        x_hi = np.int64(get(T.packed, at, bits, hi - 1))
        while hi - lo > 16:
            if target < x_lo or target > x_hi:
                return -1
            if x_hi == x_lo:
                return lo if target == x_lo else -1
            pivot = lo + np.int64((np.float64(target - x_lo) / np.float64(x_hi - x_lo)) * np.float64(hi - 1 - lo))
            x = np.int64(get(T.packed, at, bits, pivot))
            if x < target:
                lo = pivot + 1
                x_lo = np.int64(get(T.packed, at, bits, lo)) if lo < hi else target + 1
            elif x > target:
                hi = pivot
                x_hi = np.int64(get(T.packed, at, bits, hi - 1)) if hi > lo else target - 1
            else:
                return pivot
    while lo < hi:
        mid = (lo + hi) >> 1
        x = np.int64(get(T.packed, at, bits, mid))
        if x < target:
            lo = mid + 1
        elif x > target:
            hi = mid
        else:
            return mid
    return -1


@njit(cache=True, inline="always")
def _score_range(ids, lo, hi, T, out_lp, out_ord, out_zero):
    N = T.order
    rows = np.full((2, N + 1), -1, np.int64)  # rows[p, k]: the order-k row ending at the previous position
    scratch = np.zeros(1, np.uint32)
    fscratch = scratch.view(np.float32)
    p = 0
    for t in range(lo, hi):
        w = ids[t]
        cur = 1 - p
        for k in range(N + 1):
            rows[cur, k] = -1
        if w == BOS:
            rows[cur, 1] = BOS
            out_lp[t] = 0.0
            out_ord[t] = 0
            out_zero[t] = False
            p = cur
            continue
        if w < 0:
            out_lp[t] = 0.0
            out_ord[t] = 0
            out_zero[t] = False
            p = cur
            continue
        lp = np.float64(T.uni_lp[w])
        lp32 = T.uni_lp[w]
        m = 1
        rows[cur, 1] = w
        for n in range(2, N + 1):
            c = rows[p, n - 1]
            if c < 0:
                if T.closed:  # no context of n-1 words: none of n either
                    break
                continue
            r = _child(T, n, c, w)
            if r < 0 and T.closed:  # a suffix-closed model has no longer n-gram ending here
                break
            if r >= 0:
                rows[cur, n] = r
                lp32 = _value(T, n, PROB, get(T.packed, T.fields[n, PROB, 0], T.fields[n, PROB, 1], r), T.qraw,
                              scratch, fscratch)
                m = n
        lp = np.float64(lp32)
        total = lp
        for k in range(m, N):
            c = rows[p, k]
            if c < 0:
                continue
            if k == 1:
                total += np.float64(T.uni_bo[c])
            else:
                code = get(T.packed, T.fields[k, BACKOFF, 0], T.fields[k, BACKOFF, 1], c)
                total += np.float64(_value(T, k, BACKOFF, code, T.braw, scratch, fscratch))
        out_lp[t] = total
        out_ord[t] = m
        out_zero[t] = total <= LOG_ZERO or lp <= LOG_ZERO
        p = cur


@njit(cache=True, parallel=True)
def score_ids(ids, cuts, T, out_lp, out_ord, out_zero):
    """As kernels/query.score_ids, over the trie ``T`` (a ``TrieArrays``)."""
    for s in prange(cuts.shape[0] - 1):
        _score_range(ids, cuts[s], cuts[s + 1], T, out_lp, out_ord, out_zero)
