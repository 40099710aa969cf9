"""K-way merge of sorted runs of n-gram rows, summing the counts of equal rows (numba, no I/O).

A run is a sequence of (rows, counts) in strictly increasing lexicographic order of the rows (int32
word ids, one n-gram per row). The caller holds one block of each run in a shared buffer: run i's
rows are ``rows[lo[i]:hi[i]]`` (its slot), the next one to take at ``pos[i]``. ``merge_step`` moves
rows to the output in merged order until the output is full, or until a run's block is used up while
the run has more on disk (``more[i]``): the caller then refills that slot and calls again. Equal rows
of different runs (and of the last output row, kept across calls) are summed into one.

The smallest head among the k runs is kept by a binary heap (log k comparisons of rows per row
merged), so that merging many runs at once (a small budget and a large text) stays one pass. Each
run's head is compared by a key that packs its first ids into an int64 (as many as fit the bits the
vocabulary needs: four 14-bit ids for a 10k-word vocabulary), so the heap works on k keys in cache
and reads a row only where two heads tie on their keys.
"""

from numba import njit

from lmtools.kernels.rows import compare_rows as _cmp  # lexicographic order of rows


def key_bits(id_bound: int) -> int:
    """Bits per id in the packed keys of ``merge_step`` (and partitioned.kway_order) for ids in
    ``0 .. id_bound - 1`` (up to 2**31): a key holds the first ``63 // bits`` ids of a row."""
    return max(1, int(id_bound - 1).bit_length())


@njit(cache=True)
def _head_key(rows, p, bits, cols):
    """The packed key of row p: its first ``cols`` ids, ``bits`` each, most significant first (the
    keys of two rows compare as those ids do); raises where an id does not fit."""
    key = 0
    lim = 1 << bits
    for c in range(cols):
        x = int(rows[p, c])
        if x < 0 or x >= lim:
            raise ValueError("merge_step: a word id outside the bound given for the merge")
        key = (key << bits) | x
    return key


@njit(cache=True)
def _sift_down(rows, heap, size, pos, keys, cols, n):
    # The comparisons of rows are written out here and in _sift_up rather than called: a helper
    # that reads both the keys and the rows keeps numba's reference counting of its array
    # arguments in the loop (atomic operations on every comparison, measured 3.5x slower).
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        small = left
        right = left + 1
        if right < size:  # the smaller child: right when its head is below left's
            x = keys[heap[right]]
            y = keys[heap[left]]
            if x == y:  # tied keys: the first differing id after them decides
                pa = pos[heap[right]]
                pb = pos[heap[left]]
                for c in range(cols, n):
                    x = rows[pa, c]
                    y = rows[pb, c]
                    if x != y:
                        break
            if x < y:
                small = right
        x = keys[heap[small]]
        y = keys[heap[i]]
        if x == y:
            pa = pos[heap[small]]
            pb = pos[heap[i]]
            for c in range(cols, n):
                x = rows[pa, c]
                y = rows[pb, c]
                if x != y:
                    break
        if not x < y:
            return
        heap[i], heap[small] = heap[small], heap[i]
        i = small


@njit(cache=True)
def _sift_up(rows, heap, i, pos, keys, cols, n):
    while i > 0:
        parent = (i - 1) // 2
        x = keys[heap[i]]
        y = keys[heap[parent]]
        if x == y:
            pa = pos[heap[i]]
            pb = pos[heap[parent]]
            for c in range(cols, n):
                x = rows[pa, c]
                y = rows[pb, c]
                if x != y:
                    break
        if not x < y:
            return
        heap[i], heap[parent] = heap[parent], heap[i]
        i = parent


@njit(cache=True)
def merge_step(rows, counts, pos, hi, more, heap, state, keys, bits, out_rows, out_counts, n_out):
    """Merge the buffered heads of the runs into ``out_rows``/``out_counts`` from ``n_out`` on.

    Parameters
    ----------
    rows : int32[:, n] every run's buffered block, run i's at ``[pos[i]:hi[i]]``.
    counts : int64[:] their counts.
    pos, hi : int64[:] per run, the next buffered row and the end of its buffered rows (updated).
    more : bool[:] per run, whether rows beyond its buffered block remain to be read.
    heap, state, keys : the merge's state between calls, kept by the caller: ``heap`` int64[k] (a
        binary heap of the runs with buffered rows, smallest head first), ``state`` int64[k + 1] (the
        heap's size, then per run 1 when it is in the heap), ``keys`` int64[k] (per run in the heap,
        its head's packed key); start with zeros.
    bits : ``key_bits(id_bound)``: every id in the rows is below
        ``2**bits`` (an id that is not raises ValueError).
    out_rows, out_counts : the output buffer; rows before ``n_out`` are already merged (the last of
        them may still grow: an equal row coming next is added to it).
    n_out : rows in the output so far.

    Returns
    -------
    (n_out, need): the rows in the output now, and the run whose slot must be refilled before the
    merge can go on (-1: none; then the output is full, ``n_out == len(out_rows)``, or every run is
    exhausted).

    The heap compares the heads' keys (the first ids of each row packed into one int64: most rows of
    the merge frontier differ there) and reads the rows' remaining ids only on a tie.
    """
    k = pos.shape[0]
    n = rows.shape[1]
    cols = min(n, 63 // bits)
    lim = 1 << bits
    cap = out_rows.shape[0]
    size = state[0]
    for i in range(k):  # runs refilled since the last call (or all, at the first) join the heap
        if state[1 + i] == 0 and pos[i] < hi[i]:
            heap[size] = i
            state[1 + i] = 1
            keys[i] = _head_key(rows, pos[i], bits, cols)
            _sift_up(rows, heap, size, pos, keys, cols, n)
            size += 1
    last = _head_key(out_rows, n_out - 1, bits, cols) if n_out > 0 else -1
    while size > 0:
        best = heap[0]
        p = pos[best]
        key = keys[best]
        same = key == last
        if same:
            for c in range(cols, n):
                if rows[p, c] != out_rows[n_out - 1, c]:
                    same = False
                    break
        if same:
            out_counts[n_out - 1] += counts[p]
        else:
            if n_out == cap:
                state[0] = size
                return n_out, -1
            for c in range(n):
                out_rows[n_out, c] = rows[p, c]
            out_counts[n_out] = counts[p]
            n_out += 1
            last = key
        p += 1
        pos[best] = p
        if p < hi[best]:
            key = 0
            for c in range(cols):  # _head_key, written out (see _sift_down)
                x = int(rows[p, c])
                if x < 0 or x >= lim:
                    raise ValueError("merge_step: a word id outside the bound given for the merge")
                key = (key << bits) | x
            keys[best] = key
            _sift_down(rows, heap, size, pos, keys, cols, n)
            continue
        size -= 1  # its block is used up: out of the heap until refilled
        heap[0] = heap[size]
        state[1 + best] = 0
        _sift_down(rows, heap, size, pos, keys, cols, n)
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
