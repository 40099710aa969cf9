"""Comparing n-gram rows (numba, no I/O): int32 word ids, one n-gram per row, in lexicographic order
(the order of every sorted n-gram array in lmtools: counts, models, runs, partitions)."""

from numba import njit


@njit(cache=True, inline="always")
def compare_rows(a, i, b, j, n):
    """-1, 0, 1: row i of a against row j of b over their first n columns."""
    for c in range(n):
        x = a[i, c]
        y = b[j, c]
        if x < y:
            return -1
        if x > y:
            return 1
    return 0
