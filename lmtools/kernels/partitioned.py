"""Kernels of partitioned n-gram estimation (lmtools.ngram.partitioned): finding rows in a sorted
array of n-grams and merging sorted runs of them (numba, no I/O). Rows are int32 word ids, one
n-gram per row, compared lexicographically."""

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _cmp(a, i, b, j, n):
    """-1, 0, 1: row i of a against row j of b over their first n columns."""
    for c in range(n):
        x = a[i, c]
        y = b[j, c]
        if x < y:
            return -1
        if x > y:
            return 1
    return 0


@njit(cache=True)
def find_rows(queries, table):
    """Index in ``table`` (k, n; sorted, no repeats) of each row of ``queries`` (m, n), -1 where absent:
    a binary search per row (the queries need not be sorted)."""
    m = queries.shape[0]
    k = table.shape[0]
    n = table.shape[1]
    out = np.full(m, -1, np.int64)
    for i in range(m):
        lo = 0
        hi = k
        while lo < hi:
            mid = (lo + hi) >> 1
            if _cmp(table, mid, queries, i, n) < 0:
                lo = mid + 1
            else:
                hi = mid
        if lo < k and _cmp(table, lo, queries, i, n) == 0:
            out[i] = lo
    return out


@njit(cache=True)
def count_not_above(rows, bound, j):
    """Number of leading rows of ``rows`` (sorted) that are <= row j of ``bound``."""
    lo = 0
    hi = rows.shape[0]
    n = rows.shape[1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if _cmp(rows, mid, bound, j, n) <= 0:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def merge_order(rows, starts):
    """The k-way merge of sorted runs: run i is ``rows[starts[i]:starts[i+1]]``; returns the row
    positions in merged order (equal rows of different runs: the earlier run first). The smallest
    head is found by a linear scan over the runs (a few to a few dozen)."""
    k = starts.shape[0] - 1
    n = rows.shape[1]
    pos = starts[:-1].copy()
    end = starts[1:].copy()
    out = np.empty(rows.shape[0], np.int64)
    for o in range(rows.shape[0]):
        best = -1
        for i in range(k):
            if pos[i] < end[i]:
                if best < 0 or _cmp(rows, pos[i], rows, pos[best], n) < 0:
                    best = i
        out[o] = pos[best]
        pos[best] += 1
    return out
