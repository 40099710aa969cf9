"""Sampling from the feedforward neural model (the ``Sampler`` interface of lmtools.kinds)."""

from __future__ import annotations

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.sample import Samples, SamplerBase, SamplingOptions
from lmtools.nn.model import LN10
from lmtools.vocab import BOS_ID, EOS_ID, SPECIALS


class FFNNSampler(SamplerBase):
    """An FFNN model prepared for sampling: the whole batch of sentences advances one word a step.

    Each step takes the next-word distributions of the batch from the model's one forward pass
    (``kernels.ffnn.next_word_logprobs``: the arithmetic of scoring, word for word), draws from
    them, and adds the drawn word's log10 p as lm-score computes it: a sentence's score equals
    lm-score's for the same sentence to the last bit."""

    BATCH = 512

    def __init__(self, model, name: str = "model"):
        V = len(model.vocab)
        if V < 3 or list(model.vocab[:3]) != list(SPECIALS):
            raise LmError(f"{name}: the vocabulary does not start with <unk> <s> </s>", "recreate the model")
        self.model = model
        self.vocab = list(model.vocab)
        self.order = model.order
        self.context = model.context
        self._view = None

    def ln_next(self, X: np.ndarray) -> np.ndarray:
        """ln p(. | X[i]) for contexts X (int32 (B, context)), word-id order, -inf at ``<s>``."""
        if self._view is None:
            self._view = self.model.kernel_view()
        return self.model.next_ln_probs(X, self._view)

    def log10_next(self, X: np.ndarray) -> np.ndarray:
        """log10 p(. | X[i]) for contexts X (int32 (B, context)), word-id order (as FFNNModel.score_ids)."""
        return self.ln_next(X) / LN10

    def _start(self, prefix) -> np.ndarray:
        return np.concatenate([np.full(self.context, BOS_ID), np.asarray(prefix, np.int32)]).astype(np.int32)

    def distribution(self, history: np.ndarray) -> np.ndarray:
        h = self._start(history)
        return 10.0 ** self.log10_next(h[-self.context:][None, :])[0]

    def prefix_log10(self, prefix: np.ndarray) -> float:
        if not len(prefix):
            return 0.0
        h = self._start(prefix)
        m = self.context
        X = np.lib.stride_tricks.sliding_window_view(h[:-1], m)[: len(prefix)]
        lp = self.log10_next(X)[np.arange(len(prefix)), np.asarray(prefix)]
        total = 0.0
        for v in lp.tolist():  # in token order, as lm-score sums a line
            total += v
        return total

    def sample_batch(self, n: int, seed: int, first: int, prefix: np.ndarray, opts: SamplingOptions,
                     threads: int = 0) -> Samples:
        from lmtools.kernels.draw import choose_logits, init_states

        m = self.context
        start = self._start(prefix)
        ns = start.shape[0]
        states = init_states(np.uint64(seed & 0xFFFFFFFFFFFFFFFF), np.uint64(first), n)
        hist = np.zeros((n, ns + opts.max_len), np.int32)
        hist[:, :ns] = start
        lens = np.zeros(n, np.int64)
        ended = np.zeros(n, np.bool_)
        logp = np.full(n, self.prefix_log10(prefix), np.float64)  # the prefix's words come first
        failed = 0
        for b0 in range(0, n, self.BATCH):
            alive = np.arange(b0, min(n, b0 + self.BATCH))
            for t in range(ns, ns + opts.max_len):
                if not alive.size:
                    break
                Z = self.ln_next(hist[alive, t - m:t])
                words = np.empty(alive.size, np.int64)
                lp = np.empty(alive.size, np.float64)
                choose_logits(Z, alive.astype(np.int64), opts.draw_options(), states, words, lp)
                ok = words >= 0
                # the drawn word's log10 p exactly as scoring gives it (choose_logits normalizes anew)
                lp[ok] = Z[np.flatnonzero(ok), words[ok]] / LN10
                failed += int((~ok).sum())
                w = words[ok]
                rows = alive[ok]
                logp[rows] += lp[ok]
                stop = w == EOS_ID
                ended[rows[stop]] = True
                go = rows[~stop]
                hist[go, t] = w[~stop]
                lens[go] += 1
                alive = go
        tok = np.ascontiguousarray(hist[:, ns:])
        return Samples(tok, lens, ended, logp, failed)
