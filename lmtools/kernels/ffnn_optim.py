"""Optimizer steps of the FFNN kernels (SGD, momentum, Adagrad, Adam), in place on the parameters
(``Params``, ``OptState``: ``lmtools.kernels.ffnn_types``); sparse rows for E and the class layer's
words. No I/O here."""

import numpy as np
from numba import njit, prange

from lmtools.kernels.ffnn_math import FASTMATH

OPT_SGD, OPT_MOMENTUM, OPT_ADAGRAD, OPT_ADAM = 0, 1, 2, 3
OPTIMIZERS = {"sgd": OPT_SGD, "momentum": OPT_MOMENTUM, "adagrad": OPT_ADAGRAD, "adam": OPT_ADAM}

# ----------------------------------------------------------------------------------------------
# Parameter updates (in place)


@njit(cache=True, fastmath=FASTMATH)
def _update_flat(p, g, s1, s2, opt, lr, mom, l2, b1, b2, eps, t):
    # one optimizer step on flat arrays; l2 adds l2 * p to the gradient
    if opt == OPT_SGD:
        for i in range(p.shape[0]):
            p[i] -= lr * (g[i] + l2 * p[i])
    elif opt == OPT_MOMENTUM:
        for i in range(p.shape[0]):
            v = mom * s1[i] - lr * (g[i] + l2 * p[i])
            s1[i] = v
            p[i] += v
    elif opt == OPT_ADAGRAD:
        for i in range(p.shape[0]):
            gi = g[i] + l2 * p[i]
            s1[i] += gi * gi
            p[i] -= lr * gi / (np.sqrt(s1[i]) + eps)
    else:
        c1 = 1.0 / (1.0 - b1 ** t)
        c2 = 1.0 / (1.0 - b2 ** t)
        for i in range(p.shape[0]):
            gi = g[i] + l2 * p[i]
            m1 = b1 * s1[i] + (1.0 - b1) * gi
            m2 = b2 * s2[i] + (1.0 - b2) * gi * gi
            s1[i] = m1
            s2[i] = m2
            p[i] -= lr * (m1 * c1) / (np.sqrt(m2 * c2) + eps)


@njit(cache=True, fastmath=FASTMATH)
def _update_rows(p, g, s1, s2, rows, nrows, opt, lr, mom, l2, b1, b2, eps, t):
    # the same step on the listed rows only (sparse, "lazy" state), then zero those gradient rows
    none = np.empty(0, p.dtype)  # a C-contiguous stand-in keeps every row view contiguous (vectorized)
    for q in range(nrows):
        w = rows[q]
        _update_flat(p[w], g[w], s1[w] if s1.shape[0] > 0 else none, s2[w] if s2.shape[0] > 0 else none,
                     opt, lr, mom, l2, b1, b2, eps, t)
        g[w, :] = 0.0


@njit(cache=True, fastmath=FASTMATH)
def _flat(a):
    return a.reshape(a.size)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _update_flat_split(p, g, s1, s2, opt, lr, mom, l2, b1, b2, eps, t, parts):
    # _update_flat on ``parts`` blocks side by side (every element is independent)
    n = p.shape[0]
    for q in prange(parts):
        lo = n * q // parts
        hi = n * (q + 1) // parts
        _update_flat(p[lo:hi], g[lo:hi], s1[lo:hi] if s1.shape[0] > 0 else s1,
                     s2[lo:hi] if s2.shape[0] > 0 else s2, opt, lr, mom, l2, b1, b2, eps, t)


@njit(cache=True, fastmath=FASTMATH)
def _update_dense(p, g, s1, s2, opt, lr, mom, l2, b1, b2, eps, t, parts=1):
    # large arrays (an output matrix: the optimizer's state makes the step memory-bound) in blocks
    if parts > 1 and p.size >= 65536:
        _update_flat_split(_flat(p), _flat(g), _flat(s1), _flat(s2), opt, lr, mom, l2, b1, b2, eps, t, parts)
    else:
        _update_flat(_flat(p), _flat(g), _flat(s1), _flat(s2), opt, lr, mom, l2, b1, b2, eps, t)


@njit(cache=True, fastmath=FASTMATH)
def apply_update(P, G, S, opts, cls_start, touched, t):
    """One optimizer step on every parameter (in place); sparse rows for E (and class-layer U, c).

    Parameters
    ----------
    P, G : Params
        Parameters and their gradients (see ``forward_backward``).
    S : OptState
        The optimizer's state.
    opts : Options
        The rule (``opts.optimizer``) and its settings; eps is fixed (1e-8 Adam, 1e-10 Adagrad).
        The large dense matrices are updated in ``opts.parts`` blocks on numba's threads.
    cls_start : int32[C + 1]
        Class row ranges, or an empty array for the exact softmax.
    touched : Touched
        The E rows with a gradient (from ``forward_backward``) and the classes met in this minibatch
        (class layer: ``mark[V + k]``); the marks are cleared here.
    t : int
        Step number from 1 (Adam's bias correction).
    """
    opt = opts.optimizer
    lr = opts.lr
    mom = opts.momentum
    l2 = opts.l2
    b1 = opts.beta1
    b2 = opts.beta2
    parts = opts.parts
    S1, S2 = S
    e_rows = touched.e_rows
    mark = touched.mark
    eps = 1e-8 if opt == OPT_ADAM else 1e-10
    _update_rows(P.E, G.E, S1.E, S2.E, e_rows[1:], e_rows[0], opt, lr, mom, l2, b1, b2, eps, t)
    _update_dense(P.Wt, G.Wt, S1.Wt, S2.Wt, opt, lr, mom, l2, b1, b2, eps, t, parts)
    _update_dense(P.b, G.b, S1.b, S2.b, opt, lr, mom, 0.0, b1, b2, eps, t)
    if cls_start.shape[0] == 0:
        _update_dense(P.U, G.U, S1.U, S2.U, opt, lr, mom, l2, b1, b2, eps, t, parts)
        _update_dense(P.c, G.c, S1.c, S2.c, opt, lr, mom, 0.0, b1, b2, eps, t)
    else:
        _update_dense(P.Uc, G.Uc, S1.Uc, S2.Uc, opt, lr, mom, l2, b1, b2, eps, t, parts)
        _update_dense(P.cc, G.cc, S1.cc, S2.cc, opt, lr, mom, 0.0, b1, b2, eps, t)
        V = P.c.shape[0]
        C = P.cc.shape[0]
        c2 = P.c.reshape(V, 1)
        gc2 = G.c.reshape(V, 1)
        s1c = S1.c.reshape(S1.c.shape[0], 1)
        s2c = S2.c.reshape(S2.c.shape[0], 1)
        rows = np.empty(V, np.int64)
        nr = 0
        for k in range(C):
            if mark[V + k] != 0:
                mark[V + k] = 0
                for w in range(cls_start[k], cls_start[k + 1]):
                    rows[nr] = w
                    nr += 1
        _update_rows(P.U, G.U, S1.U, S2.U, rows, nr, opt, lr, mom, l2, b1, b2, eps, t)
        _update_rows(c2, gc2, s1c, s2c, rows, nr, opt, lr, mom, 0.0, b1, b2, eps, t)
