"""A few sentences of a back-off n-gram model drawn in plain Python, word for word as the kernels
draw them: the nested way of kernels/backoff_draw.py (``nested_draw``) in the loop of
kernels/sample_sentences.py, with the random streams of kernels/draw.py.

What for: lm-gen and lmtools.api sampling a handful of sentences. Loading numba and the first call
of a kernel cost ~0.35 s, more than drawing ten sentences here (a step is a few binary searches).
The output is the kernels' bit for bit: the same splitmix64 streams, the same binary searches over
the same ``FlatModel`` arrays, the same float operations in the same order. A step that the nested
way cannot finish (too many rejections) makes the whole call return None, and the caller draws the
batch with the kernels (their explicit way takes over such a step). Also here, for the same
callers: p(. | h) over the whole vocabulary and the log10 p of given words, as the kernels compute
them (``dense_distribution``, ``word_logprobs`` of kernels/backoff_distribution.py).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

import numpy as np

from lmtools.vocab import BOS_ID, EOS_ID, UNK_ID

_MASK = (1 << 64) - 1
# kernels/query.py's mix and kernels/draw.py's stream constants: the streams must be the kernels'
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15
_STREAM = 0xD1B54A32D192ED03
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53
MAX_NESTED_DRAWS = 256  # kernels/sample_sentences.py's limit before a step takes the explicit way


def _mix(x: int) -> int:
    x ^= x >> 30
    x = (x * _M1) & _MASK
    x ^= x >> 27
    x = (x * _M2) & _MASK
    return x ^ (x >> 31)


def init_states(seed: int, first: int, n: int) -> list[int]:
    """The RNG states of sentences first .. first+n-1 (kernels/draw.py's ``init_states``)."""
    s = _mix((seed + _GOLDEN) & _MASK)
    return [_mix(s ^ ((((first + i) & _MASK) * _STREAM + _GOLDEN) & _MASK)) for i in range(n)]


class FlatSteps:
    """A ``FlatModel`` read from Python: memoryviews of its arrays (a Python int or float per read)."""

    def __init__(self, F, order: int):
        self.order = order
        self.ids = memoryview(np.ascontiguousarray(F.ids)).cast("B").cast("i")
        self.id_base = [int(x) for x in F.id_base.tolist()]
        self.row_base = [int(x) for x in F.row_base.tolist()]
        self.n_rows = [int(x) for x in F.n_rows.tolist()]
        self.pr, self.bof, self.cum, self.uni, self.uni_bo, self.ucum = (
            memoryview(np.ascontiguousarray(a, np.float64)).cast("B").cast("d")
            for a in (F.pr, F.bof, F.cum, F.uni, F.uni_bo, F.ucum))
        self.F = F

    # -- the searches of kernels/backoff_distribution.py and backoff_draw.py

    def _bound(self, n: int, q: list[int], qs: int, L: int, upper: bool) -> int:
        """First row of order n whose first L ids are >= q[qs:qs+L] (> with ``upper``)."""
        ids, base = self.ids, self.id_base[n]

        def row(r: int) -> list[int]:
            return ids[base + r * n: base + r * n + L].tolist()

        return (bisect_right if upper else bisect_left)(range(self.n_rows[n]), q[qs:qs + L], key=row)

    def _row(self, q: list[int], qs: int, n: int) -> int:
        """Index in pr/bof of the order-n row q[qs:qs+n] (n >= 2), or -1."""
        m = self.n_rows[n]
        if m == 0:
            return -1
        r = self._bound(n, q, qs, n, False)
        o = self.id_base[n] + r * n
        if r < m and self.ids[o:o + n].tolist() == q[qs:qs + n]:
            return self.row_base[n] + r
        return -1

    def _backoff(self, q: list[int], qs: int, j: int) -> float:
        if j == 1:
            return self.uni_bo[q[qs]]
        r = self._row(q, qs, j)
        return self.bof[r] if r >= 0 else 1.0

    def _in_range(self, n: int, lo: int, hi: int, w: int) -> bool:
        """Is w the last word of one of rows lo..hi-1 of order n (they share their first n-1 words)?"""
        ids, o = self.ids, self.id_base[n] + n - 1
        r = bisect_left(range(lo, hi), w, key=lambda r: ids[o + r * n])
        return r < hi - lo and ids[o + (lo + r) * n] == w

    @staticmethod
    def _first_above(cum, off: int, a: int, b: int, x: float) -> int:
        """Smallest i in [a, b] with cum[off + i] > x (b when none)."""
        while a < b:
            mid = (a + b) >> 1
            if cum[off + mid] > x:
                b = mid
            else:
                a = mid + 1
        return a

    # -- drawing

    def _nested_draw(self, hist: list[int], hs: int, k: int, allow_unk: bool, st: list[int], s: int):
        """kernels/backoff_draw.py's ``nested_draw``: (w, p(w | h)), or (-1, 0.0)."""
        order = self.order
        cum, pr, uni, ucum, ids = self.cum, self.pr, self.uni, self.ucum, self.ids

        def uniform() -> float:
            x = (st[s] + _GOLDEN) & _MASK
            st[s] = x
            return float(_mix(x) >> 11) * _TO_UNIT

        if k > order - 1:
            hs += k - (order - 1)
            k = order - 1
        lo = [0] * order
        hi = [0] * order
        A = [0.0] * order
        bf = [0.0] * order
        for j in range(k, 0, -1):
            qs = hs + k - j
            n = j + 1
            if self.n_rows[n] > 0:
                lo[j] = self._bound(n, hist, qs, j, False)
                hi[j] = self._bound(n, hist, qs, j, True)
                cb = self.row_base[n] + n - 2
                A[j] = min(max(cum[cb + hi[j]] - cum[cb + lo[j]], 0.0), 1.0)
            bf[j] = self._backoff(hist, qs, j)
        V = len(uni)
        total_uni = ucum[V - 1]
        lev = k
        for _ in range(MAX_NESTED_DRAWS):
            L = lev
            while L > 0 and (A[L] <= 0.0 or uniform() >= A[L]):
                L -= 1
            if L == 0:
                w = self._first_above(ucum, 0, 0, V - 1, uniform() * total_uni)
                p = uni[w]
            else:
                n = L + 1
                cb = self.row_base[n] + n - 2
                c0 = cum[cb + lo[L]]
                x = c0 + uniform() * (cum[cb + hi[L]] - c0)
                a = self._first_above(cum, cb + 1, lo[L], hi[L] - 1, x)
                w = ids[self.id_base[n] + a * n + L]
                p = pr[self.row_base[n] + a]
            ok = True
            for i in range(L + 1, k + 1):  # the draw stood for P_{i-1}: it must be outside S_i
                if hi[i] > lo[i] and self._in_range(i + 1, lo[i], hi[i], w):
                    lev = i - 1
                    ok = False
                    break
                p *= bf[i]
            if not ok:
                continue
            if (w == UNK_ID and not allow_unk) or p <= 0.0:
                lev = k
                continue
            return w, p
        return -1, 0.0

    def sample(self, start: np.ndarray, states: list[int], max_len: int, allow_unk: bool):
        """Sentences after ``start`` (<s> and the prefix), one per RNG state, as
        kernels/sample_sentences.py's ``sample_ngram`` draws them the nested way: (tokens, lengths,
        ended, log10) arrays, or None when a step needs the explicit way."""
        n = len(states)
        ns = len(start)
        ctx = self.order - 1
        tok = np.zeros((n, max_len), np.int32)
        lens = np.zeros(n, np.int64)
        ended = np.zeros(n, np.bool_)
        logp = np.zeros(n, np.float64)
        st = list(states)
        for s in range(n):
            hist = [int(x) for x in start]
            total = 0.0
            while len(hist) - ns < max_len:
                t = len(hist)
                k = min(t, ctx)
                w, p = self._nested_draw(hist, t - k, k, allow_unk, st, s)
                if w < 0:
                    return None
                total += math.log10(p) if p > 0.0 else -math.inf
                if w == EOS_ID:
                    ended[s] = True
                    break
                hist.append(w)
            lens[s] = len(hist) - ns
            logp[s] = total
            tok[s, : lens[s]] = hist[ns:]
        return tok, lens, ended, logp

    # -- distributions

    def word_logprobs(self, hist: list[int], start: int) -> np.ndarray:
        """log10 p(hist[t] | hist[:t]) for t = start .. len-1 (kernels' ``word_logprobs``)."""
        out = np.empty(len(hist) - start, np.float64)
        for t in range(start, len(hist)):
            k = min(t, self.order - 1)
            w = hist[t]
            B = 1.0
            p = -1.0
            for j in range(k, 0, -1):  # the longest n-gram context + w; the backoffs of longer contexts
                qs = t - j
                r = self._row(hist, qs, j + 1)
                if r >= 0:
                    p = B * self.pr[r]
                    break
                B *= self._backoff(hist, qs, j)
            if p < 0.0:
                p = B * self.uni[w]
            if w == BOS_ID:
                p = 0.0
            out[t - start] = math.log10(p) if p > 0.0 else -math.inf
        return out

    def dense_distribution(self, hist: list[int]) -> np.ndarray:
        """p(w | hist) for every word w (float64, <s> = 0), the last order-1 words of ``hist`` used
        (the kernels' ``dense_distribution``: longer contexts set their successors first)."""
        F = self.F
        V = len(self.uni)
        k = min(len(hist), self.order - 1)
        hs = len(hist) - k
        seen = np.zeros(V, np.bool_)
        val = np.zeros(V, np.float64)
        B = 1.0
        for j in range(k, 0, -1):
            qs = hs + k - j
            n = j + 1
            if self.n_rows[n] > 0:
                lo = self._bound(n, hist, qs, j, False)
                hi = self._bound(n, hist, qs, j, True)
                base = self.id_base[n]
                words = np.asarray(F.ids[base + lo * n + j: base + hi * n: n], np.int64)
                new = ~seen[words]
                rb = self.row_base[n]
                val[words[new]] = B * F.pr[rb + lo: rb + hi][new]
                seen[words[new]] = True
            B *= self._backoff(hist, qs, j)
        out = np.where(seen, val, B * F.uni)
        out[BOS_ID] = 0.0
        return out
