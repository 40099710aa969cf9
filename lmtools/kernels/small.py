"""Twins of some index kernels in plain Python and numpy (no numba), for small inputs.

A program that calls a numba kernel first pays numba's import and its first cached kernel (0.5-1 s
here); for a model of some ten thousand n-grams that is most of the run. These functions give the
same results as their kernels (integer work only: equal arrays, not just close ones) and are used
below ``SMALL_ROWS`` n-grams; tests/test_startup.py checks them against the kernels.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

# Below this many n-grams in all, a caller takes these functions rather than the kernels: a dict or
# bisect step costs about a microsecond, so this much work stays under the 0.5 s numba would cost.
SMALL_ROWS = 1 << 17


def prefix_index(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """kernels.smooth.prefix_index: the row of ``lo`` (k, n-1) equal to each row's first n-1 ids of
    ``hi`` (m, n); -1 where absent. (Both sorted and without repeats, as the kernel needs.)"""
    w = lo.shape[1]
    where = {tuple(r): j for j, r in enumerate(lo.tolist())}
    return np.array([where.get(tuple(r[:w]), -1) for r in hi.tolist()], np.int64).reshape(hi.shape[0])


def suffix_index(pre, last, suf_prev, start, last_prev) -> np.ndarray:
    """kernels.smooth.suffix_index: the row of order n-1 of each order-n row's last n-1 words (a
    leftmost binary search of ``last[i]`` among the rows start[c]:start[c+1]); -1 where absent."""
    out = np.full(pre.shape[0], -1, np.int64)
    sp, st, lp = suf_prev.tolist(), start.tolist(), last_prev.tolist()
    for i, (p, w) in enumerate(zip(pre.tolist(), last.tolist())):
        c = sp[p]
        if c < 0:
            continue
        lo, end = st[c], st[c + 1]
        j = bisect_left(lp, w, lo, end)
        if j < end and lp[j] == w:
            out[i] = j
    return out


def rows_from_keys(rows_prev: np.ndarray, skey: np.ndarray, order: np.ndarray, vocab_size: int, want_rank: bool):
    """kernels.count.rows_from_keys: row r is ``rows_prev[skey[r] // V]`` then ``skey[r] % V``, and each
    id's rank (``rank[order[r]] = r``; empty unless ``want_rank``)."""
    m, n = order.shape[0], rows_prev.shape[1] + 1
    rows = np.empty((m, n), np.int32)
    major, word = np.divmod(skey, np.int64(vocab_size))
    rows[:, : n - 1] = rows_prev[major]
    rows[:, n - 1] = word
    rank = np.empty(m if want_rank else 0, np.int64)
    if want_rank:
        rank[order] = np.arange(m, dtype=np.int64)
    return rows, rank


def sorted_keys_and_order(key: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """(``np.sort(key)``, ``np.argsort(key)``) for distinct non-negative int64 keys below ``bound``
    (``key`` is consumed).

    Where a key and its index fit in 63 bits together, they are packed into one int64 and sorted
    with ``ndarray.sort``: numpy's vectorized sort of int64 is several times faster than its argsort
    (0.33 s against 2.9 s for 30M keys on AVX-512). The keys are distinct, so the order is argsort's.
    The sorted keys come with it, so that whoever builds rows from them reads them in order rather
    than gathering by the permutation."""
    m = key.shape[0]
    index_bits = max(1, int(m - 1).bit_length())
    if max(1, int(bound - 1).bit_length()) + index_bits > 63:
        order = np.argsort(key)
        return key[order], order
    key <<= index_bits
    key |= np.arange(m, dtype=np.int64)
    key.sort()
    skey = key >> index_bits
    key &= (1 << index_bits) - 1
    return skey, key


def build_sorted(prefix, word, rank_prev, rows_prev, vocab_size, want_rank: bool = True):
    """kernels.count.build_sorted with the functions above: the same sort key, the same sort."""
    major = rank_prev[prefix]
    key = major * np.int64(vocab_size) + word
    skey, order = sorted_keys_and_order(key, rows_prev.shape[0] * int(vocab_size))
    rows, rank = rows_from_keys(rows_prev, skey, order, vocab_size, want_rank)
    return rows, rank, order
