"""K-way merge of sorted runs of n-gram rows, summing the counts of equal rows (numba, no I/O).

A run is a sequence of (rows, counts) in strictly increasing lexicographic order of the rows (int32
word ids, one n-gram per row). The caller holds one block of each run in a shared buffer: run i's
rows are ``rows[lo[i]:hi[i]]`` (its slot), the next one to take at ``pos[i]``. ``merge_step`` moves
rows to the output in merged order until the output is full, or until a run's block is used up while
the run has more on disk (``more[i]``): the caller then refills that slot and calls again. Equal rows
of different runs (and of the last output row, kept across calls) are summed into one.

The smallest head among the k runs is kept by a binary heap (log k comparisons of rows per row
merged), so that merging many runs at once (a small budget and a large text) stays one pass.
"""

from numba import njit

from lmtools.kernels.rows import compare_rows as _cmp  # lexicographic order of rows


@njit(cache=True, inline="always")
def _less(rows, heap, a, b, pos, n):
    return _cmp(rows, pos[heap[a]], rows, pos[heap[b]], n) < 0


@njit(cache=True)
def _sift_down(rows, heap, size, pos, n):
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        small = left
        if left + 1 < size and _less(rows, heap, left + 1, left, pos, n):
            small = left + 1
        if not _less(rows, heap, small, i, pos, n):
            return
        heap[i], heap[small] = heap[small], heap[i]
        i = small


@njit(cache=True)
def _sift_up(rows, heap, i, pos, n):
    while i > 0:
        parent = (i - 1) // 2
        if not _less(rows, heap, i, parent, pos, n):
            return
        heap[i], heap[parent] = heap[parent], heap[i]
        i = parent


@njit(cache=True)
def merge_step(rows, counts, pos, hi, more, heap, state, out_rows, out_counts, n_out):
    """Merge the buffered heads of the runs into ``out_rows``/``out_counts`` from ``n_out`` on.

    Parameters
    ----------
    rows : int32[:, n] every run's buffered block, run i's at ``[pos[i]:hi[i]]``.
    counts : int64[:] their counts.
    pos, hi : int64[:] per run, the next buffered row and the end of its buffered rows (updated).
    more : bool[:] per run, whether rows beyond its buffered block remain to be read.
    heap, state : the merge's state between calls, kept by the caller: ``heap`` int64[k] (a binary
        heap of the runs with buffered rows, smallest head first), ``state`` int64[k + 1] (the heap's
        size, then per run 1 when it is in the heap); start with zeros.
    out_rows, out_counts : the output buffer; rows before ``n_out`` are already merged (the last of
        them may still grow: an equal row coming next is added to it).
    n_out : rows in the output so far.

    Returns
    -------
    (n_out, need): the rows in the output now, and the run whose slot must be refilled before the
    merge can go on (-1: none; then the output is full, ``n_out == len(out_rows)``, or every run is
    exhausted).
    """
    k = pos.shape[0]
    n = rows.shape[1]
    cap = out_rows.shape[0]
    size = state[0]
    for i in range(k):  # runs refilled since the last call (or all, at the first) join the heap
        if state[1 + i] == 0 and pos[i] < hi[i]:
            heap[size] = i
            state[1 + i] = 1
            _sift_up(rows, heap, size, pos, n)
            size += 1
    while size > 0:
        best = heap[0]
        p = pos[best]
        if n_out > 0 and _cmp(rows, p, out_rows, n_out - 1, n) == 0:
            out_counts[n_out - 1] += counts[p]
        else:
            if n_out == cap:
                state[0] = size
                return n_out, -1
            for c in range(n):
                out_rows[n_out, c] = rows[p, c]
            out_counts[n_out] = counts[p]
            n_out += 1
        pos[best] = p + 1
        if pos[best] < hi[best]:
            _sift_down(rows, heap, size, pos, n)
            continue
        size -= 1  # its block is used up: out of the heap until refilled
        heap[0] = heap[size]
        state[1 + best] = 0
        _sift_down(rows, heap, size, pos, n)
        if more[best]:
            state[0] = size
            return n_out, best  # its next rows are not buffered: they may be the smallest
    state[0] = size
    return n_out, -1


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
