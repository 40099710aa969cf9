"""The packing of n-gram records for temporary files (lmtools.kernels.bitpack) against the plain-Python
reference (tests/naive.py), and its round trip."""

import numpy as np
import pytest

from lmtools.kernels.bitpack import pack_chunks, piece_words, unpack_rows
from tests import naive


@pytest.mark.parametrize("n, id_top, count_top, m, chunk", [
    (1, 2, 2, 1, 4), (2, 1, 1, 9, 4), (3, 100, 1 << 20, 1000, 64), (5, (1 << 31) - 1, (1 << 63) - 1, 300, 7),
    (4, 10000, 40, 777, 1 << 15), (6, 3, 1 << 33, 130, 13),
])
def test_pack_chunks_matches_the_reference_and_unpacks(n, id_top, count_top, m, chunk):
    rng = np.random.default_rng(n * 1000 + m)
    rows = rng.integers(0, id_top, size=(m, n), endpoint=True).astype(np.int32)
    counts = rng.integers(0, count_top, size=m, endpoint=True, dtype=np.int64)
    words = np.empty(piece_words(m, n, chunk), np.uint64)
    used = pack_chunks(rows, counts, 0, m, chunk, words)
    want = naive.pack_chunks([tuple(int(x) for x in r) for r in rows], [int(c) for c in counts], chunk)
    assert [int(w) for w in words[:used]] == want
    # every chunk back, in pieces that start inside it
    got_rows, got_counts = np.zeros((m, n), np.int32), np.zeros(m, np.int64)
    at, done = 0, 0
    while at < used:
        h = int(words[at])
        k, ib, cb = h & 0xFFFFFFFF, (h >> 32) & 0xFF, (h >> 40) & 0xFF
        body = words[at + 2:at + 2 + int(words[at + 1])]
        first = 0
        while first < k:
            take = min(k - first, 1 + first % 5)
            unpack_rows(body, first, take, ib, cb, got_rows, got_counts, done + first)
            first += take
        done += k
        at += 2 + int(words[at + 1])
    assert done == m and np.array_equal(got_rows, rows) and np.array_equal(got_counts, counts)


def test_uint32_counts_pack_as_int64_counts_do():
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 500, size=(1000, 3)).astype(np.int32)
    counts = rng.integers(0, 1 << 32, size=1000, dtype=np.int64)
    a, b = (np.empty(piece_words(1000, 3, 100), np.uint64) for _ in range(2))
    ua = pack_chunks(rows, counts, 0, 1000, 100, a)
    ub = pack_chunks(rows, counts.astype(np.uint32), 0, 1000, 100, b)
    assert ua == ub and np.array_equal(a[:ua], b[:ub])
