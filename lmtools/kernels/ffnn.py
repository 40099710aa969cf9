"""Numba kernels of the feedforward neural LM (Bengio et al. 2003): forward, backward, updates.

The model, for one example with context ids x_1..x_m (m = n-1) and target y:

    e = [E[x_1]; ...; E[x_m]]          (m*d,)   gather + concatenate
    h = act(W e + b)                   (H,)     act in {tanh, sigmoid, relu}
    z = U h + c                        (V,)     the output layer: ~99% of the work
    loss = -ln softmax(z)[y]

or, with the class-based output layer (Goodman 2001; frequency-binned classes as in Mikolov's
RNNLM), ``p(y|h) = p(k|h) p(y|k,h)`` where k is the class of y: a softmax over the C classes
(``Uc h + cc``) times a softmax over the words of class k only (rows of ``U``, ``c`` of that
class). Words are numbered in class order inside the kernels, so a class is a contiguous row range
``class_start[k]:class_start[k+1]``.

Layout inside the kernels (batch-major, row-major, float32 or float64 throughout):
  E (V, d); Wt (m*d, H) = W transposed, so that ``a = e @ Wt`` is a plain GEMM; b (H,);
  U is (V, H) (``u_layout=0``, the model file's layout, the default) or (H, V) (``u_layout=1``):
  the layouts differ in how BLAS walks memory; bench/bench_ffnn.py measures both; c (V,).
  Uc (C, H), cc (C,) exist (with C > 0) only for the class-based layer.

The kernels take named structures (``lmtools.kernels.ffnn_types``): the parameters travel as one
``Params`` ``P = (E, Wt, b, U, c, Uc, cc)``; the gradients ``G`` are a ``Params`` of the same
shapes, the optimizer's state an ``OptState`` of two more (``s1``, ``s2``: arrays with 0 rows when
a rule does not use them); ``Net`` is what the kernels must know of the network besides its
parameters (activation, U layout, the class layer's rows, the row of ``<s>``), ``Options`` the
training options, ``Buffers`` a minibatch's work arrays (built by ``work_buffers``) and ``Touched``
the rows its gradient touched. All GEMMs go to BLAS (scipy's): ``np.dot`` on
contiguous arrays, or ``gemm`` where plain SGD folds the update into the gradient GEMM. With
``parts`` > 1 (training, BLAS set to one thread by the caller) the products, the softmax, the bias
and dense optimizer updates and the class layer's word loops run in blocks on numba's threads;
each block's arithmetic is fixed and compiled with IEEE semantics (``FASTMATH``), so a seed
reproduces a run bit for bit for a given thread count, whether the kernels were just compiled or
loaded from numba's cache. No I/O here.

The pieces live beside this module: ``ffnn_blas`` (``gemm``, ``pgemm``), ``ffnn_math`` (activations,
the forward pieces, exp and the softmax), ``ffnn_optim`` (the optimizer steps, ``apply_update``); this
module builds the examples and runs training (``forward_backward``, ``train_batches``) and scoring.
"""

import numpy as np
from numba import njit, prange

from lmtools.kernels.ffnn_blas import pgemm
from lmtools.kernels.ffnn_math import (
    FASTMATH, U_VH, act_backward, bos_class, bos_row, class_word_parts, exp_shifted, hidden_forward, log_softmax_at,
    log_softmax_parts, output_logits, softmax_xent, softmax_xent_split,
)
from lmtools.kernels.ffnn_optim import OPT_SGD, apply_update

# the codes, tables and structures the model and the trainers read from here
from lmtools.kernels.ffnn_math import ACT_RELU, ACT_SIGMOID, ACT_TANH, ACTIVATIONS, BOS_ROW, U_HV  # noqa: F401, E402
from lmtools.kernels.ffnn_optim import OPT_ADAGRAD, OPT_ADAM, OPT_MOMENTUM, OPTIMIZERS  # noqa: F401, E402
from lmtools.kernels.ffnn_types import (  # noqa: F401, E402
    Buffers, Net, Options, OptState, Params, Touched, empty_touched, work_buffers,
)


# ----------------------------------------------------------------------------------------------
# Examples and randomness


@njit(cache=True)
def build_examples(ids, ctx):
    """Training examples of a token stream ``<s> w1 .. wk </s> <s> ...``.

    Parameters
    ----------
    ids : int32[:]
        The stream; every sentence starts with ``<s>`` (id 1).
    ctx : int
        Context size m = n-1.

    Returns
    -------
    X : int32[N, ctx]
        Contexts, oldest word first, padded with ``<s>`` at the start of a sentence.
    Y : int32[N]
        Targets: every token that is not ``<s>`` (the words and ``</s>``).
    pos : int64[N]
        Position of each target in ``ids``.
    """
    n = 0
    for t in range(ids.shape[0]):
        if ids[t] != 1:
            n += 1
    X = np.empty((n, ctx), np.int32)
    Y = np.empty(n, np.int32)
    pos = np.empty(n, np.int64)
    start = 0
    i = 0
    for t in range(ids.shape[0]):
        w = ids[t]
        if w == 1:
            start = t
            continue
        for j in range(1, ctx + 1):
            p = t - j
            X[i, ctx - j] = ids[p] if p >= start else 1
        Y[i] = w
        pos[i] = t
        i += 1
    return X, Y, pos


@njit(cache=True, inline="always")
def _next_uniform(state):
    # xorshift64*: explicit state, so a seed reproduces the dropout masks exactly
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    r = x * np.uint64(0x2545F4914F6CDD1D)
    return np.float64(r >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def fill_dropout_mask(mask, keep, state):
    """Inverted-dropout mask: each entry 1/keep with probability keep, else 0 (in place).

    Parameters
    ----------
    mask : float[:, :]
        Output.
    keep : float
        Keep probability (1 - dropout rate), in (0, 1].
    state : uint64[1]
        xorshift64* state, advanced.
    """
    inv = 1.0 / keep
    for r in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            mask[r, j] = inv if _next_uniform(state) < keep else 0.0


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _bias_step_split(c, z, lr, parts):
    V = c.shape[0]
    for p in prange(parts):
        lo = V * p // parts
        hi = V * (p + 1) // parts
        cp = c[lo:hi]
        for r in range(z.shape[0]):
            zr = z[r, lo:hi]
            for j in range(hi - lo):
                cp[j] -= lr * zr[j]


@njit(cache=True, fastmath=FASTMATH)
def _bias_step(c, z, lr, parts):
    """``c -= lr * sum over rows of z`` (row by row, the same sums however it is split)."""
    if parts > 1:
        _bias_step_split(c, z, lr, parts)
        return
    for r in range(z.shape[0]):
        for j in range(c.shape[0]):
            c[j] -= lr * z[r, j]


@njit(cache=True, fastmath=FASTMATH)
def _layer_step(A, B, delta, W, gW, bias, gbias, direct_lr, beta, bias_parts, parts):
    """A weight matrix ``W = A^T B`` (gradient) and its bias (gradient: column sums of ``delta``).

    Plain SGD (``direct_lr`` > 0): ``W <- beta W - lr A^T B`` inside the GEMM and ``bias -= lr *
    sum(delta)``; otherwise the gradients go to ``gW`` and ``gbias`` for ``apply_update``.
    """
    if direct_lr > 0.0:
        _bias_step(bias, delta, direct_lr, bias_parts)
        pgemm(-direct_lr, A, B, beta, W, True, False, parts)
    else:
        gbias[:] = 0.0
        _bias_step(gbias, delta, -1.0, bias_parts)
        pgemm(1.0, A, B, 0.0, gW, True, False, parts)


# ----------------------------------------------------------------------------------------------
# The word half of the class-based layer
#
# Each example's word softmax reads its class's rows of U (~36 rows of H floats at V = 10k,
# C = 100): memory-bound scalar work that BLAS cannot take. A class's rows are read only by the
# examples of that class, so the work runs class by class: the rows are loaded once, serve every
# forward and backward step of those examples (with the old values, as a minibatch gradient must)
# and then take their update while still in cache. Classes run in parallel; within a class the
# examples go in minibatch order, so the result does not depend on the number of threads.


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _class_words_step(U, c, gU, gc, cls_start, y, yc, hd, dh, gw, lossv, scale, mark, direct_lr, beta, skip=-1):
    # per example r: lossv[r] += -ln p(y | class, h); dh[r] += sum_j g_j U[class row j] with
    # g = scale * dL/dz over its class's words (in gw[r]); then per class: plain SGD
    # (direct_lr > 0) updates U and c (rows first scaled by beta, the L2 decay), otherwise
    # accumulates into gU, gc and marks the class at mark[V + k] for apply_update; output row
    # ``skip`` (>= 0, <s>) is left out of its class's softmax
    n = hd.shape[0]
    H = hd.shape[1]
    C = cls_start.shape[0] - 1
    V = c.shape[0]
    # examples grouped by class, in minibatch order within a class (a counting sort)
    first = np.zeros(C + 1, np.int64)
    for r in range(n):
        first[yc[r] + 1] += 1
    for k in range(C):
        first[k + 1] += first[k]
    by_class = np.empty(n, np.int64)
    fill = first[:C].copy()
    met = np.empty(n, np.int64)
    n_met = 0
    for r in range(n):
        k = yc[r]
        if fill[k] == first[k]:
            met[n_met] = k
            n_met += 1
        by_class[fill[k]] = r
        fill[k] += 1
    direct = direct_lr > 0.0
    for i in prange(n_met):
        k = met[i]
        s = cls_start[k]
        ne = cls_start[k + 1] - s
        scratch = np.empty(ne, np.int32)
        jskip = skip - s if s <= skip < s + ne else -1
        for a in range(first[k], first[k + 1]):
            r = by_class[a]
            g = gw[r, :ne]
            hr = hd[r]
            mx = -np.inf
            for j in range(ne):
                acc = c[s + j]
                for q in range(H):
                    acc += U[s + j, q] * hr[q]
                g[j] = acc
                if j != jskip:
                    mx = max(mx, acc)
            t = y[r] - s
            zt = g[t]
            tot = exp_shifted(g, mx, scratch, jskip)
            lossv[r] += np.log(tot) + mx - zt
            inv = g.dtype.type(scale / tot)
            dr = dh[r]
            for j in range(ne):
                gj = g[j] * inv
                if j == t:
                    gj -= scale
                g[j] = gj
                for q in range(H):
                    dr[q] += gj * U[s + j, q]
        if direct and beta != 1.0:
            for w in range(s, s + ne):
                for q in range(H):
                    U[w, q] *= beta
        for a in range(first[k], first[k + 1]):
            r = by_class[a]
            hr = hd[r]
            for j in range(ne):
                if direct:
                    gj = gw[r, j] * direct_lr
                    c[s + j] -= gj
                    for q in range(H):
                        U[s + j, q] -= gj * hr[q]
                else:
                    gj = gw[r, j]
                    gc[s + j] += gj
                    for q in range(H):
                        gU[s + j, q] += gj * hr[q]
    if not direct:
        for i in range(n_met):
            mark[V + met[i]] = 1


# ----------------------------------------------------------------------------------------------
# Forward + backward for one minibatch


@njit(cache=True, fastmath=FASTMATH)
def forward_backward(P, G, net, X, Y, rows, bufs, touched, direct_lr=0.0, l2=0.0, parts=1):
    """Loss and gradients of one minibatch (mean loss over its examples).

    Parameters
    ----------
    P : Params
        The parameters (see the module docstring).
    G : Params
        Gradients, same shapes as P. Dense ones are overwritten; ``G.E`` is accumulated into only
        at the rows listed in ``touched.e_rows`` (sparse: the caller zeroes them after use); with
        the class layer ``G.U``, ``G.c`` are accumulated into at the rows of the classes met
        (``touched.mark``), likewise sparse.
    net : Net
        Activation, U layout, class layer (``cls``, ``cls_start``: empty for the exact softmax) and
        the output row of ``<s>``, left out of the softmax (-1: see ``bos_row``; the class layer's
        callers give it).
    X, Y : int32[N, m], int32[N]
        All examples; ``rows`` (int64[B]) picks this minibatch.
    bufs : Buffers
        Work arrays of at least len(rows) rows; the dropout masks ``bufs.me``, ``bufs.mh`` are
        used as they are (0 rows: no dropout).
    touched : Touched
        Output: ``e_rows[0]`` = n, then the n distinct E rows touched; ``mark`` is zero on entry
        and on return but for the classes met (``mark[V + k]``, for ``apply_update``).
    direct_lr, l2 : float
        Plain SGD: when ``direct_lr`` > 0 every parameter takes its step here, ``p -= direct_lr *
        (gradient + l2 p)`` (no l2 on biases; E and the class-layer word rows only where used,
        as in ``apply_update``), each right after the gradient that needs its old value: weight
        matrices inside the gradient GEMM (alpha = -lr, beta = 1 - lr l2), and nothing goes
        through ``G``. The result equals ``apply_update``'s SGD step; it saves a write and a read
        of every gradient. (``bufs.gw`` holds the class layer's per-example word gradients.)
    parts : int
        Row blocks of the hidden and class-layer GEMMs (see ``pgemm``).

    Returns
    -------
    float
        Sum over the batch of ``-ln p(y|context)``.
    """
    E, Wt, b, U, c, Uc, cc = P
    gE, gWt, gb, gU, gc, gUc, gcc = G
    act, u_layout, cls, cls_start, bos = net
    gE_rows, mark = touched
    me = bufs.me
    mh = bufs.mh
    n = rows.shape[0]
    if n > bufs.e.shape[0] or (me.shape[0] > 0 and n > me.shape[0]) or (mh.shape[0] > 0 and n > mh.shape[0]):
        raise ValueError("minibatch larger than the work buffers")
    e = bufs.e[:n]
    h = bufs.h[:n]
    dh = bufs.dh[:n]
    de = bufs.de[:n]
    lossv = bufs.loss[:n]
    med = me[:n] if me.shape[0] > 0 else me
    mhd = mh[:n] if mh.shape[0] > 0 else mh
    hd = hidden_forward(P, X, rows, e, h, med, mhd, act, parts)
    y = np.empty(n, np.int32)
    for r in range(n):
        y[r] = Y[rows[r]]
    scale = 1.0 / n
    direct = direct_lr > 0.0
    beta = 1.0 - direct_lr * l2
    skip = bos_row(bos, cls, c.shape[0])
    if cls.shape[0] == 0:
        z = bufs.z[:n]
        u_t = u_layout == U_VH  # U is (V, H): z = hd U^T
        pgemm(1.0, hd, U, 0.0, z, False, u_t, parts)
        if parts > 1:
            softmax_xent_split(z, c, y, scale, lossv, parts, skip)
        else:
            softmax_xent(z, c, y, scale, lossv, skip)
        # output-layer gradients; z now holds dL/dz
        pgemm(1.0, z, U, 0.0, dh, False, not u_t, parts)  # dh through the old U
        if u_t:  # U (V, H): dz^T hd
            _layer_step(z, hd, z, U, gU, c, gc, direct_lr, beta, parts, parts)
        else:  # U (H, V): hd^T dz
            _layer_step(hd, z, z, U, gU, c, gc, direct_lr, beta, parts, parts)
    else:
        zc = bufs.z[:n]  # (B, C) in class mode
        pgemm(1.0, hd, Uc, 0.0, zc, False, True, parts)
        yc = np.empty(n, np.int32)
        for r in range(n):
            yc[r] = cls[y[r]]
        softmax_xent(zc, cc, yc, scale, lossv, bos_class(cls, cls_start, skip))
        pgemm(1.0, zc, Uc, 0.0, dh, False, False, parts)  # dh through the old Uc
        _layer_step(zc, hd, zc, Uc, gUc, cc, gcc, direct_lr, beta, 1, parts)
        _class_words_step(U, c, gU, gc, cls_start, y, yc, hd, dh, bufs.gw[:n], lossv, scale, mark, direct_lr, beta,
                          skip)
    # hidden layer
    if mhd.shape[0] > 0:
        dh *= mhd
    act_backward(h, dh, act)
    pgemm(1.0, dh, Wt, 0.0, de, False, True, parts)  # through the old W
    _layer_step(e, dh, dh, Wt, gWt, b, gb, direct_lr, beta, 1, parts)
    if med.shape[0] > 0:
        de *= med
    # sparse scatter-add into the rows of E that were used
    d = E.shape[1]
    m = X.shape[1]
    cnt = 0
    for r in range(n):
        i = rows[r]
        for k in range(m):
            w = X[i, k]
            if mark[w] == 0:
                mark[w] = 1
                gE_rows[1 + cnt] = w
                cnt += 1
            if not direct:
                for j in range(d):
                    gE[w, j] += de[r, k * d + j]
    if direct:
        if beta != 1.0:
            for t in range(cnt):
                w = gE_rows[1 + t]
                for j in range(d):
                    E[w, j] *= beta
        for r in range(n):
            i = rows[r]
            for k in range(m):
                w = X[i, k]
                for j in range(d):
                    E[w, j] -= direct_lr * de[r, k * d + j]
        cnt = 0  # nothing left for apply_update
    gE_rows[0] = cnt
    for r in range(n):
        i = rows[r]
        for k in range(m):
            mark[X[i, k]] = 0
    total = 0.0
    for r in range(n):
        total += lossv[r]
    return total



@njit(cache=True, fastmath=FASTMATH)
def train_batches(P, G, S, net, opts, bufs, touched, rng, X, Y, order, lo, hi, t0, losses):
    """Run minibatches ``order[lo:hi]`` in steps of ``opts.batch``: forward, backward, update.

    Parameters
    ----------
    P, G, S : Params, Params, OptState
        Parameters, gradients and the optimizer's state (updated in place).
    net : Net
        See ``forward_backward``.
    opts : Options
        The optimizer and its settings, the dropout keep rates, the minibatch size, and ``parts``:
        split each hidden-layer and class-layer GEMM into this many row blocks on numba's threads
        (``pgemm``; for BLAS set to one thread), 1: plain BLAS calls.
    bufs : Buffers
        Work arrays of ``opts.batch`` rows; the dropout masks (0 rows: no dropout) are filled per
        minibatch from ``rng``.
    touched : Touched
        Scratch between the backward pass and the update (see ``forward_backward``).
    rng : uint64[1]
        Dropout random state (advanced).
    X, Y : int32[N, m], int32[N]
        All examples.
    order : int64[N]
        The epoch's permutation of example indices.
    lo, hi : int
        Range of ``order`` to run.
    t0 : int
        Number of optimizer steps taken before this call.
    losses : float64[n_batches]
        Output: summed loss of each minibatch (NaN or inf stops the run at that minibatch).

    Returns
    -------
    int
        Number of minibatches run (fewer than asked when a loss was not finite).
    """
    batch = opts.batch
    me = bufs.me
    mh = bufs.mh
    nb = 0
    for s in range(lo, hi, batch):
        rows = order[s:min(s + batch, hi)]
        n = rows.shape[0]
        if me.shape[0] > 0:
            fill_dropout_mask(me[:n], opts.keep_e, rng)
        if mh.shape[0] > 0:
            fill_dropout_mask(mh[:n], opts.keep_h, rng)
        direct = opts.lr if opts.optimizer == OPT_SGD else 0.0  # plain SGD steps inside the backward pass
        loss = forward_backward(P, G, net, X, Y, rows, bufs, touched, direct, opts.l2, opts.parts)
        losses[nb] = loss
        nb += 1
        if not np.isfinite(loss):
            return nb  # the caller stops and restores its last good parameters
        if direct == 0.0:
            apply_update(P, G, S, opts, net.cls_start, touched, t0 + nb)
    return nb


# ----------------------------------------------------------------------------------------------
# Scoring


@njit(cache=True, fastmath=FASTMATH)
def score_examples(P, net, X, Y, batch, out):
    """Natural-log probability ``ln p(Y[i] | X[i])`` of every example (no dropout).

    Parameters
    ----------
    P : Params
        Parameters (see the module docstring).
    net : Net
        Activation, U layout, class layer, output row of ``<s>`` (see ``forward_backward``).
    X, Y : int32[N, m], int32[N]
        Examples.
    batch : int
        Examples per GEMM.
    out : float64[N]
        Output.
    """
    E, Wt, b, U, c, Uc, cc = P
    act, u_layout, cls, cls_start, bos = net
    N = X.shape[0]
    mdim = Wt.shape[0]
    H = Wt.shape[1]
    dt = E.dtype
    e = np.empty((batch, mdim), dt)
    h = np.empty((batch, H), dt)
    V = c.shape[0]
    C = cc.shape[0]
    z = np.empty((batch, V if cls.shape[0] == 0 else C), dt)
    nomask = np.empty((0, 0), dt)
    maxc = 1
    for k in range(C):
        maxc = max(maxc, cls_start[k + 1] - cls_start[k])
    zw = np.empty(maxc, dt)
    skip = bos_row(bos, cls, V)
    skip_class = bos_class(cls, cls_start, skip)
    for s in range(0, N, batch):
        n = min(batch, N - s)
        rows = np.arange(s, s + n)
        hh = hidden_forward(P, X, rows, e[:n], h[:n], nomask, nomask, act)
        y = Y[s:s + n]
        o = out[s:s + n]
        if cls.shape[0] == 0:
            zz = z[:n]
            output_logits(U, hh, zz, u_layout)
            log_softmax_at(zz, c, y, o, skip)
        else:
            zz = z[:n]
            np.dot(hh, Uc.T, zz)
            yc = np.empty(n, np.int32)
            for r in range(n):
                yc[r] = cls[y[r]]
            log_softmax_at(zz, cc, yc, o, skip_class)
            for r in range(n):
                k = yc[r]
                st = cls_start[k]
                ne = cls_start[k + 1] - st
                jskip = skip - st if st <= skip < st + ne else -1
                mw, lw = class_word_parts(U, c, cls_start, k, hh[r], zw, jskip)
                o[r] += zw[y[r] - st] - mw - lw


@njit(cache=True, fastmath=FASTMATH)
def next_word_logprobs(P, net, X, out):
    """Full next-word distribution ``out[i, w] = ln p(w | X[i])`` for every word w (in place).

    Parameters
    ----------
    P : Params
        Parameters.
    net : Net
        As for ``score_examples``; ln p = -inf at the output row of ``<s>``, the other words sum to 1.
    X : int32[B, m]
        Contexts.
    out : float64[B, V]
        Output, in the kernel's word numbering (class order for the class layer).
    """
    E, Wt, b, U, c, Uc, cc = P
    act, u_layout, cls, cls_start, bos = net
    n = X.shape[0]
    dt = E.dtype
    e = np.empty((n, Wt.shape[0]), dt)
    h = np.empty((n, Wt.shape[1]), dt)
    nomask = np.empty((0, 0), dt)
    hh = hidden_forward(P, X, np.arange(n), e, h, nomask, nomask, act)
    V = c.shape[0]
    skip = bos_row(bos, cls, V)
    # every log-probability as score_examples computes it (log_softmax_parts, class_word_parts)
    if cls.shape[0] == 0:
        z = np.empty((n, V), dt)
        output_logits(U, hh, z, u_layout)
        scratch = np.empty(V, np.int32)
        work = np.empty(V, dt)
        for r in range(n):
            zr = z[r]
            mx, lg = log_softmax_parts(zr, c, skip, scratch, work)
            for j in range(V):
                out[r, j] = zr[j] - mx - lg if j != skip else -np.inf
    else:
        C = cc.shape[0]
        zc = np.empty((n, C), dt)
        np.dot(hh, Uc.T, zc)
        maxc = 1
        for k in range(C):
            maxc = max(maxc, cls_start[k + 1] - cls_start[k])
        zw = np.empty(maxc, dt)
        skip_class = bos_class(cls, cls_start, skip)
        scratch = np.empty(C, np.int32)
        work = np.empty(C, dt)
        for r in range(n):
            zr = zc[r]
            mxc, lgc = log_softmax_parts(zr, cc, skip_class, scratch, work)
            for k in range(C):
                st = cls_start[k]
                ne = cls_start[k + 1] - st
                if k == skip_class:
                    out[r, skip] = -np.inf
                    continue
                lpc = zr[k] - mxc - lgc
                jskip = skip - st if st <= skip < st + ne else -1
                mw, lw = class_word_parts(U, c, cls_start, k, hh[r], zw, jskip)
                for j in range(ne):
                    out[r, st + j] = lpc + (zw[j] - mw - lw) if j != jskip else -np.inf
