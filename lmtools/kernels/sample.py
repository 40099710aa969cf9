"""Sampling kernels (numba, no I/O): exact next-word distributions of a back-off n-gram model and
draws from them with temperature, top-k, top-p or greedy choice.

N-gram layout, the tuple ``F`` ("flat model"):
``(ids, id_base, row_base, n_rows, pr, bof, cum, uni, uni_bo, ucum)``. Orders 2..N are stored row
after row in one int32 array ``ids``: the rows of order n (sorted lexicographically, oldest word
first) begin at ``ids[id_base[n]]`` and there are ``n_rows[n]`` of them; row r's probability
10^logprob and backoff factor 10^backoff are ``pr[row_base[n] + r]`` and ``bof[row_base[n] + r]``;
``cum[row_base[n] + n - 2 + r]`` is the sum of ``pr`` over rows 0..r-1 of order n (m_n + 1 values per
order), so the mass of a context's successors and a draw among them cost a binary search. Unigrams
are dense by word id: ``uni[w]`` = p(w) (0 for ``<s>``, which is only a context, and for a word
without a unigram), ``uni_bo[w]`` its backoff factor, ``ucum`` the cumulative sum of ``uni``.

Exact conditional distribution (the ARPA back-off rule, as the query engine scores):
    p(w | h) = p(h_m w) * prod_{suffixes s of h longer than h_m, s in the model} 10^bo(s)
with h_m w the longest n-gram of the model. Written per suffix s_j of h (j words, s_0 empty,
S_j = the words with an n-gram s_j w): P_j(w) = p(s_j w) for w in S_j, else bo(s_j) P_{j-1}(w).

Two ways to draw from it:
- explicit (any temperature, top-k, top-p, greedy; any model): walking the suffixes from the longest
  to the shortest, the successors of each (a contiguous range of rows) not set by a longer suffix get
  their p times the backoffs of the longer suffixes; every word left unset gets ``B * uni[w]`` with B
  the product of all the backoffs. The unigram part is never written out: it is drawn from the
  cumulative unigram weights, rejecting words already set (or scanned when those hold most of the
  unigram mass). A step costs the successors it touches.
- nested (plain sampling from a normalized model, the default): since sum_w P_j(w) = 1, the
  successors of s_j hold mass A_j = cum difference and the rest, 1 - A_j, is P_{j-1} restricted to
  words outside S_j: draw u; below A_j pick a successor by binary search in ``cum``, otherwise draw
  from P_{j-1} until the word is outside S_j (membership: a binary search). A step costs a few binary
  searches whatever the vocabulary size. It falls back to the explicit way after too many rejections.

Weights for drawing (temperature T): q(w) = (p(w|h) / M)^(1/T) with M the largest p of the step;
``<s>`` always and ``<unk>`` unless allowed get weight 0 (drawing then conditions on w != ``<unk>``).
Top-k keeps the k largest weights, top-p the smallest most-likely-first set whose weight reaches the
fraction p (after top-k), greedy takes the most likely word (ties: the smaller id).

Random numbers: every sentence has its own splitmix64 stream, seeded from (seed, sentence index),
so the output does not depend on how sentences are split into calls or threads.
"""

import numpy as np
from numba import njit, prange

from lmtools.kernels.query import mix  # the splitmix64 finalizer, shared with the query hash

UNK = 0
BOS = 1
EOS = 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM = np.uint64(0xD1B54A32D192ED03)


# ----------------------------------------------------------------------------------------------
# Random numbers


@njit(cache=True, inline="always")
def _first_above(cum, off, a, b, x):
    """Smallest i in [a, b] with cum[off + i] > x (b when none): a draw from cumulative sums."""
    while a < b:
        mid = (a + b) >> 1
        if cum[off + mid] > x:
            b = mid
        else:
            a = mid + 1
    return a


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


# ----------------------------------------------------------------------------------------------
# The flat model


@njit(cache=True, inline="always")
def _cmp_row(ids, o, q, qs, L):
    for j in range(L):
        a = ids[o + j]
        b = q[qs + j]
        if a < b:
            return -1
        if a > b:
            return 1
    return 0


@njit(cache=True)
def _bound(ids, base, n, m, q, qs, L, upper):
    """First row of order n (m rows at ids[base:]) whose first L ids are >= q[qs:qs+L]
    (> with ``upper``)."""
    lo = 0
    hi = m
    while lo < hi:
        mid = (lo + hi) >> 1
        c = _cmp_row(ids, base + mid * n, q, qs, L)
        if c < 0 or (upper and c == 0):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def context_step(F, order, hist, hs, k, stamp, gen, val, E):
    """Explicit part of p(. | hist[hs:hs+k]) (the last order-1 of those k context words are used).

    Sets ``val[w]`` (and ``stamp[w] = gen``) for every word with an n-gram of order >= 2 after a
    suffix of the context, lists those words in ``E`` and returns (their number, B): every other
    word w has p(w | h) = B * uni[w].
    """
    nE, B, Bt = context_step_t(F, (F[4], F[5], F[8]), order, hist, hs, k, stamp, gen, val, val, E)
    return nE, B


@njit(cache=True)
def context_step_t(F, Ft, order, hist, hs, k, stamp, gen, val, vt, E):
    """``context_step`` that also fills ``vt`` from the tempered factors Ft = (pr^(1/T), bof^(1/T),
    uni_bo^(1/T)): vt[w] = val[w]^(1/T) for the explicit words; returns (nE, B, B^(1/T))."""
    ids, id_base, row_base, n_rows, pr, bof, cum, uni, uni_bo, ucum = F
    prt, boft, uni_bot = Ft
    nE = 0
    B = 1.0
    Bt = 1.0
    if k > order - 1:
        hs += k - (order - 1)
        k = order - 1
    for j in range(k, 0, -1):
        qs = hs + k - j
        n = j + 1
        m = n_rows[n]
        if m > 0:
            base = id_base[n]
            lo = _bound(ids, base, n, m, hist, qs, j, False)
            hi = _bound(ids, base, n, m, hist, qs, j, True)
            rb = row_base[n]
            for r in range(lo, hi):
                w = ids[base + r * n + j]
                if stamp[w] != gen:
                    stamp[w] = gen
                    val[w] = B * pr[rb + r]
                    vt[w] = Bt * prt[rb + r]
                    E[nE] = w
                    nE += 1
        if j == 1:
            B *= uni_bo[hist[qs]]
            Bt *= uni_bot[hist[qs]]
        else:
            r = _context_row(F, hist, qs, j)
            if r >= 0:
                B *= bof[r]
                Bt *= boft[r]
    return nE, B, Bt


@njit(cache=True, inline="always")
def _context_row(F, hist, qs, j):
    """Index in pr/bof of the order-j row hist[qs:qs+j] (j >= 2), or -1 if it is not in the model."""
    ids, id_base, row_base, n_rows, pr, bof, cum, uni, uni_bo, ucum = F
    m = n_rows[j]
    if m == 0:
        return -1
    base = id_base[j]
    r = _bound(ids, base, j, m, hist, qs, j, False)
    if r < m and _cmp_row(ids, base + r * j, hist, qs, j) == 0:
        return row_base[j] + r
    return -1


@njit(cache=True, inline="always")
def _backoff(F, hist, qs, j):
    """Backoff factor of the context hist[qs:qs+j] (1 if it is not in the model)."""
    if j == 1:
        return F[8][hist[qs]]
    r = _context_row(F, hist, qs, j)
    return F[5][r] if r >= 0 else 1.0


@njit(cache=True)
def dense_distribution(F, order, hist):
    """p(w | hist) for every word w (float64, <s> = 0): the last order-1 words of ``hist`` used."""
    uni = F[7]
    V = uni.shape[0]
    stamp = np.zeros(V, np.int64)
    val = np.zeros(V, np.float64)
    E = np.empty(V, np.int32)
    k = min(hist.shape[0], order - 1)
    nE, B = context_step(F, order, hist, hist.shape[0] - k, k, stamp, 1, val, E)
    out = np.empty(V, np.float64)
    for w in range(V):
        out[w] = val[w] if stamp[w] == 1 else B * uni[w]
    out[BOS] = 0.0
    return out


@njit(cache=True)
def word_logprobs(F, order, hist, start):
    """log10 p(hist[t] | hist[:t]) for t = start .. len-1 (float64; -inf for p = 0)."""
    uni = F[7]
    V = uni.shape[0]
    stamp = np.zeros(V, np.int64)
    val = np.zeros(V, np.float64)
    E = np.empty(V, np.int32)
    out = np.empty(hist.shape[0] - start, np.float64)
    for t in range(start, hist.shape[0]):
        k = min(t, order - 1)
        nE, B = context_step(F, order, hist, t - k, k, stamp, t + 1, val, E)
        w = hist[t]
        p = val[w] if stamp[w] == t + 1 else B * uni[w]
        if w == BOS:
            p = 0.0
        out[t - start] = np.log10(p) if p > 0.0 else -np.inf
    return out


# ----------------------------------------------------------------------------------------------
# The nested draw (plain sampling from a normalized model)


@njit(cache=True)
def _in_range(ids, base, n, lo, hi, w):
    """Is w the last word of one of rows lo..hi-1 of order n (they share their first n-1 words)?"""
    j = n - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        x = ids[base + mid * n + j]
        if x < w:
            lo = mid + 1
        elif x > w:
            hi = mid
        else:
            return True
    return False


@njit(cache=True)
def nested_draw(F, order, hist, hs, k, allow_unk, states, s, max_draws, lo, hi, A, bf):
    """Draw w ~ p(. | hist[hs:hs+k]) (conditioned on w != <unk> unless allowed) by the nested way.

    ``lo``, ``hi``, ``A``, ``bf``: scratch of ``order`` entries. Returns (w, p(w | h)), or (-1, 0)
    after ``max_draws`` candidate draws (the caller then uses the explicit way).
    """
    ids, id_base, row_base, n_rows, pr, bof, cum, uni, uni_bo, ucum = F
    if k > order - 1:
        hs += k - (order - 1)
        k = order - 1
    for j in range(k, 0, -1):
        qs = hs + k - j
        n = j + 1
        m = n_rows[n]
        lo[j] = 0
        hi[j] = 0
        A[j] = 0.0
        if m > 0:
            base = id_base[n]
            lo[j] = _bound(ids, base, n, m, hist, qs, j, False)
            hi[j] = _bound(ids, base, n, m, hist, qs, j, True)
            cb = row_base[n] + n - 2
            a = cum[cb + hi[j]] - cum[cb + lo[j]]
            A[j] = min(max(a, 0.0), 1.0)
        bf[j] = _backoff(F, hist, qs, j)
    V = uni.shape[0]
    total_uni = ucum[V - 1]
    draws = 0
    lev = k
    while draws < max_draws:
        draws += 1
        L = lev
        while L > 0 and (A[L] <= 0.0 or uniform(states, s) >= A[L]):
            L -= 1
        if L == 0:
            w = _first_above(ucum, 0, 0, V - 1, uniform(states, s) * total_uni)
            p = uni[w]
        else:
            n = L + 1
            base = id_base[n]
            cb = row_base[n] + n - 2
            c0 = cum[cb + lo[L]]
            x = c0 + uniform(states, s) * (cum[cb + hi[L]] - c0)
            a = _first_above(cum, cb + 1, lo[L], hi[L] - 1, x)
            w = ids[base + a * n + L]
            p = pr[row_base[n] + a]
        # the draw stood for P_{i-1} on behalf of each level i above L: it must be outside S_i
        ok = True
        for i in range(L + 1, k + 1):
            if hi[i] > lo[i] and _in_range(ids, id_base[i + 1], i + 1, lo[i], hi[i], w):
                lev = i - 1
                ok = False
                break
            p *= bf[i]
        if not ok:
            continue
        if (w == UNK and not allow_unk) or p <= 0.0:
            lev = k  # condition the whole distribution on w != <unk>: start again
            continue
        return w, p
    return -1, 0.0


# ----------------------------------------------------------------------------------------------
# Choosing a word


@njit(cache=True)
def _sorted_desc(E, nE, wq):
    """The words E[:nE] by weight wq descending (ties: smaller word id first)."""
    Es = np.sort(E[:nE])
    key = np.empty(nE, np.float64)
    for i in range(nE):
        key[i] = -wq[Es[i]]
    return Es[np.argsort(key, kind="mergesort")]


@njit(cache=True)
def choose_lazy(E, nE, B, val, stamp, gen, uni, uq, ucum, uorder, umax, Uq, inv_t, top_k, top_p, greedy,
                allow_unk, states, s, wq, cw, cq, vt, Bt):
    """Draw the next word from the lazy distribution of one step (see the module docstring).

    ``val``/``stamp``/``E``/``B``: the step as ``context_step`` left it; ``vt``/``Bt`` their tempered
    values from ``context_step_t`` (Bt < 0: not given, weights are computed with pow). ``uq``: unigram weights
    (uni/umax)^(1/T), disallowed words zeroed; ``ucum`` their cumulative sums and ``Uq`` their total;
    ``umax`` the largest allowed unigram p; ``uorder``: word ids by unigram p descending (ties by
    id). ``wq``, ``cw``, ``cq``: scratch of V entries. Returns the word, or -1 when none has weight.
    """
    V = uq.shape[0]
    if greedy:  # the largest p among the explicit words and the best unset word
        best = -1
        bp = 0.0
        for i in range(nE):
            w = E[i]
            if w == BOS or (w == UNK and not allow_unk):
                continue
            p = val[w]
            if p > bp or (p == bp and p > 0.0 and w < best):
                best, bp = w, p
        for i in range(uorder.shape[0]):
            w = uorder[i]
            if stamp[w] == gen or uq[w] <= 0.0:
                continue
            p = B * uni[w]
            if p > bp or (p == bp and p > 0.0 and w < best):
                best, bp = w, p
            break
        return best

    # Scale so that the largest weight is 1 (no underflow at small temperatures).
    M = B * umax
    for i in range(nE):
        w = E[i]
        if val[w] > M and w != BOS and (w != UNK or allow_unk):
            M = val[w]
    if M <= 0.0:
        return -1
    tempered = Bt >= 0.0
    Mt = M ** inv_t
    if tempered and not (Mt > 1e-280):
        tempered = False  # would underflow: scale each weight by pow instead
    if tempered:
        c = Bt * umax ** inv_t / Mt if B > 0.0 else 0.0
    else:
        c = (B * umax / M) ** inv_t if B > 0.0 else 0.0
    Q = 0.0
    sumEu = 0.0
    for i in range(nE):
        w = E[i]
        if w == BOS or (w == UNK and not allow_unk) or val[w] <= 0.0:
            wq[w] = 0.0
        elif inv_t == 1.0:
            wq[w] = val[w] / M
        elif tempered:
            wq[w] = vt[w] / Mt
        else:
            wq[w] = (val[w] / M) ** inv_t
        Q += wq[w]
        sumEu += uq[w]
    rest = Uq - sumEu
    exact_rest = rest < 1e-4 * Uq
    if exact_rest:  # the explicit words hold almost all unigram mass: sum the rest exactly
        rest = 0.0
        for w in range(V):
            if stamp[w] != gen:
                rest += uq[w]
    R = c * rest if rest > 0.0 else 0.0
    total = Q + R
    if total <= 0.0:
        return -1

    if top_k > 0 or top_p < 1.0:
        # Candidates most likely first: the explicit words sorted, merged with the unset words in
        # unigram order (their weights c * uq keep that order).
        if 0 < top_k < nE // 4:  # only the k largest explicit weights can be among the top k
            x = np.empty(nE, np.float64)
            for i in range(nE):
                x[i] = wq[E[i]]
            thr = np.partition(x, nE - top_k)[nE - top_k]
            keep = np.empty(nE, np.int32)
            nk = 0
            for i in range(nE):
                if wq[E[i]] >= thr:
                    keep[nk] = E[i]
                    nk += 1
            Es = _sorted_desc(keep, nk, wq)
        elif top_k <= 0 and nE > 64:
            # top-p: find a threshold tau with weight >= top_p * total above it, and sort only
            # the explicit words above tau (the nucleus lies above it)
            target = top_p * total
            tau = 1.0
            while True:
                tau *= 0.0625
                above = 0.0
                for i in range(nE):
                    if wq[E[i]] >= tau:
                        above += wq[E[i]]
                for i in range(uorder.shape[0]):
                    w = uorder[i]
                    x = c * uq[w]
                    if x < tau:
                        break
                    if stamp[w] != gen:
                        above += x
                if above >= target or tau < 1e-300:
                    break
            keep = np.empty(nE, np.int32)
            nk = 0
            for i in range(nE):
                if wq[E[i]] >= tau:
                    keep[nk] = E[i]
                    nk += 1
            Es = _sorted_desc(keep, nk, wq)
        else:
            Es = _sorted_desc(E, nE, wq)
        nE = Es.shape[0]
        limit = top_k if top_k > 0 else V
        target = top_p * total if top_k <= 0 else np.inf
        nc = 0
        acc = 0.0
        a = 0
        b = 0
        nU = uorder.shape[0]
        while nc < limit and acc < target:
            if a < nE and wq[Es[a]] <= 0.0:
                a = nE  # sorted: the rest are zero too
            while b < nU and (stamp[uorder[b]] == gen or uq[uorder[b]] <= 0.0):
                b += 1
            wa = Es[a] if a < nE else -1
            qa = wq[wa] if a < nE else 0.0
            wb = uorder[b] if b < nU else -1
            qb = c * uq[wb] if b < nU else 0.0
            if qa <= 0.0 and qb <= 0.0:
                break
            if qb > qa or (qb == qa and wb < wa):
                cw[nc] = wb
                cq[nc] = qb
                b += 1
            else:
                cw[nc] = wa
                cq[nc] = qa
                a += 1
            acc += cq[nc]
            nc += 1
        if nc == 0:
            return -1
        if top_k > 0 and top_p < 1.0:  # the nucleus within the top k
            goal = top_p * acc
            acc2 = 0.0
            for i in range(nc):
                acc2 += cq[i]
                if acc2 >= goal:
                    nc = i + 1
                    acc = acc2
                    break
        u = uniform(states, s) * acc
        for i in range(nc):
            u -= cq[i]
            if u < 0.0:
                return cw[i]
        return cw[nc - 1]

    u = uniform(states, s) * total
    if u < Q:
        last = -1
        for i in range(nE):
            w = E[i]
            if wq[w] > 0.0:
                last = w
                u -= wq[w]
                if u < 0.0:
                    return w
        if R <= 0.0:
            return last
    # an unset word, by its unigram weight
    if not exact_rest and rest >= 0.25 * Uq:
        for _ in range(64):  # rejection: accepts with probability rest/Uq >= 1/4
            w = _first_above(ucum, 0, 0, V - 1, uniform(states, s) * Uq)
            if stamp[w] != gen and uq[w] > 0.0:
                return w
    x = uniform(states, s) * rest
    last = -1
    for w in range(V):
        if stamp[w] != gen and uq[w] > 0.0:
            last = w
            x -= uq[w]
            if x < 0.0:
                return w
    return last


# ----------------------------------------------------------------------------------------------
# Many sentences at once


@njit(cache=True, parallel=True)
def sample_ngram(F, Ft, order, weights, start, states, inv_t, top_k, top_p, greedy, allow_unk, nested, max_len,
                 n_blocks, out_tok, out_len, out_ended, out_logp):
    """Sample len(states) sentences after the context ``start`` (``<s>`` and any prefix ids).

    ``weights`` = (uq, ucum, uorder, umax, Uq) for ``choose_lazy``; ``nested``: plain sampling of a
    normalized model by the nested way; ``Ft``: the tempered factors of ``context_step_t`` (F's own
    at T = 1; an empty first array: use pow). Sentence i uses RNG stream states[i]; it ends with ``</s>``
    (out_ended) or is cut after ``max_len`` words. Its words (without ``</s>``) go to
    out_tok[i, :out_len[i]], the model's log10 p of its words and ``</s>`` (untempered) to
    out_logp[i]. Returns the number of sentences that met a context where no allowed word has
    weight (they end there, not ended).
    """
    uq, ucum, uorder, umax, Uq = weights
    uni = F[7]
    n = states.shape[0]
    V = uni.shape[0]
    ns = start.shape[0]
    ctx = order - 1
    use_t = Ft[0].shape[0] == F[4].shape[0] and inv_t != 1.0
    failed = np.zeros(n_blocks, np.int64)
    for blk in prange(n_blocks):
        lo = blk * n // n_blocks
        hi = (blk + 1) * n // n_blocks
        stamp = np.zeros(V, np.int64)
        val = np.empty(V, np.float64)
        wq = np.empty(V, np.float64)
        vt = np.empty(V, np.float64)
        E = np.empty(V, np.int32)
        cw = np.empty(V, np.int32)
        cq = np.empty(V, np.float64)
        slo = np.empty(order, np.int64)
        shi = np.empty(order, np.int64)
        sA = np.empty(order, np.float64)
        sbf = np.empty(order, np.float64)
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
                    w, p = nested_draw(F, order, hist, t - k, k, allow_unk, states, s, 256, slo, shi, sA, sbf)
                if w < 0:
                    gen += 1
                    if use_t:
                        nE, B, Bt = context_step_t(F, Ft, order, hist, t - k, k, stamp, gen, val, vt, E)
                    else:
                        nE, B = context_step(F, order, hist, t - k, k, stamp, gen, val, E)
                        Bt = -1.0
                    w = choose_lazy(E, nE, B, val, stamp, gen, uni, uq, ucum, uorder, umax, Uq, inv_t, top_k,
                                    top_p, greedy, allow_unk, states, s, wq, cw, cq, vt, Bt)
                    if w < 0:
                        failed[blk] += 1
                        break
                    p = val[w] if stamp[w] == gen else B * uni[w]
                total += np.log10(p) if p > 0.0 else -np.inf
                if w == EOS:
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


@njit(cache=True)
def choose_logits(Z, rows, inv_t, top_k, top_p, greedy, allow_unk, states, out_w, out_lp):
    """One draw per row of Z (float (B, V) logits: log p up to a constant per row); row i uses
    stream rows[i]. Writes the word (-1: none has weight) and its untempered log10 p."""
    B, V = Z.shape
    q = np.empty(V, np.float64)
    ln10 = np.log(10.0)
    for i in range(B):
        z = Z[i]
        zmax = -np.inf
        amax = -np.inf
        best = -1
        for w in range(V):
            x = np.float64(z[w])
            if x > zmax:
                zmax = x
            if w == BOS or (w == UNK and not allow_unk):
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
                q[w] = np.exp(np.float64(z[w]) - amax)
                tot += q[w]
            lse = amax + np.log(tot)
            total = tot - q[BOS]
            q[BOS] = 0.0
            if not allow_unk:
                total -= q[UNK]
                q[UNK] = 0.0
        else:
            lse = 0.0
            for w in range(V):
                lse += np.exp(np.float64(z[w]) - zmax)
            lse = zmax + np.log(lse)
            total = 0.0
            for w in range(V):
                if w == BOS or (w == UNK and not allow_unk):
                    q[w] = 0.0
                else:
                    q[w] = np.exp((np.float64(z[w]) - amax) * inv_t)
                total += q[w]
        w = best if greedy else draw_weights(q, total, top_k, top_p, states, rows[i])
        out_w[i] = w
        out_lp[i] = (np.float64(z[w]) - lse) / ln10 if w >= 0 else -np.inf


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


# ----------------------------------------------------------------------------------------------
# Rendering text


@njit(cache=True)
def render(tok, lens, pool, offs, sep, head):
    """UTF-8 bytes of sentences: ``head`` then the words joined by ``sep``, one per line."""
    n = lens.shape[0]
    size = 0
    for i in range(n):
        size += head.shape[0] + 1
        for j in range(lens[i]):
            w = tok[i, j]
            size += offs[w + 1] - offs[w] + sep.shape[0]
    out = np.empty(size, np.uint8)
    ends = np.empty(n, np.int64)
    o = 0
    for i in range(n):
        out[o:o + head.shape[0]] = head
        o += head.shape[0]
        for j in range(lens[i]):
            if j > 0 or head.shape[0] > 0:
                out[o:o + sep.shape[0]] = sep
                o += sep.shape[0]
            w = tok[i, j]
            a = offs[w]
            b = offs[w + 1]
            out[o:o + b - a] = pool[a:b]
            o += b - a
        out[o] = 10
        o += 1
        ends[i] = o
    return out[:o], ends
