"""N-gram counting kernels (numba, no I/O).

An n-gram of order n >= 2 is identified by the pair (id of its first n-1 words as an order n-1
n-gram, its last word): the key ``prefix << 32 | word`` is exact, so no order needs a fixed
maximum and memory grows with the number of distinct n-grams only. One open-addressing table per
order maps keys to dense ids, assigned in order of first occurrence (so they do not depend on how
the text was cut into chunks); per-id arrays hold prefix, word and count. The table is one int64
array of (key, id) pairs, so that a probe touches one cache line.

Callers size the tables before each call (``ensure_room``), so the inner loops never grow.
"""

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def _slot(key, shift):
    return (np.uint64(key) * _GOLDEN) >> np.uint64(shift)


@njit(cache=True, inline="always")
def _add(table, shift, mask, p, w, weight, prefix, word, count, n_grams):
    """Add ``weight`` to the count of n-gram (prefix p, last word w), inserting it when new.
    Returns (its id, the new number of n-grams)."""
    key = (np.int64(p) << 32) | np.int64(w)
    j = np.int64(_slot(key, shift))
    while True:
        k = table[2 * j]
        if k == key:
            g = table[2 * j + 1]
            count[g] += weight
            return g, n_grams
        if k == -1:
            table[2 * j] = key
            table[2 * j + 1] = n_grams
            prefix[n_grams] = p
            word[n_grams] = w
            count[n_grams] = weight
            return n_grams, n_grams + 1
        j = (j + 1) & mask


@njit(cache=True)
def count_next_order(prev, ids, table, shift, prefix, word, count, n_grams, cur):
    """Count the order-n n-grams of a token stream given the order n-1 ids ending at each position.

    Parameters
    ----------
    prev : int32[:] id of the order n-1 n-gram ending at each position, -1 where there is none.
    ids : int32[:] the token stream, ``<s> w.. </s>`` per sentence (``<s>`` is id 1).
    table, shift : the hash table, (key, id) int64 pairs (key -1: empty), shift = 64 - log2(slots).
    prefix, word, count : per n-gram id arrays, room for every new n-gram of this call.
    n_grams : n-grams in the table so far.
    cur : int32[:] output, the order-n id ending at each position (-1: none, e.g. across a sentence start).

    Returns
    -------
    The new number of n-grams.
    """
    mask = (table.shape[0] >> 1) - 1
    cur[0] = -1
    for i in range(1, ids.shape[0]):
        p = prev[i - 1]
        w = ids[i]
        if p < 0 or w == 1:
            cur[i] = -1
            continue
        g, n_grams = _add(table, shift, mask, p, w, 1, prefix, word, count, n_grams)
        cur[i] = g
    return n_grams


@njit(cache=True)
def add_weighted(pref_in, word_in, weight_in, table, shift, prefix, word, count, n_grams, out):
    """Add (prefix, word) pairs with weights to a table; ``out[i]`` gets the id of pair i.

    Used to re-aggregate counts after a vocabulary change (words mapped to ``<unk>``) and to merge
    count files: counts are sums, so mapping and summing is exact. A negative prefix drops the pair.
    """
    mask = (table.shape[0] >> 1) - 1
    for i in range(pref_in.shape[0]):
        p = pref_in[i]
        if p < 0:
            out[i] = -1
            continue
        g, n_grams = _add(table, shift, mask, p, word_in[i], weight_in[i], prefix, word, count, n_grams)
        out[i] = g
    return n_grams


@njit(cache=True)
def rehash(table, new, shift):
    """Insert the entries of ``table`` into ``new`` (all -1, a power of two of slots; ``shift`` = 64 - log2)."""
    mask = (new.shape[0] >> 1) - 1
    for s in range(table.shape[0] >> 1):
        key = table[2 * s]
        if key != -1:
            j = np.int64(_slot(key, shift))
            while new[2 * j] != -1:
                j = (j + 1) & mask
            new[2 * j] = key
            new[2 * j + 1] = table[2 * s + 1]


@njit(cache=True)
def rows_from_keys(rows_prev, skey, order, vocab_size, want_rank):
    """Rows of one order from their sorted keys (key = row of the order below * V + last word): row
    r is ``rows_prev[skey[r] // V]`` followed by ``skey[r] % V``, read in order (no gather by the
    permutation); ``rank[order[r]] = r`` for the next order up (empty unless ``want_rank``: the
    highest order needs none, and its scatter is the one random access left)."""
    m = order.shape[0]
    n = rows_prev.shape[1] + 1
    V = np.int64(vocab_size)
    rows = np.empty((m, n), np.int32)
    rank = np.empty(m if want_rank else 0, np.int64)
    for r in range(m):
        k = skey[r]
        src = k // V
        for c in range(n - 1):
            rows[r, c] = rows_prev[src, c]
        rows[r, n - 1] = k - src * V
    if want_rank:
        for r in range(m):
            rank[order[r]] = r
    return rows, rank


def build_sorted(prefix, word, rank_prev, rows_prev, vocab_size, want_rank=True):
    """Rows (full id tuples) of one order in lexicographic order, each n-gram id's rank (empty unless
    ``want_rank``), and the order.

    ``rank_prev[id]`` is the row of order n-1 n-gram ``id`` in ``rows_prev`` (already sorted). The
    sort is numpy's (SIMD-accelerated for int64 keys, faster here than a counting sort in numba;
    kernels.small.sorted_keys_and_order).
    """
    from lmtools.kernels.small import sorted_keys_and_order

    major = rank_prev[prefix]
    key = major * np.int64(vocab_size) + word
    skey, order = sorted_keys_and_order(key, rows_prev.shape[0] * int(vocab_size))
    rows, rank = rows_from_keys(rows_prev, skey, order, vocab_size, bool(want_rank))
    return rows, rank, order


@njit(cache=True)
def find_pairs(pref_in, word_in, table, shift, out):
    """``out[i]``: the id of n-gram (pref_in[i], word_in[i]) in a table, -1 where it is absent (or
    where pref_in[i] < 0). A lookup only: nothing is inserted (reading text counts checks with it
    that every n-gram's prefix and suffix has a line of its own)."""
    mask = (table.shape[0] >> 1) - 1
    for i in range(pref_in.shape[0]):
        p = pref_in[i]
        if p < 0:
            out[i] = -1
            continue
        key = (np.int64(p) << 32) | np.int64(word_in[i])
        j = np.int64(_slot(key, shift))
        out[i] = -1
        while True:
            k = table[2 * j]
            if k == key:
                out[i] = table[2 * j + 1]
                break
            if k == -1:
                break
            j = (j + 1) & mask
