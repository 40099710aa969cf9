"""Plain-Python readers of the compact trie form (tests only): lmtools-model(5), "The compact trie
form", read with Python integers from the file's arrays (no numpy arithmetic, no lmtools code but the
layout's order of fields written out again here), and the equal-population binning written out.

``trie_tables`` walks the trie from the unigrams down (each row's children by its offsets) and
gives {word tuple: (log10 p, backoff)}, the table tests/naive_query.score_words scores with.
"""

from __future__ import annotations


def _bits(n: int) -> int:
    return max(1, n.bit_length())


def _words(count: int, bits: int) -> int:
    return -(-count * bits // 64)


class _Reader:
    def __init__(self, packed):
        self.w = [int(x) for x in packed.tolist()]

    def get(self, at: int, bits: int, i: int) -> int:
        pos = i * bits
        j = at + pos // 64
        pair = self.w[j] | (self.w[j + 1] << 64 if j + 1 < len(self.w) else 0)  # a Python int of 128 bits
        return (pair >> (pos % 64)) & ((1 << bits) - 1)


def _float32_of(code: int) -> float:
    import struct

    return struct.unpack("<f", struct.pack("<I", code))[0]


def trie_tables(model):
    """{word tuple: (log10 p, backoff)} and the order, from a TrieModel's arrays."""
    vocab, sizes, q, b = model.vocab, model.sizes(), model.q, model.b
    V, N = len(vocab), len(sizes)
    r = _Reader(model.packed)
    centers = [float(x) for x in model.centers.tolist()]
    at, cat = 0, 0
    where = {}
    for n in range(1, N + 1):
        m = V if n == 1 else sizes[n - 1]
        if n >= 2:
            where[n, "w"] = (at, _bits(max(V - 1, 0)))
            at += _words(m, _bits(max(V - 1, 0)))
            where[n, "p"] = (at, q, cat)
            at += _words(m, q)
            cat += 0 if q == 32 else 1 << q
            if n < N:
                where[n, "b"] = (at, b, None)
                at += _words(m, b)
        if n < N:
            if n >= 2:
                where[n, "b"] = where[n, "b"][:2] + (cat,)
                cat += 0 if b == 32 else 1 << b
            where[n, "o"] = (at, _bits(sizes[n]))
            at += _words(m + 1, _bits(sizes[n]))
    assert at == model.packed.size and cat == model.centers.size

    def value(n, kind, row):
        a, bits, c0 = where[n, kind]
        code = r.get(a, bits, row)
        return _float32_of(code) if bits == 32 else centers[c0 + code]

    table = {}
    uni_lp, uni_bo = model.uni_lp.tolist(), model.uni_bo.tolist()
    frontier = []  # (row, word tuple) of the previous order
    for w in range(V):
        if uni_lp[w] == uni_lp[w]:  # not nan: a unigram
            table[(vocab[w],)] = (uni_lp[w], uni_bo[w])
            frontier.append((w, (vocab[w],)))
    for n in range(2, N + 1):
        nxt = []
        oa, obits = where[n - 1, "o"]
        wa, wbits = where[n, "w"]
        for row, words in frontier:
            lo, hi = r.get(oa, obits, row), r.get(oa, obits, row + 1)
            for c in range(lo, hi):
                g = words + (vocab[r.get(wa, wbits, c)],)
                table[g] = (value(n, "p", c), value(n, "b", c) if n < N else 0.0)
                nxt.append((c, g))
        frontier = nxt
    return table, N


def bin_widths(values, bins: int) -> list[float]:
    """Per value (in the given order), the width (max - min) of its equal-population bin: the sorted
    values cut at len * (i + 1) // bins."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    width = [0.0] * len(values)
    start = 0
    for i in range(bins):
        end = len(values) * (i + 1) // bins
        if end > start:
            lo, hi = values[order[start]], values[order[end - 1]]
            for j in order[start:end]:
                width[j] = hi - lo
        start = end
    return width
