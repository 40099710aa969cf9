"""Optimizer steps of the FFNN kernels (SGD, momentum, Adagrad, Adam), in place on the parameter
tuples of ``lmtools.kernels.ffnn``; sparse rows for E and the class layer's words. No I/O here."""

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
def apply_update(P, G, S1, S2, gE_rows, cls_start, mark, hp, t, parts=1):
    """One optimizer step on every parameter (in place); sparse rows for E (and class-layer U, c).

    Parameters
    ----------
    P, G, S1, S2 : tuple
        Parameters, gradients and optimizer state (see ``forward_backward``).
    gE_rows : int64[V + 1]
        Count then ids of the E rows with a gradient (from ``forward_backward``).
    cls_start : int32[C + 1]
        Class row ranges, or an empty array for the exact softmax.
    mark : int8[V + C]
        Classes met in this minibatch at ``V + k`` (class layer); cleared here.
    hp : float64[6]
        ``(opt, lr, momentum, l2, beta1, beta2)``; eps is fixed (1e-8 Adam, 1e-10 Adagrad).
    t : int
        Step number from 1 (Adam's bias correction).
    parts : int
        Update the large dense matrices in this many blocks on numba's threads.
    """
    opt = int(hp[0])
    lr = hp[1]
    mom = hp[2]
    l2 = hp[3]
    b1 = hp[4]
    b2 = hp[5]
    eps = 1e-8 if opt == OPT_ADAM else 1e-10
    _update_rows(P[0], G[0], S1[0], S2[0], gE_rows[1:], gE_rows[0], opt, lr, mom, l2, b1, b2, eps, t)
    _update_dense(P[1], G[1], S1[1], S2[1], opt, lr, mom, l2, b1, b2, eps, t, parts)
    _update_dense(P[2], G[2], S1[2], S2[2], opt, lr, mom, 0.0, b1, b2, eps, t)
    if cls_start.shape[0] == 0:
        _update_dense(P[3], G[3], S1[3], S2[3], opt, lr, mom, l2, b1, b2, eps, t, parts)
        _update_dense(P[4], G[4], S1[4], S2[4], opt, lr, mom, 0.0, b1, b2, eps, t)
    else:
        _update_dense(P[5], G[5], S1[5], S2[5], opt, lr, mom, l2, b1, b2, eps, t, parts)
        _update_dense(P[6], G[6], S1[6], S2[6], opt, lr, mom, 0.0, b1, b2, eps, t)
        V = P[4].shape[0]
        C = P[6].shape[0]
        c2 = P[4].reshape(V, 1)
        gc2 = G[4].reshape(V, 1)
        s1c = S1[4].reshape(S1[4].shape[0], 1)
        s2c = S2[4].reshape(S2[4].shape[0], 1)
        rows = np.empty(V, np.int64)
        nr = 0
        for k in range(C):
            if mark[V + k] != 0:
                mark[V + k] = 0
                for w in range(cls_start[k], cls_start[k + 1]):
                    rows[nr] = w
                    nr += 1
        _update_rows(P[3], G[3], S1[3], S2[3], rows, nr, opt, lr, mom, l2, b1, b2, eps, t)
        _update_rows(c2, gc2, s1c, s2c, rows, nr, opt, lr, mom, 0.0, b1, b2, eps, t)
