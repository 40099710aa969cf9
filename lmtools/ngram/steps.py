"""One word at a time with a back-off n-gram model: the model's query tables (kernels/query.py's
layout: the stored ones of a model file, mapped, or those built at load) walked from plain Python.

What for: lmtools.api's decoder interface (kenlm's State / BaseScore, via lmtools.incremental) and
the scorers' path for a few lines (ngram.query.QueryModel.score_ids without numba when the tables are
stored): a call into numba costs more than the walk (its argument checks alone, ~2 us per array), and
loading numba costs ~0.5 s. The numbers are the kernel's (``_score_range``) bit for bit: the same
hashes and probes, the same float32 values added in the same order into a float64.

A state is two tuples: ``words``, the context ids kept (newest first), and ``backoffs``, per length
k the log10 backoff of the context's k newest words as an n-gram of the model (those found ending at
the previous word). The context kept is as short as the model allows: for a prefix-closed model
(every model lmtools or KenLM makes) the longest n-gram found ending at the last word, at most N-1
words (a longer match would need its prefix in the model); otherwise the last N-1 words. Table
entries are read through memoryviews (a machine word per read, no numpy scalar made).
"""

from __future__ import annotations

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.ngram.model import probe_words
from lmtools.vocab import BOS_ID, UNK_ID

_MASK = (1 << 64) - 1
# kernels/query.py's hash constants (mix, extend): the tables were built with them
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_K1 = 0x9E3779B97F4A7C15


def word_ids(vocab: list[str], remap=None) -> dict[str, int]:
    """word -> id it is scored as, for the words the model scores as themselves: a word of the
    vocabulary without a unigram (``remap`` to <unk>) is an OOV, as in lm-score."""
    index = {w: i for i, w in enumerate(vocab)}
    if remap is not None:
        for i in np.flatnonzero(np.asarray(remap) != np.arange(len(vocab))).tolist():
            if i != UNK_ID:
                index.pop(vocab[i], None)
    return index


class NGramSteps:
    """Word-at-a-time scoring with a back-off n-gram model's query tables (see the module docstring).
    ``qm``: the model's scorer (ngram.query.QueryModel: its tables, unigram arrays, vocabulary)."""

    def __init__(self, qm):
        tab, _, _, base, slots, seed, closed = qm.tables()
        self.order = int(qm.order)
        self.closed = bool(closed)
        raw = memoryview(np.ascontiguousarray(tab)).cast("B")
        self._keys = raw.cast("Q")  # entry e of an order < N: key at [2e]
        self._words = raw.cast("I")  # order N's entry e: the key's halves at [4 base[N] + 3e] and [.. + 1]
        self._vals = raw.cast("f")  # entry e: log10 p at [4e+2], backoff at [4e+3]; order N's: log10 p after its key
        # per order n: its table's first entry and its number of entries
        self._starts = [int(x) for x in base.tolist()]
        self._sizes = [int(x) for x in slots.tolist()]
        self._seed = int(seed)
        self._uni_lp = memoryview(np.ascontiguousarray(qm.uni_lp, np.float32)).cast("B").cast("f")
        self._uni_bo = memoryview(np.ascontiguousarray(qm.uni_bo, np.float32)).cast("B").cast("f")
        self._h1: dict[int, int] = {}  # word id -> its hash (the first of every walk)
        self._qm = qm
        self._index: dict[str, int] | None = None
        self.vocab_size = len(qm.vocab)

    @property
    def index(self) -> dict[str, int]:
        """word -> the id it is scored as (made on first use: scoring ids needs none)."""
        if self._index is None:
            self._index = word_ids(list(self._qm.vocab), self._qm.vocabulary.remap)
        return self._index

    def begin(self) -> tuple[tuple, tuple]:
        return (BOS_ID,), (self._uni_bo[BOS_ID],)

    def null(self) -> tuple[tuple, tuple]:
        return (), ()

    def step_word(self, words: tuple, backoffs: tuple, word: str):
        """(log10 p(word | state), matched n-gram length, oov, next words, next backoffs). A word the
        model does not score as itself is <unk> (an OOV); a literal <s> is dropped (state kept)."""
        w = self.index.get(word)
        if w is None:
            total, _, m, a, b = self.walk(words, backoffs, UNK_ID)
            return total, m, True, a, b
        if w == BOS_ID:
            return 0.0, 0, False, words, backoffs
        total, _, m, a, b = self.walk(words, backoffs, w)
        return total, m, False, a, b

    def walk(self, words: tuple, backoffs: tuple, w: int):
        """(log10 p(w | state), log10 p of the matched n-gram itself, its length, next words, next
        backoffs) of the word id w (not <s>)."""
        N = self.order
        lp = self._uni_lp[w]
        m = 1
        found = [self._uni_bo[w]]  # backoffs of the n-grams found ending at w, by length
        prev = len(backoffs)
        top = len(words) + 1
        if top > N:
            top = N
        if self.closed and top > prev + 1:  # the kernel's stop: a longer n-gram cannot be in the model
            top = prev + 1
        if top >= 2:
            keys, vals, starts, sizes = self._keys, self._vals, self._starts, self._sizes
            h = self._h1.get(w)
            if h is None:  # kernels/query.hash_word
                x = (w + self._seed) & _MASK
                x ^= x >> 30
                x = (x * _M1) & _MASK
                x ^= x >> 27
                x = (x * _M2) & _MASK
                h = x ^ (x >> 31)
                self._h1[w] = h
            for n in range(2, top + 1):
                x = (h * _K1 + words[n - 2] + 1) & _MASK  # kernels/query.extend: one word older
                x ^= x >> 30
                x = (x * _M1) & _MASK
                x ^= x >> 27
                x = (x * _M2) & _MASK
                h = x ^ (x >> 31)
                key = h | 1
                start = starts[n]
                size = sizes[n]
                if n < N:  # the home entry first, read as one word: most probes end there
                    i = ((key >> 32) * size) >> 32  # kernels/query.home
                    j = 4 * (start + i) + 2
                    if keys[2 * (start + i)] != key:
                        j = probe_words(self._words, start, size, key, False)
                        if j < 0:
                            break
                    found.append(vals[j + 1])
                else:  # the highest order's 12-byte entries, without backoff
                    j = probe_words(self._words, start, size, key, True)
                    if j < 0:
                        break
                    found.append(0.0)
                v = vals[j]
                if v == v:  # not a placeholder (NaN: a missing suffix the walk passes through)
                    lp = v
                    m = n
        total = lp
        for k in range(m, (prev if prev < N else N - 1) + 1):
            total += backoffs[k - 1]
        if len(found) >= N:
            del found[N - 1:]
        return total, lp, m, ((w,) + words)[:len(found) if self.closed else N - 1], tuple(found)

    def score_ids(self, ids: np.ndarray):
        """(log10 p float64, matched order int32, p = 0 bool) per position of a token stream
        ``<s> w.. </s> <s> ..`` (a sentence may start with NO_CONTEXT, -1, instead of <s>): what
        kernels/query.score_ids gives, from Python (for a few lines)."""
        T = int(ids.size)
        out_lp, out_ord, out_zero = [0.0] * T, [0] * T, [False] * T
        state = self.null()
        walk = self.walk
        for t, w in enumerate(ids.tolist()):
            if w == BOS_ID:
                state = self.begin()
            elif w < 0:
                state = self.null()
            else:
                total, lp, m, a, b = walk(state[0], state[1], w)
                state = (a, b)
                out_lp[t], out_ord[t] = total, m
                # as the kernel: p = 0 when the final log10 p or the matched entry's is at or below -99
                out_zero[t] = total <= LOG_ZERO or lp <= LOG_ZERO
        return np.array(out_lp, np.float64), np.array(out_ord, np.int32), np.array(out_zero, np.bool_)

    def after_words(self, words: list[str], bos: bool) -> tuple[tuple, tuple]:
        """The state after ``words`` (from <s> when ``bos``, else from no context). Only the last N-1
        words can matter: the backoffs kept are those of n-grams ending at the last word."""
        if len(words) > self.order - 1:
            words, bos = words[len(words) - (self.order - 1):], False
        state = self.begin() if bos else self.null()
        for w in words:
            state = self.step_word(*state, w)[3:]
        return state
