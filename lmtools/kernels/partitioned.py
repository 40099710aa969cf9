"""Kernels of partitioned n-gram estimation (lmtools.ngram.partitioned): finding rows in a sorted
array of n-grams and merging sorted runs of them (numba, no I/O). Rows are int32 word ids, one
n-gram per row, compared lexicographically."""

import numpy as np
from numba import njit

from lmtools.kernels.merge_runs import key_bits
from lmtools.kernels.rows import compare_rows as _cmp  # lexicographic order of rows


@njit(cache=True)
def first_id_starts(table):
    """Offsets of the rows of each first id in ``table`` (k, n; sorted): rows with first id v are
    ``starts[v]:starts[v+1]`` (v up to the largest first id)."""
    k = table.shape[0]
    top = table[k - 1, 0] if k else -1
    starts = np.zeros(top + 2, np.int64)
    for j in range(k):
        starts[table[j, 0] + 1] += 1
    for v in range(top + 1):
        starts[v + 1] += starts[v]
    return starts


@njit(cache=True)
def find_rows(queries, table, starts):
    """Index in ``table`` (k, n; sorted, no repeats) of each row of ``queries`` (m, n), -1 where absent;
    ``starts``: ``first_id_starts(table)`` (``find_rows_into`` does the work)."""
    out = np.full(queries.shape[0], -1, np.int64)
    find_rows_into(queries, table, starts, out)
    return out


@njit(cache=True, nogil=True)
def find_rows_into(queries, table, starts, out):
    """``find_rows`` into ``out`` (m,) int64, without holding the GIL: threads search slices of the
    queries at once (lmtools.ngram.partitioned.search_rows).

    The search for a query is confined to the table's rows with its first id; a query greater than the one before it is
    searched for by galloping forward from where that one was (sorted queries, or runs of them such
    as the suffixes of the n-grams of one first word, cost O(log gap) each); any other query by a
    binary search of its first id's rows."""
    m = queries.shape[0]
    k = table.shape[0]
    n = table.shape[1]
    out[:] = -1
    top = starts.shape[0] - 2
    at = 0  # insertion point of the previous query: table[:at] < it
    # The comparisons are written out (x, y: the first ids that differ, equal where none does), not
    # called: kernels.rows.compare_rows inlined here left numba's reference counting of the arrays
    # (atomic operations) in the search loops. Rows of table[lo:end] share the query's first id, so
    # those comparisons start at the second.
    for i in range(m):
        q0 = queries[i, 0]
        if q0 < 0 or q0 > top:
            at = 0 if q0 < 0 else k
            continue
        lo = starts[q0]
        end = starts[q0 + 1]
        hi = end
        if i > 0 and at > lo and at <= end:
            x = y = 0
            for c in range(n):
                x = queries[i - 1, c]
                y = queries[i, c]
                if x != y:
                    break
            if x < y:  # table[lo:at] < queries[i - 1] < queries[i]: gallop from at
                lo = at
                step = 1
                while lo + step - 1 < end:
                    r = lo + step - 1
                    x = y = 0
                    for c in range(1, n):
                        x = table[r, c]
                        y = queries[i, c]
                        if x != y:
                            break
                    if not x < y:
                        break
                    lo += step
                    step *= 2
                hi = min(lo + step - 1, end)
        while lo < hi:
            mid = (lo + hi) >> 1
            x = y = 0
            for c in range(1, n):
                x = table[mid, c]
                y = queries[i, c]
                if x != y:
                    break
            if x < y:
                lo = mid + 1
            else:
                hi = mid
        at = lo
        if lo < end:
            x = y = 0
            for c in range(1, n):
                x = table[lo, c]
                y = queries[i, c]
                if x != y:
                    break
            if x == y:
                out[i] = lo


@njit(cache=True)
def first_id_order(queries):
    """The positions of ``queries`` (m, n) grouped by first id, ascending (negative ids first, as
    one group), and in their own order within a group (a counting sort: O(m))."""
    m = queries.shape[0]
    top = 0
    for i in range(m):
        top = max(top, queries[i, 0] + 1)
    at = np.zeros(top + 2, np.int64)
    for i in range(m):
        at[max(queries[i, 0] + 1, 0) + 1] += 1
    for v in range(top + 1):
        at[v + 1] += at[v]
    order = np.empty(m, np.int64)
    for i in range(m):
        v = max(queries[i, 0] + 1, 0)
        order[at[v]] = i
        at[v] += 1
    return order


ORDERED_BLOCK = 4096  # queries gathered at a time by find_rows_ordered_into


@njit(cache=True, nogil=True)
def find_rows_ordered_into(queries, order, table, starts, out):
    """``find_rows_into`` of the queries ``order`` lists, in that order (a slice of
    ``first_id_order(queries)``), into ``out`` at the queries' own positions; without the GIL.

    Why: the suffixes of sorted n-grams (the n-grams' last n-1 words) come in runs of one first word,
    and each new run starts with a binary search of its first id's rows, which for a frequent first id
    spans much of the table: a cache miss per step. Taken in first-id order, the searches of one first
    id stay in the same rows, which stay in cache. The queries are gathered a block at a time (the
    loads of a block are independent, so they overlap), searched, and their results scattered back."""
    m = order.shape[0]
    buf = np.empty((min(m, ORDERED_BLOCK), queries.shape[1]), queries.dtype)
    res = np.empty(buf.shape[0], np.int64)
    for a in range(0, m, ORDERED_BLOCK):
        b = min(m, a + ORDERED_BLOCK)
        for t in range(a, b):
            buf[t - a] = queries[order[t]]
        find_rows_into(buf[:b - a], table, starts, res[:b - a])
        for t in range(a, b):
            out[order[t]] = res[t - a]


@njit(cache=True)
def context_groups(rows):
    """For sorted rows (m, n): the number of each row's context (its first n-1 ids) among the
    distinct contexts, in order, and the first row of each context."""
    m = rows.shape[0]
    w = rows.shape[1] - 1
    group = np.empty(m, np.int64)
    first = np.empty(m, np.int64)
    g = -1
    for i in range(m):
        if i == 0 or _cmp(rows, i - 1, rows, i, w) != 0:
            g += 1
            first[g] = i
        group[i] = g
    return group, first[: g + 1].copy()


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
def kway_order(rows, starts, out_rows, low, bits):
    """The k-way merge of sorted runs: run i is ``rows[starts[i]:starts[i+1]]``; writes the rows in
    merged order to ``out_rows`` and returns their positions in ``rows`` (equal rows of different
    runs: the earlier run first). ``low``, ``bits``: every id lies in ``low .. low + 2**bits - 1``.

    The runs' heads are kept in a binary heap: O(log k) comparisons per row, often 2 (the run on top
    tends to stay there). (A tournament tree of losers, always log2(k) comparisons, measured slower:
    0.84-0.89 s against 0.65-0.71 s for 3M rows of 144 runs.) The heap compares each head's key, its
    first ids packed into an int64 (as lmtools.kernels.merge_runs does), and reads the rows only on a
    tie; the comparisons are written out in the loops, not called (see merge_runs._sift_down)."""
    k = starts.shape[0] - 1
    n = rows.shape[1]
    cols = max(1, min(n, 63 // bits))
    pos = starts[:-1].copy()
    end = starts[1:].copy()
    keys = np.zeros(max(k, 1), np.int64)
    heap = np.empty(max(k, 1), np.int64)
    size = 0
    for i in range(k):
        if pos[i] < end[i]:
            key = 0
            for c in range(cols):
                key = (key << bits) | (int(rows[pos[i], c]) - low)
            keys[i] = key
            heap[size] = i  # sift up
            j = size
            size += 1
            while j > 0:
                parent = (j - 1) >> 1
                a = heap[j]
                b = heap[parent]
                x = keys[a]
                y = keys[b]
                if x == y:
                    for c in range(cols, n):
                        x = rows[pos[a], c]
                        y = rows[pos[b], c]
                        if x != y:
                            break
                    if x == y:  # equal rows: the earlier run first
                        x = a
                        y = b
                if not x < y:
                    break
                heap[j], heap[parent] = b, a
                j = parent
    out = np.empty(rows.shape[0], np.int64)
    for o in range(rows.shape[0]):
        top = heap[0]
        p = pos[top]
        out[o] = p
        for c in range(n):
            out_rows[o, c] = rows[p, c]
        p += 1
        pos[top] = p
        if p == end[top]:
            size -= 1
            heap[0] = heap[size]
        else:
            key = 0
            for c in range(cols):
                key = (key << bits) | (int(rows[p, c]) - low)
            keys[top] = key
        j = 0  # sift down
        while True:
            left = 2 * j + 1
            if left >= size:
                break
            child = left
            right = left + 1
            if right < size:  # the smaller child: right when its head comes before left's
                a = heap[right]
                b = heap[left]
                x = keys[a]
                y = keys[b]
                if x == y:
                    for c in range(cols, n):
                        x = rows[pos[a], c]
                        y = rows[pos[b], c]
                        if x != y:
                            break
                    if x == y:
                        x = a
                        y = b
                if x < y:
                    child = right
            a = heap[child]
            b = heap[j]
            x = keys[a]
            y = keys[b]
            if x == y:
                for c in range(cols, n):
                    x = rows[pos[a], c]
                    y = rows[pos[b], c]
                    if x != y:
                        break
                if x == y:
                    x = a
                    y = b
            if not x < y:
                break
            heap[j], heap[child] = a, b
            j = child
    return out


def merge_sorted(runs) -> tuple:
    """The k-way merge of sorted runs held in memory (plain Python around ``kway_order``), each a tuple
    (rows (m, n) int32, payload arrays of length m...): one tuple of the same shape, rows in
    lexicographic order (equal rows: the earlier run's first)."""
    runs = list(runs)
    if len(runs) == 1:
        return runs[0]
    rows = np.concatenate([r[0] for r in runs])
    starts = np.zeros(len(runs) + 1, np.int64)
    np.cumsum([r[0].shape[0] for r in runs], out=starts[1:])
    merged = np.empty_like(rows)
    low = int(rows.min()) if rows.size else 0
    bits = key_bits(int(rows.max()) - low + 1) if rows.size else 1
    perm = kway_order(np.ascontiguousarray(rows), starts, merged, low, bits)
    out = [merged]
    for j in range(1, len(runs[0])):
        out.append(np.take(np.concatenate([r[j] for r in runs]), perm))
    return tuple(out)
