"""Scoring one word at a time from a kept state: the engine of lmtools.api's decoder interface
(``Model.BaseScore``, KenLM's shape) and of its ``score(word, context)`` (NLTK's shape).

A state is two tuples: ``words``, the context ids kept (newest first), and ``backoffs``, per length k
the log10 backoff of the context's k newest words as an n-gram of the model (the n-grams found ending
at the previous position). ``step(words, backoffs, id)`` returns (log10 p, matched n-gram length,
the next state's tuples). The numbers are those of the scoring kernel (kernels/query.py
``_score_range``) bit for bit: the same hash tables and probe, the same float32 values added in the
same order to a float64, so that summing steps along a sentence gives lm-score's sentence total.

- ``NGramSteps`` walks the model's query tables (the stored ones of a model file, mapped, or those
  built at load) from plain Python: a decoder makes millions of calls, and a call into numba costs
  more than the walk (its argument checks alone: ~2 us per array). The table entries are read through
  memoryviews (one machine word per read, no numpy scalar made). The context kept is as short as the
  model allows: for a prefix-closed model (every model lmtools or KenLM makes) the longest n-gram
  found ending at the last word, at most N-1 words; otherwise the last N-1 words.
- ``FFNNSteps``: the neural model's context is its last N-1 words (``<s>``-padded at a sentence
  start); one forward pass gives the next-word distribution, kept for the last few contexts (a
  decoder asks for many words after the same state).
- ``MixtureSteps``: one state per model, mixed as lmtools.mixture.Mixture mixes per token.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from lmtools.errors import LmError
from lmtools.vocab import BOS, BOS_ID, UNK_ID

_MASK = (1 << 64) - 1
# kernels/query.py's hash constants (mix, extend): the tables were built with them
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_K1 = 0x9E3779B97F4A7C15


def _word_ids(vocab: list[str], remap) -> dict[str, int]:
    """word -> id it is scored as, for the words the model scores as themselves: a word of the
    vocabulary without a unigram (``remap`` to <unk>) is an OOV, as in lm-score."""
    index = {w: i for i, w in enumerate(vocab)}
    if remap is not None:
        for i in np.flatnonzero(np.asarray(remap) != np.arange(len(vocab))).tolist():
            if i != UNK_ID:
                index.pop(vocab[i], None)
    return index


class NGramSteps:
    """Word-at-a-time scoring with a back-off n-gram model's query tables (see the module docstring)."""

    def __init__(self, qm):
        tab, _, base, log2s, seed, closed = qm.tables()
        self.order = int(qm.order)
        self.closed = bool(closed)
        raw = memoryview(np.ascontiguousarray(tab)).cast("B")
        self._keys = raw.cast("Q")  # entry e: key at [2e]
        self._vals = raw.cast("f")  # entry e: log10 p at [4e+2], backoff at [4e+3]
        # per order n: its table's first entry, the shift that gives a key's home slot, the slot mask
        self._starts = [int(x) for x in base.tolist()]
        self._shifts = [64 - int(x) for x in log2s.tolist()]
        self._masks = [(1 << int(x)) - 1 for x in log2s.tolist()]
        self._seed = int(seed)
        self._uni_lp = memoryview(np.ascontiguousarray(qm.uni_lp, np.float32)).cast("B").cast("f")
        self._uni_bo = memoryview(np.ascontiguousarray(qm.uni_bo, np.float32)).cast("B").cast("f")
        self._h1: dict[int, int] = {}  # word id -> its hash (the first of every walk)
        self.index = _word_ids(list(qm.vocab), qm.vocabulary.remap)
        self.vocab_size = len(qm.vocab)

    def begin(self) -> tuple[tuple, tuple]:
        return (BOS_ID,), (self._uni_bo[BOS_ID],)

    def null(self) -> tuple[tuple, tuple]:
        return (), ()

    def step_word(self, words: tuple, backoffs: tuple, word: str):
        """(log10 p(word | state), matched n-gram length, oov, next words, next backoffs). A word the
        model does not score as itself is <unk> (an OOV); a literal <s> is dropped (state kept).
        (One function, not a lookup calling a walk: a Python call costs as much as a probe.)"""
        w = self.index.get(word)
        oov = w is None
        if oov:
            w = UNK_ID
        elif w == BOS_ID:
            return 0.0, 0, False, words, backoffs
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
            keys, vals, starts, shifts, masks = self._keys, self._vals, self._starts, self._shifts, self._masks
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
                i = key >> shifts[n]
                k = keys[2 * (start + i)]
                if k != key:
                    mask = masks[n]
                    probes = 0
                    while k and k != key and probes < mask:  # at most one pass (kernels/query._find)
                        i = (i + 1) & mask
                        k = keys[2 * (start + i)]
                        probes += 1
                    if k != key:
                        break
                e = 4 * (start + i)
                found.append(vals[e + 3])
                v = vals[e + 2]
                if v == v:  # not a placeholder (NaN: a missing suffix the walk passes through)
                    lp = v
                    m = n
        total = lp
        for k in range(m, (prev if prev < N else N - 1) + 1):
            total += backoffs[k - 1]
        if len(found) >= N:
            del found[N - 1:]
        return total, m, oov, ((w,) + words)[:len(found) if self.closed else N - 1], tuple(found)

    def after_words(self, words: list[str], bos: bool) -> tuple[tuple, tuple]:
        """The state after ``words`` (from <s> when ``bos``, else from no context). Only the last N-1
        words can matter: the backoffs kept are those of n-grams ending at the last word."""
        if len(words) > self.order - 1:
            words, bos = words[len(words) - (self.order - 1):], False
        state = self.begin() if bos else self.null()
        for w in words:
            state = self.step_word(*state, w)[3:]
        return state


class FFNNSteps:
    """Word-at-a-time scoring with the feedforward neural model: the state is its context."""

    CACHE = 64  # next-word distributions kept (by context)

    def __init__(self, scorer):
        self.model = scorer.model
        self.order = int(scorer.order)
        self.context = int(self.model.context)
        self.index = _word_ids(list(scorer.vocab), None)
        self.vocab_size = len(scorer.vocab)
        self._rows: OrderedDict = OrderedDict()
        self._view = None

    def begin(self) -> tuple[tuple, tuple]:
        return (BOS_ID,) * self.context, ()

    def null(self):
        raise LmError("the neural model always starts from <s>", "start from the sentence start (BeginSentenceWrite)")

    def log10_row(self, words: tuple) -> np.ndarray:
        """log10 p(. | words) for the whole vocabulary (the bits lm-score gives each word)."""
        row = self._rows.get(words)
        if row is None:
            if self._view is None:
                self._view = self.model.kernel_view()
            from lmtools.nn.model import LN10

            X = np.array(words[::-1], np.int32)[None, :]
            row = self.model.next_ln_probs(X, self._view)[0] / LN10
            self._rows[words] = row
            if len(self._rows) > self.CACHE:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(words)
        return row

    def step(self, words: tuple, backoffs: tuple, w: int, oov: bool = False):
        lp = float(self.log10_row(words)[w])
        # the n-gram's length as lm-score reports it: <s> counts as a word, at most N
        m = words.index(BOS_ID) + 2 if BOS_ID in words else self.order
        return lp, m, oov, ((w,) + words)[: self.context], ()

    def step_word(self, words: tuple, backoffs: tuple, word: str):
        i = self.index.get(word)
        if i == BOS_ID:
            return 0.0, 0, False, words, backoffs
        return self.step(words, backoffs, UNK_ID if i is None else i, i is None)

    def after_words(self, words: list[str], bos: bool) -> tuple[tuple, tuple]:
        """The context after ``words``: always from a sentence start (<s>-padded), as the model reads
        text; only the last N-1 words are kept."""
        ids = [self.index.get(w, UNK_ID) for w in words if w != BOS]
        return (tuple(ids[::-1]) + self.begin()[0])[: self.context], ()


class MixtureSteps:
    """A linear mixture: each model keeps its own state (and reads the word in its own vocabulary)."""

    def __init__(self, parts: list, lambdas):
        self.parts = parts
        self.lambdas = [float(x) for x in lambdas]
        self.order = max(p.order for p in parts)

    def begin(self):
        states = [p.begin() for p in self.parts]
        return tuple(s[0] for s in states), tuple(s[1] for s in states)

    def null(self):
        states = [p.null() for p in self.parts]
        return tuple(s[0] for s in states), tuple(s[1] for s in states)

    def step_word(self, words: tuple, backoffs: tuple, word: str):
        """(log10 p, length, oov, next words, next backoffs): log10 sum_i lambda_i p_i, as Mixture.combine."""
        lps, ms, oov, nw, nb = [], [], True, [], []
        if word == BOS:
            return 0.0, 0, False, words, backoffs
        for p, w_i, b_i in zip(self.parts, words, backoffs):
            lp, m, o, a, b = p.step_word(w_i, b_i, word)
            oov = oov and o
            lps.append(lp)
            ms.append(m)
            nw.append(a)
            nb.append(b)
        top = max(lps)
        safe = top if math.isfinite(top) else 0.0
        acc = sum(lam * 10.0 ** (v - safe) for lam, v in zip(self.lambdas, lps))
        lp = math.log10(acc) + safe if acc > 0 else -math.inf
        return lp, max(ms), oov, tuple(nw), tuple(nb)

    def after_words(self, words: list[str], bos: bool):
        states = [p.after_words(words, bos) for p in self.parts]
        return tuple(s[0] for s in states), tuple(s[1] for s in states)


def steps_for(scorer):
    """The word-at-a-time engine of a scorer (lmtools.kinds): n-gram, ffnn or a mixture of them."""
    if getattr(scorer, "kind", None) == "mixture":
        return MixtureSteps([steps_for(s) for s in scorer.scorers], scorer.lambdas)
    if getattr(scorer, "kind", None) == "ffnn":
        return FFNNSteps(scorer)
    return NGramSteps(scorer)

