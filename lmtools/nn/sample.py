"""Sampling from the feedforward neural model (the ``Sampler`` interface of lmtools.kinds)."""

from __future__ import annotations

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.sample import Samples, SamplerBase, SamplingOptions
from lmtools.vocab import BOS_ID, EOS_ID, SPECIALS


class FFNNSampler(SamplerBase):
    """An FFNN model prepared for sampling: the whole batch of sentences advances one word a step.

    The full softmax layer is computed as three matrix products through BLAS (numpy), and the
    draw works on the logits directly (one exp per word); the class layer uses the model's own
    next-word kernel (exact, normalized)."""

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
        self._Wt = None

    def logits(self, X: np.ndarray) -> np.ndarray:
        """(B, V) logits of the next word after the contexts X (int32 (B, context)): log p up to a
        constant per row (natural log)."""
        m = self.model
        X = np.ascontiguousarray(X, dtype=np.int32).reshape(-1, self.context)
        if m.word_class is not None:
            return self.log10_next(X) * np.log(10.0)
        if self._Wt is None:
            self._Wt = np.ascontiguousarray(m.W.T)
        e = m.E[X].reshape(X.shape[0], -1)
        a = e @ self._Wt + m.b
        if m.activation == "tanh":
            h = np.tanh(a)
        elif m.activation == "sigmoid":
            h = 1.0 / (1.0 + np.exp(-a))
        else:
            h = np.maximum(a, 0)
        return h.astype(m.U.dtype, copy=False) @ m.U.T + m.c

    def log10_next(self, X: np.ndarray) -> np.ndarray:
        """log10 p(. | X[i]) for contexts X (int32 (B, context)), word-id order (the model's kernel)."""
        from lmtools.kernels.ffnn import ACTIVATIONS, next_word_logprobs
        from lmtools.nn.model import bos_row

        if self._view is None:
            self._view = self.model.kernel_view()
        P, cls, start, perm = self._view
        X = np.ascontiguousarray(X, dtype=np.int32).reshape(-1, self.context)
        ln = np.empty((X.shape[0], len(self.vocab)), np.float64)
        next_word_logprobs(P, X, ACTIVATIONS[self.model.activation], 0, cls, start, ln, bos_row(perm))
        if self.model.word_class is not None:
            out = np.empty_like(ln)
            out[:, perm] = ln
            ln = out
        return ln / np.log(10.0)

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
        lp = self.log10_next(X)
        return float(lp[np.arange(len(prefix)), np.asarray(prefix)].sum())

    def sample_batch(self, n: int, seed: int, first: int, prefix: np.ndarray, opts: SamplingOptions,
                     threads: int = 0) -> Samples:
        from lmtools.kernels.sample import choose_logits, init_states

        inv_t = 1.0 / opts.temperature
        m = self.context
        start = self._start(prefix)
        ns = start.shape[0]
        states = init_states(np.uint64(seed & 0xFFFFFFFFFFFFFFFF), np.uint64(first), n)
        hist = np.zeros((n, ns + opts.max_len), np.int32)
        hist[:, :ns] = start
        lens = np.zeros(n, np.int64)
        ended = np.zeros(n, np.bool_)
        logp = np.zeros(n, np.float64)
        failed = 0
        for b0 in range(0, n, self.BATCH):
            alive = np.arange(b0, min(n, b0 + self.BATCH))
            for t in range(ns, ns + opts.max_len):
                if not alive.size:
                    break
                Z = self.logits(hist[alive, t - m:t])
                words = np.empty(alive.size, np.int64)
                lp = np.empty(alive.size, np.float64)
                choose_logits(Z, alive.astype(np.int64), inv_t, opts.top_k, opts.top_p, opts.greedy,
                              opts.allow_unk, states, words, lp)
                ok = words >= 0
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
        logp += self.prefix_log10(prefix)
        return Samples(tok, lens, ended, logp, failed)
