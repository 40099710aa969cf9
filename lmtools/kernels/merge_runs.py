"""K-way merge of sorted runs of n-gram rows, summing the counts of equal rows (numba, no I/O).

A run is a sequence of (rows, counts) in strictly increasing lexicographic order of the rows (int32
word ids, one n-gram per row). The caller holds one block of each run in a shared buffer: run i's
rows are ``rows[lo[i]:hi[i]]`` (its slot), the next one to take at ``pos[i]``. ``merge_step`` moves
rows to the output in merged order until the output is full, or until a run's block is used up while
the run has more on disk (``more[i]``): the caller then refills that slot and calls again. Equal rows
of different runs (and of the last output row, kept across calls) are summed into one.

The smallest head among the k runs is found by a linear scan: k is the number of runs merged at once
(a few to a few dozen), where a heap would cost more than it saves.
"""

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _cmp(a, i, b, j, n):
    """-1, 0, 1: row i of a against row j of b (lexicographic over n columns)."""
    for c in range(n):
        x = a[i, c]
        y = b[j, c]
        if x < y:
            return -1
        if x > y:
            return 1
    return 0


@njit(cache=True)
def merge_step(rows, counts, pos, hi, more, out_rows, out_counts, n_out):
    """Merge the buffered heads of the runs into ``out_rows``/``out_counts`` from ``n_out`` on.

    Parameters
    ----------
    rows : int32[:, n] every run's buffered block, run i's at ``[pos[i]:hi[i]]``.
    counts : int64[:] their counts.
    pos, hi : int64[:] per run, the next buffered row and the end of its buffered rows (updated).
    more : bool[:] per run, whether rows beyond its buffered block remain to be read.
    out_rows, out_counts : the output buffer; rows before ``n_out`` are already merged (the last of
        them may still grow: an equal row coming next is added to it).
    n_out : rows in the output so far.

    Returns
    -------
    (n_out, need): the rows in the output now, and the run whose slot must be refilled before the
    merge can go on (-1: none; then either the output is full or every run is exhausted, which the
    caller tells apart by ``n_out == len(out_rows)`` and ``pos == hi`` with no ``more``).
    """
    k = pos.shape[0]
    n = rows.shape[1]
    cap = out_rows.shape[0]
    while True:
        best = -1
        for i in range(k):
            if pos[i] < hi[i]:
                if best < 0 or _cmp(rows, pos[i], rows, pos[best], n) < 0:
                    best = i
            elif more[i]:
                return n_out, i  # this run's next rows are not buffered: they may be the smallest
        if best < 0:
            return n_out, -1
        p = pos[best]
        if n_out > 0 and _cmp(rows, p, out_rows, n_out - 1, n) == 0:
            out_counts[n_out - 1] += counts[p]
        else:
            if n_out == cap:
                return n_out, -1
            for c in range(n):
                out_rows[n_out, c] = rows[p, c]
            out_counts[n_out] = counts[p]
            n_out += 1
        pos[best] = p + 1


@njit(cache=True)
def sum_sorted(rows, counts, out_rows, out_counts):
    """Rows already in non-decreasing order: equal neighbours summed into one (written to the outputs,
    which may be the inputs themselves); returns the rows kept. Rows with a count of 0 are dropped."""
    m = rows.shape[0]
    n = rows.shape[1]
    k = 0
    for r in range(m):
        c = counts[r]
        if k > 0 and _cmp(rows, r, out_rows, k - 1, n) == 0:
            out_counts[k - 1] += c
            continue
        if k > 0 and out_counts[k - 1] == 0:
            k -= 1  # the row before summed to nothing: overwrite it
        for j in range(n):
            out_rows[k, j] = rows[r, j]
        out_counts[k] = c
        k += 1
    if k > 0 and out_counts[k - 1] == 0:
        k -= 1
    return k
