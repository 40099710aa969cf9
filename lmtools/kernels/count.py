"""N-gram counting kernels (numba, no I/O).

An n-gram of order n >= 2 is identified by the pair (id of its first n-1 words as an order n-1
n-gram, its last word): the key ``prefix << 32 | word`` is exact, so no order needs a fixed
maximum and memory grows with the number of distinct n-grams only. One open-addressing table per
order maps keys to dense ids; per-id arrays hold prefix, word and count.

Callers size the tables before each call (``ensure_room``), so the inner loops never grow.
"""

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def _slot(key, shift):
    return (np.uint64(key) * _GOLDEN) >> np.uint64(shift)


@njit(cache=True)
def count_next_order(prev, ids, keys, slot_ids, shift, prefix, word, count, n_grams, cur):
    """Count the order-n n-grams of a token stream given the order n-1 ids ending at each position.

    Parameters
    ----------
    prev : int32[:] id of the order n-1 n-gram ending at each position, -1 where there is none.
    ids : int32[:] the token stream, ``<s> w.. </s>`` per sentence (``<s>`` is id 1).
    keys, slot_ids, shift : the hash table (int64 keys, -1 empty; int32 n-gram ids; 64 - log2 size).
    prefix, word, count : per n-gram id arrays, room for every new n-gram of this call.
    n_grams : n-grams in the table so far.
    cur : int32[:] output, the order-n id ending at each position (-1: none, e.g. across a sentence start).

    Returns
    -------
    The new number of n-grams.
    """
    mask = keys.shape[0] - 1
    cur[0] = -1
    for i in range(1, ids.shape[0]):
        p = prev[i - 1]
        w = ids[i]
        if p < 0 or w == 1:
            cur[i] = -1
            continue
        key = (np.int64(p) << 32) | np.int64(w)
        j = np.int64(_slot(key, shift))
        while True:
            k = keys[j]
            if k == key:
                g = slot_ids[j]
                count[g] += 1
                break
            if k == -1:
                g = n_grams
                keys[j] = key
                slot_ids[j] = g
                prefix[g] = p
                word[g] = w
                count[g] = 1
                n_grams += 1
                break
            j = (j + 1) & mask
        cur[i] = g
    return n_grams


@njit(cache=True)
def add_weighted(pref_in, word_in, weight_in, keys, slot_ids, shift, prefix, word, count, n_grams, out):
    """Add (prefix, word) pairs with weights to a table; ``out[i]`` gets the id of pair i.

    Used to re-aggregate counts after a vocabulary change (words mapped to ``<unk>``) and to merge
    count files: counts are sums, so mapping and summing is exact. A negative prefix drops the pair.
    """
    mask = keys.shape[0] - 1
    for i in range(pref_in.shape[0]):
        p = pref_in[i]
        if p < 0:
            out[i] = -1
            continue
        w = word_in[i]
        key = (np.int64(p) << 32) | np.int64(w)
        j = np.int64(_slot(key, shift))
        while True:
            k = keys[j]
            if k == key:
                g = slot_ids[j]
                count[g] += weight_in[i]
                break
            if k == -1:
                g = n_grams
                keys[j] = key
                slot_ids[j] = g
                prefix[g] = p
                word[g] = w
                count[g] = weight_in[i]
                n_grams += 1
                break
            j = (j + 1) & mask
        out[i] = g
    return n_grams


@njit(cache=True)
def rehash(keys, slot_ids, new_size, shift):
    """The same entries in a table of ``new_size`` slots (a power of two, ``shift`` = 64 - log2)."""
    new_keys = np.full(new_size, -1, np.int64)
    new_slots = np.empty(new_size, np.int32)
    mask = new_size - 1
    for s in range(keys.shape[0]):
        key = keys[s]
        if key != -1:
            j = np.int64(_slot(key, shift))
            while new_keys[j] != -1:
                j = (j + 1) & mask
            new_keys[j] = key
            new_slots[j] = slot_ids[s]
    return new_keys, new_slots


@njit(cache=True)
def gather_rows(rows_prev, major, word, order):
    """Rows of one order in sorted order: ``rows_prev[major[g]]`` followed by ``word[g]``, g = order[r]."""
    m = order.shape[0]
    n = rows_prev.shape[1] + 1
    rows = np.empty((m, n), np.int32)
    rank = np.empty(m, np.int64)
    for r in range(m):
        g = order[r]
        rank[g] = r
        src = major[g]
        for c in range(n - 1):
            rows[r, c] = rows_prev[src, c]
        rows[r, n - 1] = word[g]
    return rows, rank


def build_sorted(prefix, word, rank_prev, rows_prev, vocab_size):
    """Rows (full id tuples) of one order in lexicographic order, each n-gram id's rank, and the order.

    ``rank_prev[id]`` is the row of order n-1 n-gram ``id`` in ``rows_prev`` (already sorted). The
    sort is numpy's (SIMD-accelerated for int64 keys, faster here than a counting sort in numba).
    """
    major = rank_prev[prefix]
    key = major * np.int64(vocab_size) + word
    order = np.argsort(key)
    rows, rank = gather_rows(rows_prev, major, word, order)
    return rows, rank, order
