"""Scoring one word at a time from a kept state: the engine of lmtools.api's decoder interface
(``Model.BaseScore``, kenlm's shape) and of its ``score(word, context)`` (nltk.lm's shape), for every
model kind. Each engine keeps a state as two tuples (``words``, ``backoffs``) and has
``begin()``, ``null()``, ``step_word(words, backoffs, word)`` -> (log10 p, matched n-gram length,
oov, next words, next backoffs) and ``after_words(words, bos)``; the numbers are lm-score's.

- n-gram models: lmtools.ngram.steps.NGramSteps (the query tables walked from plain Python);
- ``FFNNSteps``: the neural model's context is its last N-1 words (``<s>``-padded at a sentence
  start); one forward pass gives the next-word distribution, kept for the last few contexts (a
  decoder asks for many words after the same state);
- ``MixtureSteps``: one state per model, mixed as lmtools.mixture.Mixture mixes per token.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.steps import NGramSteps, word_ids
from lmtools.vocab import BOS, BOS_ID, UNK_ID

class FFNNSteps:
    """Word-at-a-time scoring with the feedforward neural model: the state is its context."""

    CACHE = 64  # next-word distributions kept (by context)

    def __init__(self, scorer):
        self.model = scorer.model
        self.order = int(scorer.order)
        self.context = int(self.model.context)
        self.index = word_ids(list(scorer.vocab))
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
    return scorer.steps() if hasattr(scorer, "steps") else NGramSteps(scorer)

