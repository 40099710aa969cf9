"""Sampling many sentences of a back-off n-gram model at once (numba, no I/O): the driver.

Each step draws the next word after the sentence so far: the nested way when it applies, otherwise
(or after too many rejections) the explicit way (kernels/backoff_draw.py). Sentence i draws from
its own random stream (kernels/draw.py), so the output does not depend on how the sentences are
split into calls, blocks or threads.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from lmtools.kernels.backoff_distribution import StepBuffers, Tempered, context_step_t
from lmtools.kernels.backoff_draw import Candidates, Suffixes, choose_lazy, nested_draw
from lmtools.vocab import EOS_ID

MAX_NESTED_DRAWS = 256  # candidate draws of the nested way before a step falls back to the explicit way


class SentenceArrays(NamedTuple):
    """Where ``sample_ngram`` writes sentence i (the caller allocates them)."""

    tokens: np.ndarray  # int32 (n, max_len): the words drawn, without the start and </s>
    lengths: np.ndarray  # int64 (n,)
    ended: np.ndarray  # bool (n,): ended with </s>
    log10: np.ndarray  # float64 (n,): the model's log10 p of the words (and </s>), untempered


@njit(cache=True, parallel=True)
def sample_ngram(F, Ft, U, opts, order, start, states, nested, max_len, n_blocks, out):
    """Sample len(states) sentences after the context ``start`` (``<s>`` and any prefix ids).

    ``F``: the ``FlatModel``; ``Ft``: its ``Tempered`` factors (F's own at T = 1; empty arrays: use
    pow); ``U``: the ``UnigramWeights`` and ``opts`` the ``DrawOptions`` for ``choose_lazy``;
    ``nested``: plain sampling of a normalized model by the nested way. Sentence i uses RNG stream
    states[i]; it ends with ``</s>`` or is cut after ``max_len`` words, and goes to ``out`` (a
    ``SentenceArrays``); the sentences are drawn in ``n_blocks`` parallel blocks. Returns the number
    of sentences that met a context where no allowed word has weight (they end there, not ended).
    """
    uni = F.uni
    out_tok = out.tokens
    out_len = out.lengths
    out_ended = out.ended
    out_logp = out.log10
    allow_unk = opts.allow_unk
    n = states.shape[0]
    V = uni.shape[0]
    ns = start.shape[0]
    ctx = order - 1
    use_t = Ft.pr.shape[0] == F.pr.shape[0] and opts.inv_t != 1.0
    # untempered steps: context_step_t with F's own factors into val twice (context_step's way), the
    # tuples made here once: context_step made them per step, counting references to their arrays
    # (atomic operations) on every call
    Fu = Tempered(F.pr, F.bof, F.uni_bo)
    failed = np.zeros(n_blocks, np.int64)
    for blk in prange(n_blocks):
        lo = blk * n // n_blocks
        hi = (blk + 1) * n // n_blocks
        stamp = np.zeros(V, np.int64)
        val = np.empty(V, np.float64)
        vt = np.empty(V, np.float64)
        E = np.empty(V, np.int32)
        S = StepBuffers(stamp, val, vt, E)
        Su = StepBuffers(stamp, val, val, E)
        C = Candidates(np.empty(V, np.float64), np.empty(V, np.int32), np.empty(V, np.float64))
        X = Suffixes(np.empty(order, np.int64), np.empty(order, np.int64), np.empty(order, np.float64),
                     np.empty(order, np.float64))
        hist = np.empty(ns + max_len, np.int32)
        hist[:ns] = start
        gen = 0
        for s in range(lo, hi):
            t = ns
            total = 0.0
            ended = False
            while t - ns < max_len:
                k = min(t, ctx)
                w = -1
                p = 0.0
                if nested:
                    w, p = nested_draw(F, order, hist, t - k, k, allow_unk, states, s, MAX_NESTED_DRAWS, X)
                if w < 0:
                    gen += 1
                    if use_t:
                        nE, B, Bt = context_step_t(F, Ft, order, hist, t - k, k, S, gen)
                    else:
                        nE, B, _ = context_step_t(F, Fu, order, hist, t - k, k, Su, gen)
                        Bt = -1.0
                    w = choose_lazy(S, nE, B, Bt, gen, uni, U, opts, states, s, C)
                    if w < 0:
                        failed[blk] += 1
                        break
                    p = val[w] if stamp[w] == gen else B * uni[w]
                total += np.log10(p) if p > 0.0 else -np.inf
                if w == EOS_ID:
                    ended = True
                    break
                hist[t] = w
                t += 1
            out_len[s] = t - ns
            out_ended[s] = ended
            out_logp[s] = total
            for j in range(t - ns):
                out_tok[s, j] = hist[ns + j]
    return failed.sum()
