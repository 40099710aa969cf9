"""Random streams and draws from weights (numba, no I/O): what every sampler shares.

Random numbers: every sentence has its own splitmix64 stream, seeded from (seed, sentence index),
so the output does not depend on how sentences are split into calls or threads.

Weights for drawing (temperature T): q(w) = (p(w|h) / M)^(1/T) with M the largest p of the step;
``<s>`` always and ``<unk>`` unless allowed get weight 0 (drawing then conditions on w != ``<unk>``).
Top-k keeps the k largest weights, top-p the smallest most-likely-first set whose weight reaches the
fraction p (after top-k), greedy takes the most likely word (ties: the smaller id). ``DrawOptions``
holds these choices; ``choose_logits`` applies them to dense logits (the FFNN sampler), and
kernels/backoff_draw.py to the lazy distribution of a back-off n-gram model.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from lmtools.kernels.query import mix  # the splitmix64 finalizer, shared with the query hash
from lmtools.vocab import BOS_ID, UNK_ID

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM = np.uint64(0xD1B54A32D192ED03)


class DrawOptions(NamedTuple):
    """How each word is chosen (built by ``SamplingOptions.draw_options`` in lmtools/ngram/sample.py;
    the field types are fixed there so that numba compiles one version)."""

    inv_t: float  # 1 / temperature
    top_k: int  # 0: no limit
    top_p: float  # 1: no limit
    greedy: bool
    allow_unk: bool


# ----------------------------------------------------------------------------------------------
# Random numbers


@njit(cache=True)
def init_states(seed, first, n):
    """RNG states of sentences first .. first+n-1 for a seed (uint64 each)."""
    out = np.empty(n, np.uint64)
    s = mix(np.uint64(seed) + _GOLDEN)
    f = np.uint64(first)
    for i in range(n):
        out[i] = mix(s ^ ((f + np.uint64(i)) * _STREAM + _GOLDEN))
    return out


@njit(cache=True, inline="always")
def uniform(states, i):
    """Next uniform double in [0, 1) from stream i (splitmix64)."""
    s = states[i] + _GOLDEN
    states[i] = s
    return np.float64(mix(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def first_above(cum, off, a, b, x):
    """Smallest i in [a, b] with cum[off + i] > x (b when none): a draw from cumulative sums."""
    while a < b:
        mid = (a + b) >> 1
        if cum[off + mid] > x:
            b = mid
        else:
            a = mid + 1
    return a


# ----------------------------------------------------------------------------------------------
# Dense weights


@njit(cache=True)
def choose_logits(Z, rows, opts, states, out_w, out_lp):
    """One draw per row of Z (float (B, V) logits: log p up to a constant per row) with the
    ``DrawOptions`` opts; row i uses stream rows[i]. Writes the word (-1: none has weight) and its
    untempered log10 p."""
    inv_t = opts.inv_t
    allow_unk = opts.allow_unk
    B, V = Z.shape
    q = np.empty(V, np.float64)
    ln10 = np.log(10.0)
    for i in range(B):
        # Z[i, w], not a row taken as z = Z[i]: numba counts references to the view it makes
        # (atomic operations) on every row
        zmax = -np.inf
        amax = -np.inf
        best = -1
        for w in range(V):
            x = np.float64(Z[i, w])
            if x > zmax:
                zmax = x
            if w == BOS_ID or (w == UNK_ID and not allow_unk):
                continue
            if x > amax:
                amax = x
                best = w
        if best < 0 or amax == -np.inf:
            out_w[i] = -1
            out_lp[i] = -np.inf
            continue
        if inv_t == 1.0 and zmax - amax < 30.0:  # one pass: the weights give the normalizer too
            tot = 0.0
            for w in range(V):
                q[w] = np.exp(np.float64(Z[i, w]) - amax)
                tot += q[w]
            lse = amax + np.log(tot)
            total = tot - q[BOS_ID]
            q[BOS_ID] = 0.0
            if not allow_unk:
                total -= q[UNK_ID]
                q[UNK_ID] = 0.0
        else:
            lse = 0.0
            for w in range(V):
                lse += np.exp(np.float64(Z[i, w]) - zmax)
            lse = zmax + np.log(lse)
            total = 0.0
            for w in range(V):
                if w == BOS_ID or (w == UNK_ID and not allow_unk):
                    q[w] = 0.0
                else:
                    q[w] = np.exp((np.float64(Z[i, w]) - amax) * inv_t)
                total += q[w]
        w = best if opts.greedy else draw_weights(q, total, opts.top_k, opts.top_p, states, rows[i])
        out_w[i] = w
        out_lp[i] = (np.float64(Z[i, w]) - lse) / ln10 if w >= 0 else -np.inf


@njit(cache=True)
def draw_weights(q, total, top_k, top_p, states, s):
    """Draw an index of the nonnegative weights q (sum ``total``) with top-k / top-p truncation."""
    V = q.shape[0]
    if top_k > 0 or top_p < 1.0:
        key = np.empty(V, np.float64)
        for w in range(V):
            key[w] = -q[w]
        if 0 < top_k < V // 8:  # only the k largest can be drawn: sort those alone
            thr = -np.partition(key, top_k - 1)[top_k - 1]
            cand = np.flatnonzero(q >= thr)
            idx = cand[np.argsort(key[cand], kind="mergesort")]
        else:
            idx = np.argsort(key, kind="mergesort")  # stable: ties by word id
        n = idx.shape[0]
        limit = top_k if 0 < top_k < n else n
        target = top_p * total if top_k <= 0 else np.inf
        nc = 0
        acc = 0.0
        while nc < limit and acc < target and q[idx[nc]] > 0.0:
            acc += q[idx[nc]]
            nc += 1
        if nc == 0:
            return -1
        if top_k > 0 and top_p < 1.0:
            goal = top_p * acc
            acc2 = 0.0
            for i in range(nc):
                acc2 += q[idx[i]]
                if acc2 >= goal:
                    nc = i + 1
                    acc = acc2
                    break
        u = uniform(states, s) * acc
        for i in range(nc):
            u -= q[idx[i]]
            if u < 0.0:
                return idx[i]
        return idx[nc - 1]
    if total <= 0.0:
        return -1
    u = uniform(states, s) * total
    last = -1
    for w in range(V):
        if q[w] > 0.0:
            last = w
            u -= q[w]
            if u < 0.0:
                return w
    return last
