"""Scoring text with the feedforward neural model (the ``Scorer`` interface of lmtools.kinds).

The text is read into ids as every scorer reads it (``lmtools.ngram.query.Vocabulary``); the
log10 probabilities come from the model's one forward pass on the CPU (``FFNNModel.score_ids``,
kernels/ffnn.py), the same numbers the sampler reports for the words it draws.
"""

from __future__ import annotations

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.errors import LmError
from lmtools.ngram.query import Vocabulary
from lmtools.ngram.scores import NO_CONTEXT, LineScores, Scored
from lmtools.vocab import BOS_ID


class FFNNScorer:
    kind = "ffnn"
    scores_only = False

    def __init__(self, model, name: str = "model"):
        self.model = model
        self.name = name
        self.order = model.order
        self.vocabulary = Vocabulary(list(model.vocab))

    @property
    def vocab(self):
        return self.vocabulary.vocab

    def score_ids(self, ids, fast: bool = True, threads: int = 1):
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        if ids.size and ids[0] == NO_CONTEXT:
            raise LmError("the neural model always starts from <s>", "score with bos=True")
        lp = np.asarray(self.model.score_ids(ids), np.float64)
        is_start = ids == BOS_ID
        st = np.flatnonzero(is_start)
        pos = np.arange(ids.size) - st[np.cumsum(is_start) - 1] if ids.size else np.zeros(0, np.int64)
        order = np.minimum(pos + 1, self.order).astype(np.int32)
        order[is_start] = 0
        return lp, order, (lp <= LOG_ZERO) & ~is_start

    def score_text(self, data: bytes, threads: int = 1, fast: bool | None = None) -> Scored:
        enc = self.vocabulary.encode(data, True)
        lp, order, zero = self.score_ids(enc.ids)
        return Scored(enc.ids, enc.oov, lp, order, zero, enc.n_lines, enc.n_dropped)

    def line_scores(self, data: bytes, threads: int = 1, fast: bool | None = None) -> LineScores:
        return self.score_text(data, threads, fast).line_scores()

    def warm(self) -> None:
        self.vocabulary.table()
