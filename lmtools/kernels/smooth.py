"""Index kernels for smoothing: where an n-gram's prefix lives in the order below (no I/O)."""

import numpy as np
from numba import njit


@njit(cache=True)
def prefix_index(hi, lo):
    """Index in ``lo`` (k, n-1) of each row's first n-1 ids of ``hi`` (m, n); -1 where absent.

    Both arrays are sorted lexicographically, so one forward walk over ``lo`` does it.
    """
    m = hi.shape[0]
    k = lo.shape[0]
    w = lo.shape[1]
    out = np.full(m, -1, np.int64)
    j = 0
    for i in range(m):
        # advance j while lo[j] < hi[i, :w]
        while j < k:
            cmp = 0
            for c in range(w):
                if lo[j, c] != hi[i, c]:
                    cmp = -1 if lo[j, c] < hi[i, c] else 1
                    break
            if cmp < 0:
                j += 1
            else:
                if cmp == 0:
                    out[i] = j
                break
    return out


@njit(cache=True)
def is_sorted_unique(rows):
    """True when the rows are strictly increasing in lexicographic order."""
    m, n = rows.shape
    for i in range(1, m):
        cmp = 0
        for c in range(n):
            if rows[i - 1, c] != rows[i, c]:
                cmp = -1 if rows[i - 1, c] < rows[i, c] else 1
                break
        if cmp >= 0:
            return False
    return True


@njit(cache=True)
def suffix_index(pre, last, suf_prev, start, last_prev):
    """Index in order n-1 of each order-n row's last n-1 words; -1 where absent.

    Row i is (w1..wn): pre[i] is the index of (w1..w_{n-1}) in order n-1, suf_prev[pre[i]] the
    index c of (w2..w_{n-1}) in order n-2, and the rows of order n-1 whose context is c are
    start[c]:start[c+1] (sorted by last word), searched for wn = last[i].
    """
    m = pre.shape[0]
    out = np.full(m, -1, np.int64)
    for i in range(m):
        c = suf_prev[pre[i]]
        if c < 0:
            continue
        lo = start[c]
        end = start[c + 1]
        hi = end
        w = last[i]
        while lo < hi:
            mid = (lo + hi) >> 1
            if last_prev[mid] < w:
                lo = mid + 1
            else:
                hi = mid
        if lo < end and last_prev[lo] == w:
            out[i] = lo
    return out
