"""Scoring with the compact trie form (lmtools/ngram/trie.py): ``TrieScorer`` (the interface of
lmtools.ngram.query.QueryModel, over kernels/trie.py), ``TrieSteps`` (one word at a time from Python:
lmtools.api's BaseScore and a few lines without numba), and ``TrieSampler``, which refuses."""

from __future__ import annotations

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.trie import BACKOFF, OFFSETS, PROB, WORDS, TrieModel


# -- scoring ------------------------------------------------------------------------------------

class TrieScorer:
    """A TrieModel ready for scoring: the interface of lmtools.ngram.query.QueryModel (score_text,
    line_scores, score_ids, warm), scored by kernels/trie.py over the mapped arrays as they are."""

    kind = "ngram"

    def __init__(self, model: TrieModel, name: str = "model"):
        from lmtools.ngram.query import Vocabulary
        from lmtools.vocab import UNK_ID

        self.model, self.name = model, name
        self.order = model.order
        self.scores_only = bool(model.scores_only)
        self.uni_lp, self.uni_bo = model.uni_lp, model.uni_bo
        missing = np.isnan(self.uni_lp)
        remap = None
        if missing.any():
            remap = np.arange(len(model.vocab), dtype=np.int32)
            remap[missing] = UNK_ID
            remap.flags.writeable = False
        self.vocabulary = Vocabulary(list(model.vocab), remap, None)
        self._arrays = None
        self._steps = None
        self._seen_bytes = 0
        self._kernels = False  # loaded (a big input, or warm()): small inputs then take them too

    @property
    def vocab(self) -> list[str]:
        return self.vocabulary.vocab

    def arrays(self):
        """The kernels' ``TrieArrays`` (the model's arrays read-only; checksums first, once)."""
        if self._arrays is None:
            from lmtools.kernels.trie import TrieArrays

            m = self.model
            if m.verify is not None:
                m.verify()
                m.verify = None
            fields, cstart, _, _ = m.layout()
            for a in (fields, cstart):
                a.flags.writeable = False
            views = [a.view() for a in (m.uni_lp, m.uni_bo, m.packed, m.centers)]
            for v in views:  # one compiled kernel for mapped (read-only) and built arrays
                v.flags.writeable = False
            self._arrays = TrieArrays(int(m.order), views[0], views[1], views[2], views[3], fields, cstart,
                                      m.q == 32, m.b == 32, bool(m.closed))
        return self._arrays

    def score_ids(self, ids: np.ndarray, fast: bool = True, threads: int = 1):
        """(log10 p float64, matched order int32, zero-probability bool) per position of ``ids``."""
        from lmtools.ngram.query import PARALLEL_MIN_TOKENS
        from lmtools.ngram.scores import NO_CONTEXT
        from lmtools.vocab import BOS_ID

        ids = np.ascontiguousarray(ids, dtype=np.int32)
        if ids.size:
            if ids.min() < NO_CONTEXT or ids.max() >= len(self.vocab):
                raise ValueError("token id outside the model's vocabulary")
            if ids[0] != BOS_ID and ids[0] != NO_CONTEXT:
                raise ValueError("a token stream must start a sentence (<s> or NO_CONTEXT)")
        if not fast:  # up to a few MB: the trie searched with numpy (no numba to load), the same numbers
            return self._score_numpy(ids)
        import numba

        from lmtools.kernels.trie import score_ids

        self._kernels = True
        T = ids.size
        lp, order, zero = np.empty(T, np.float64), np.empty(T, np.int32), np.empty(T, np.bool_)
        cuts = np.array([0, T], np.int64)
        if threads > 1 and T > PARALLEL_MIN_TOKENS:  # segments of about equal size, at sentence starts
            starts = np.flatnonzero((ids == BOS_ID) | (ids == NO_CONTEXT))
            want = (np.arange(1, threads) * T) // threads
            inner = starts[np.minimum(np.searchsorted(starts, want), starts.size - 1)]
            cuts = np.unique(np.concatenate([[0], inner, [T]])).astype(np.int64)
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS, cuts.size - 1)))
        score_ids(ids, cuts, self.arrays(), lp, order, zero)
        return lp, order, zero

    def use_fast(self, nbytes: int) -> bool:
        """As QueryModel.use_fast with stored tables: the kernels for inputs above a few MB (in one
        chunk or in all), or once they are loaded; numpy below (importing numba costs ~0.5 s)."""
        from lmtools.ngram.query import SMALL_STORED_BYTES

        self._seen_bytes += nbytes
        return self._kernels or nbytes > SMALL_STORED_BYTES or self._seen_bytes > SMALL_STORED_BYTES

    def _score_numpy(self, ids: np.ndarray):
        """kernels/trie.score_ids with numpy, an order at a time over all positions: the rows of
        order n ending at t are the children of the rows of order n-1 ending at t-1 (binary searches
        of all positions at once); log10 p + the contexts' backoffs added in the kernel's order."""
        from lmtools.constants import LOG_ZERO
        from lmtools.vocab import BOS_ID

        m_ = self.model
        N, T = m_.order, ids.size
        fields, cstart, _, _ = m_.layout()
        packed, centers = m_.packed, m_.centers
        if m_.verify is not None:
            m_.verify()
            m_.verify = None

        def get(f, n, idx):
            at, bits = int(fields[n, f, 0]), int(fields[n, f, 1])
            pos = idx.astype(np.int64) * bits
            w = at + (pos >> 6)
            sh = (pos & 63).astype(np.uint64)
            v = packed[w] >> sh
            over = (pos & 63) + bits > 64
            if over.any():
                nxt = packed[np.minimum(w + 1, packed.size - 1)]
                v = np.where(over, v | (nxt << (np.uint64(64) - np.where(over, sh, np.uint64(1)))), v)
            return (v & np.uint64((1 << bits) - 1)).astype(np.int64)

        def value(f, n, idx):
            code = get(f, n, idx)
            if (m_.q if f == PROB else m_.b) == 32:
                return code.astype(np.uint32).view(np.float32)
            return centers[cstart[n, 0 if f == PROB else 1] + code]

        word = ids.astype(np.int64)
        rows = np.full((N + 1, T), -1, np.int64)  # rows[n, t]: the order-n n-gram ending at t
        rows[1] = np.where(word >= 0, word, -1)
        prev = np.full((N + 1, T), -1, np.int64)  # the same ending at t - 1 (none at a sentence start)
        lp32 = self.uni_lp[np.maximum(word, 0)].astype(np.float32)
        m = np.ones(T, np.int64)
        start = (word == BOS_ID) | (word < 0)
        for n in range(2, N + 1):
            prev[n - 1, 1:] = rows[n - 1, :-1]
            prev[n - 1, start] = -1
            act = np.flatnonzero((prev[n - 1] >= 0) & ~start)
            if act.size == 0:
                continue
            c = prev[n - 1, act]
            lo = get(OFFSETS, n - 1, c)
            hi = get(OFFSETS, n - 1, c + 1)
            size = int(fields[n, WORDS, 2])
            lo = np.clip(lo, 0, size)  # clamped as the kernel clamps a damaged range
            hi = np.clip(np.maximum(hi, lo), 0, size)
            end = hi.copy()
            target = word[act]
            while True:
                live = lo < hi
                if not live.any():
                    break
                mid = (lo + hi) >> 1
                x = np.full(act.size, -1, np.int64)
                x[live] = get(WORDS, n, mid[live])
                lo = np.where(live & (x < target), mid + 1, lo)
                hi = np.where(live & (x >= target), mid, hi)
            found = lo < size
            hit = np.zeros(act.size, bool)
            hit[found] = get(WORDS, n, lo[found]) == target[found]
            hit &= lo < end  # lo: the first word >= target in the range; a hit where it is the target
            t = act[hit]
            rows[n, t] = lo[hit]
            lp32[t] = value(PROB, n, lo[hit])
            m[t] = n
        prev[N, 1:] = rows[N, :-1]
        total = lp32.astype(np.float64)
        for k in range(1, N):
            c = prev[k]
            sel = (c >= 0) & (m <= k) & ~start
            if not sel.any():
                continue
            if k == 1:
                total[sel] += self.uni_bo[c[sel]].astype(np.float64)
            else:
                total[sel] += value(BACKOFF, k, c[sel]).astype(np.float64)
        lp = lp32.astype(np.float64)
        zero = (total <= LOG_ZERO) | (lp <= LOG_ZERO)
        total[start] = 0.0
        m[start] = 0
        zero[start] = False
        return total, m.astype(np.int32), zero

    def score_text(self, data: bytes, threads: int = 1, fast: bool | None = None):
        from lmtools.ngram.scores import Scored

        if fast is None:
            fast = self.use_fast(len(data))
        enc = self.vocabulary.encode(data, fast)
        lp, order, zero = self.score_ids(enc.ids, fast, threads)
        return Scored(enc.ids, enc.oov, lp, order, zero, enc.n_lines, enc.n_dropped)

    def line_scores(self, data: bytes, threads: int = 1, fast: bool | None = None):
        return self.score_text(data, threads, fast).line_scores()

    def warm(self) -> None:
        self.arrays()
        self.vocabulary.table()
        self._kernels = True

    def steps(self) -> "TrieSteps":
        """The trie walked one word at a time from Python (lmtools.api's BaseScore)."""
        if self._steps is None:
            if self.model.verify is not None:
                self.model.verify()
                self.model.verify = None
            self._steps = TrieSteps(self)
        return self._steps


class TrieSampler:
    """Not a sampler: lm-gen and lmtools.api's sampling are refused for the compact form (its
    quantized values are not a normalized distribution per context, and lmtools.ngram.sample works
    on the full n-gram arrays). Making one raises the refusal; the methods are the Sampler
    protocol's names, never reached."""

    def __init__(self, model: TrieModel, name: str = "model"):
        self.vocab, self.order, self.scores_only, self.name = model.vocab, model.order, model.scores_only, name
        self._refuse()

    def _refuse(self):
        raise LmError(f"{self.name}: holds the compact trie form only (lm-train --trie), which cannot be sampled "
                      "from", "sample from the model written without --trie")

    def encode(self, words):
        self._refuse()

    def distribution(self, history):
        self._refuse()

    def prefix_log10(self, prefix):
        self._refuse()

    def sample_batch(self, n, seed, first, prefix, opts, threads=0):
        self._refuse()

    def sample_all(self, n, seed, prefix, opts, chunk=0, threads=0):
        self._refuse()

    def python_draws(self, n, opts):
        self._refuse()


class TrieSteps:
    """One word at a time over the trie from plain Python (lmtools.api's State / BaseScore, through
    lmtools.incremental): the engine interface of lmtools.ngram.steps.NGramSteps, with the same
    numbers as kernels/trie.py. A state is (``words``: the context ids kept, newest first;
    ``rows``: per length k the row of the context's k newest words in order k, -1 where that is not
    an n-gram of the model; length 1: the word id)."""

    def __init__(self, scorer: "TrieScorer"):
        m = scorer.model
        self.order = m.order
        self._scorer = scorer
        self._packed = memoryview(np.ascontiguousarray(m.packed)).cast("B").cast("Q")
        self._centers = m.centers.tolist()
        self._uni_lp = m.uni_lp.tolist()
        self._uni_bo = m.uni_bo.tolist()
        fields, cstart, _, _ = m.layout()
        self._fields, self._cstart = fields.tolist(), cstart.tolist()
        self._raw = (m.q == 32, m.b == 32)
        self._index = None
        self.vocab_size = len(m.vocab)

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            from lmtools.ngram.steps import word_ids

            self._index = word_ids(list(self._scorer.vocab), self._scorer.vocabulary.remap)
        return self._index

    def _get(self, at: int, bits: int, i: int) -> int:
        pos = i * bits
        j, s = at + (pos >> 6), pos & 63
        v = self._packed[j] >> s
        if s + bits > 64:
            v |= self._packed[j + 1] << (64 - s)
        return v & ((1 << bits) - 1)

    def _value(self, n: int, f: int, row: int) -> float:
        at, bits, _ = self._fields[n][f]
        code = self._get(at, bits, row)
        if self._raw[0 if f == PROB else 1]:
            return float(np.uint32(code).view(np.float32))
        return self._centers[self._cstart[n][0 if f == PROB else 1] + code]

    def _child(self, n: int, row: int, w: int) -> int:
        oat, obits, _ = self._fields[n - 1][OFFSETS]
        wat, wbits, m = self._fields[n][WORDS]
        lo = min(max(self._get(oat, obits, row), 0), m)
        hi = min(max(self._get(oat, obits, row + 1), lo), m)
        while lo < hi:
            mid = (lo + hi) >> 1
            x = self._get(wat, wbits, mid)
            if x < w:
                lo = mid + 1
            elif x > w:
                hi = mid
            else:
                return mid
        return -1

    def begin(self) -> tuple[tuple, tuple]:
        from lmtools.vocab import BOS_ID

        return (BOS_ID,), (BOS_ID,)

    def null(self) -> tuple[tuple, tuple]:
        return (), ()

    def step_word(self, words: tuple, rows: tuple, word: str):
        from lmtools.vocab import BOS_ID, UNK_ID

        w = self.index.get(word)
        if w is None:
            total, _, m, a, b = self.walk(words, rows, UNK_ID)
            return total, m, True, a, b
        if w == BOS_ID:
            return 0.0, 0, False, words, rows
        total, _, m, a, b = self.walk(words, rows, w)
        return total, m, False, a, b

    def walk(self, words: tuple, rows: tuple, w: int):
        """(log10 p(w | state), log10 p of the matched n-gram, its length, next words, next rows)."""
        N = self.order
        lp32 = self._uni_lp[w]
        m = 1
        found = [w]
        for n in range(2, min(N, len(rows) + 1) + 1):
            c = rows[n - 2]
            r = self._child(n, c, w) if c >= 0 else -1
            found.append(r)
            if r >= 0:
                lp32 = self._value(n, PROB, r)
                m = n
        total = float(lp32)
        for k in range(m, min(N - 1, len(rows)) + 1):
            c = rows[k - 1]
            if c >= 0:
                total += self._uni_bo[c] if k == 1 else self._value(k, BACKOFF, c)
        del found[N - 1:]
        while len(found) > 1 and found[-1] < 0:
            found.pop()
        return total, float(lp32), m, ((w,) + words)[:len(found)], tuple(found)

    def after_words(self, words: list[str], bos: bool) -> tuple[tuple, tuple]:
        if len(words) > self.order - 1:
            words, bos = words[len(words) - (self.order - 1):], False
        state = self.begin() if bos else self.null()
        for w in words:
            state = self.step_word(*state, w)[3:]
        return state
