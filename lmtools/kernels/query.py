"""The n-gram query kernels (numba, no I/O): longest-match back-off lookup over hashed n-grams.

Layout. Unigrams are dense arrays indexed by word id (``uni_lp``, ``uni_bo``, float32). Each order
n >= 2 has an open-addressing hash table of 16-byte entries in one uint64 array ``tab`` shared by all
orders (order n occupies entries ``base[n] .. base[n] + 2**log2s[n]``): entry e is ``tab[2e]`` = the
n-gram's 64-bit key (0 = empty slot) and ``tab[2e+1]`` = its log10 p and log10 backoff as two float32
(read through ``ftab``, a float32 view of the same memory: ``ftab[4e+2]``, ``ftab[4e+3]``). Key and
values share a cache line, so a lookup costs one memory access.

Keys. The key of n-gram ``w1 .. wn`` is a 64-bit hash built from its newest word backwards:
``h1 = hash_word(wn)``, ``h_k = extend(h_{k-1}, w_{n-k+1})``, so while scoring position t the keys
of the n-grams ending at t of every order come one after another from the ids, with no table access
in between. Keys are hashes, not the ids themselves: two n-grams of the model that share a key are
detected when the table is built (and a new hash seed is tried); an n-gram absent from the model
matches a present one only if their 64-bit keys collide (probability below 2^-60 per lookup).
The stored key is ``h | 1`` so that 0 marks an empty slot.

Suffix closure. Scoring walks the orders upward from the unigram and stops at the first miss, so
every suffix of a model n-gram must be in the tables. Where a model lacks one (some pruned ARPA
files), a placeholder entry is added (log10 p = NaN: "not an n-gram", backoff 0); the walk passes
through it but never matches it. With placeholders the walk finds exactly the longest n-gram in the
model ending at each position.

Scoring rule (ARPA back-off, as KenLM and SRILM): log10 p(w | h) = log10 p(h_m w) + sum of the
backoffs of the suffixes h_k of h with m <= k <= min(N-1, |h|) that are in the model, where h_m w is
the longest n-gram of the model ending in w. The backoffs of the contexts are those of the n-grams
found ending at the previous position, so each position costs one walk.
"""

import numpy as np
from numba import njit, prange

BOS = 1  # <s>: starts a sentence, only a context
NO_CONTEXT = -1  # starts a sentence without <s> (the API's bos=False): an empty context
LOG_ZERO = -99.0  # log10 p at or below this is p = 0 (ARPA's convention)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K1 = np.uint64(0x9E3779B97F4A7C15)
_ONE = np.uint64(1)


@njit(cache=True, inline="always")
def _mix(x):
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


@njit(cache=True, inline="always")
def hash_word(w, seed):
    return _mix(np.uint64(w) + seed)


@njit(cache=True, inline="always")
def extend(h, w):
    """Hash of the n-gram ``w + (the n-gram hashed as h)``: one word older."""
    return _mix(h * _K1 + np.uint64(w) + _ONE)


@njit(cache=True, inline="always")
def _find(tab, start, log2, key):
    """Entry index (relative to ``start``) holding ``key``, or -1."""
    mask = (np.int64(1) << log2) - 1
    i = np.int64(key >> np.uint64(64 - log2))
    while True:
        k = tab[2 * (start + i)]
        if k == key:
            return i
        if k == 0:
            return -1
        i = (i + 1) & mask


@njit(cache=True, inline="always")
def _find_or_free(tab, start, log2, key):
    """(entry index, found): the entry holding ``key``, or the free entry where it would go."""
    mask = (np.int64(1) << log2) - 1
    i = np.int64(key >> np.uint64(64 - log2))
    while True:
        k = tab[2 * (start + i)]
        if k == key:
            return i, True
        if k == 0:
            return i, False
        i = (i + 1) & mask


@njit(cache=True)
def insert_order(tab, ftab, start, log2, rows, lp, bo, seed):
    """Insert the n-grams ``rows`` (int32 (m, n), n >= 2) with their log10 p and backoff.

    Returns the number of rows whose key was already present (a hash collision or a duplicate
    n-gram): the caller retries with another seed, or reports duplicates.
    """
    m, n = rows.shape
    clashes = 0
    for r in range(m):
        h = hash_word(rows[r, n - 1], seed)
        for j in range(n - 2, -1, -1):
            h = extend(h, rows[r, j])
        key = h | _ONE
        i, found = _find_or_free(tab, start, log2, key)
        if found:
            clashes += 1
            continue
        e = start + i
        tab[2 * e] = key
        ftab[4 * e + 2] = lp[r]
        ftab[4 * e + 3] = bo[r]
    return clashes


@njit(cache=True)
def close_suffixes(tab, ftab, base, log2s, counts, rows, seed, limit):
    """Make sure every suffix of the n-grams ``rows`` (order n = rows.shape[1] >= 3) is in the
    tables of orders 2..n-1, adding placeholders (log10 p NaN, backoff 0) where one is missing.

    ``counts[k]`` is the number of used entries of order k (updated). Returns -1 when done, or the
    order k whose table reached ``limit`` entries (the caller grows it and calls again: entries
    already added are found the second time).
    """
    m, n = rows.shape
    hs = np.empty(n + 1, np.uint64)
    for r in range(m):
        h = hash_word(rows[r, n - 1], seed)
        hs[1] = h
        for k in range(2, n):
            h = extend(h, rows[r, n - k])
            hs[k] = h
        # the immediate suffix first: if it is present, its own suffixes were checked with its order
        for k in range(n - 1, 1, -1):
            key = hs[k] | _ONE
            i, found = _find_or_free(tab, base[k], log2s[k], key)
            if found:
                break
            if counts[k] + 1 > limit[k]:
                return k
            e = base[k] + i
            tab[2 * e] = key
            ftab[4 * e + 2] = np.nan
            ftab[4 * e + 3] = 0.0
            counts[k] += 1
    return -1


@njit(cache=True)
def rehash_order(old, start, log2, new, log2_new):
    """Copy the entries of one order's table (at ``old[start..]``, 2**log2 entries) into ``new``."""
    for i in range(np.int64(1) << log2):
        key = old[2 * (start + i)]
        if key != 0:
            j, _ = _find_or_free(new, 0, log2_new, key)
            new[2 * j] = key
            new[2 * j + 1] = old[2 * (start + i) + 1]


@njit(cache=True, inline="always")
def _score_range(ids, lo, hi, N, uni_lp, uni_bo, tab, ftab, base, log2s, seed, out_lp, out_ord, out_zero):
    """Score ids[lo:hi]; ids[lo] must start a sentence (``<s>`` or NO_CONTEXT)."""
    boA = np.zeros(N + 1, np.float64)
    boB = np.zeros(N + 1, np.float64)
    prev_reach = 0
    ctx = 0  # tokens available as context for the next word (<s> included)
    for t in range(lo, hi):
        w = ids[t]
        if w == BOS:
            ctx = 1
            prev_reach = 1
            boA[1] = uni_bo[BOS]
            out_lp[t] = 0.0
            out_ord[t] = 0
            out_zero[t] = False
            continue
        if w < 0:
            ctx = 0
            prev_reach = 0
            out_lp[t] = 0.0
            out_ord[t] = 0
            out_zero[t] = False
            continue
        lp = uni_lp[w]
        m = 1
        boB[1] = uni_bo[w]
        reach = 1
        top = min(N, ctx + 1)
        if top >= 2:
            h = hash_word(w, seed)
            for n in range(2, top + 1):
                h = extend(h, ids[t - n + 1])
                i = _find(tab, base[n], log2s[n], h | _ONE)
                if i < 0:
                    break
                e = base[n] + i
                reach = n
                v = ftab[4 * e + 2]
                boB[n] = ftab[4 * e + 3]
                if v == v:  # not a placeholder
                    lp = v
                    m = n
        total = np.float64(lp)
        kmax = min(N - 1, prev_reach)
        for k in range(m, kmax + 1):
            total += boA[k]
        out_lp[t] = total
        out_ord[t] = m
        out_zero[t] = lp <= LOG_ZERO
        boA, boB = boB, boA
        prev_reach = reach
        ctx += 1


@njit(cache=True)
def score_ids(ids, N, uni_lp, uni_bo, tab, ftab, base, log2s, seed, out_lp, out_ord, out_zero):
    """Score a stream of sentences ``<s> w1 .. wk </s> <s> ...`` (int32 ids, ``<s>`` = 1).

    Writes, per position, log10 p of the token given its sentence so far (0 at ``<s>``),
    the order of the longest matched n-gram (0 at ``<s>``) and whether p = 0 (log10 p <= -99).
    """
    _score_range(ids, 0, ids.shape[0], N, uni_lp, uni_bo, tab, ftab, base, log2s, seed,
                 out_lp, out_ord, out_zero)


@njit(cache=True, parallel=True)
def score_ids_parallel(ids, cuts, N, uni_lp, uni_bo, tab, ftab, base, log2s, seed, out_lp, out_ord, out_zero):
    """``score_ids`` over the segments ids[cuts[i]:cuts[i+1]] in parallel (each starts a sentence)."""
    for s in prange(cuts.shape[0] - 1):
        _score_range(ids, cuts[s], cuts[s + 1], N, uni_lp, uni_bo, tab, ftab, base, log2s, seed,
                     out_lp, out_ord, out_zero)
