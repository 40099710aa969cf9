"""The float32/float64 arithmetic of the FFNN kernels (see ``lmtools.kernels.ffnn`` for the model
and the parameter layout): activations, the hidden layer's forward pass, the vectorized exp, and the
softmax pieces shared by training, scoring and the next-word distribution. No I/O here."""

import numpy as np
from numba import njit, prange

from lmtools.kernels.ffnn_blas import pgemm

# No fast-math flags: with them (reassociation, FMA contraction, reciprocals...) LLVM may round
# differently depending on where a function is compiled (standalone, or linked into its caller),
# and a training run whose kernels were just compiled gave other bits (~1e-7) than one whose
# kernels came from numba's on-disk cache. IEEE semantics make every compilation of a kernel
# compute the same numbers, so a seed gives byte-identical models, cold cache or warm. (The
# hand-vectorized loops -- polynomial exp, eight running maxima -- still vectorize; measured cost:
# none for the softmax layer, about 5-10% of the class layer's small share.)
FASTMATH = False

ACT_TANH, ACT_SIGMOID, ACT_RELU = 0, 1, 2
ACTIVATIONS = {"tanh": ACT_TANH, "sigmoid": ACT_SIGMOID, "relu": ACT_RELU}
U_VH, U_HV = 0, 1
# <s> (id 1) is never predicted: every softmax leaves its output row out (p(<s>|h) = 0, the other
# words sum to one), in training, scoring and the next-word distribution. For the exact softmax
# the row is the id; for the class layer the callers pass its row in class order (``bos``).
BOS_ROW = 1

# ----------------------------------------------------------------------------------------------
# Forward pieces


@njit(cache=True, fastmath=FASTMATH)
def gather_concat(E, X, rows, e):
    """``e[r] = [E[X[rows[r], 0]]; ...; E[X[rows[r], m-1]]]`` for r < len(rows) (in place)."""
    d = E.shape[1]
    m = X.shape[1]
    for r in range(rows.shape[0]):
        i = rows[r]
        for k in range(m):
            w = X[i, k]
            for j in range(d):
                e[r, k * d + j] = E[w, j]


_TANH_SMALL = np.float32(0.0625)
_THIRD = np.float32(1.0 / 3.0)
_TWO15 = np.float32(2.0 / 15.0)
_TWO = np.float32(2.0)


@njit(cache=True, fastmath=FASTMATH)
def _act_row32(x, act, scratch):
    # tanh or sigmoid of a float32 row in place, vectorizable: both from e = exp(-k|x|) computed
    # with exp_shifted (|relative error| < 1e-6 for tanh, < 3e-7 for sigmoid)
    n = x.shape[0]
    t = scratch[n:2 * n].view(np.float32)
    for j in range(n):
        v = x[j]
        a = v if v > 0 else -v
        t[j] = -_TWO * a if act == ACT_TANH else -a
    exp_shifted(t, 0.0, scratch)
    for j in range(n):
        v = x[j]
        e = t[j]
        if act == ACT_TANH:
            big = (_F1 - e) / (_F1 + e)
            v2 = v * v
            small = v * (_F1 - v2 * (_THIRD - v2 * _TWO15))
            r = big if v > 0 else -big
            x[j] = small if (v < _TANH_SMALL and v > -_TANH_SMALL) else r
        else:
            p = _F1 / (_F1 + e)
            x[j] = p if v >= 0 else e * p


@njit(cache=True, fastmath=FASTMATH)
def _bias_act(a, b, act):
    # h = act(a + b), in place
    if a.itemsize == 4 and act != ACT_RELU:
        scratch = np.empty(2 * a.shape[1], np.int32)
        for r in range(a.shape[0]):
            ar = a[r]
            for j in range(a.shape[1]):
                ar[j] += b[j]
            _act_row32(ar, act, scratch)
        return
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            v = a[r, j] + b[j]
            if act == ACT_TANH:
                v = np.tanh(v)
            elif act == ACT_SIGMOID:
                v = 1.0 / (1.0 + np.exp(-v))
            else:
                v = v if v > 0.0 else 0.0
            a[r, j] = v


@njit(cache=True, fastmath=FASTMATH)
def act_backward(h, dh, act):
    # dh <- dh * act'(a), written in terms of h = act(a)
    for r in range(h.shape[0]):
        for j in range(h.shape[1]):
            v = h[r, j]
            if act == ACT_TANH:
                dh[r, j] *= 1.0 - v * v
            elif act == ACT_SIGMOID:
                dh[r, j] *= v * (1.0 - v)
            elif v <= 0.0:
                dh[r, j] = 0.0


@njit(cache=True, parallel=True)
def _gather_bias_act_split(E, X, rows, e, h, b, act, stage, parts):
    # stage 0: gather_concat, stage 1: _bias_act, on ``parts`` row blocks side by side
    n = rows.shape[0]
    for p in prange(parts):
        lo = n * p // parts
        hi = n * (p + 1) // parts
        if stage == 0:
            gather_concat(E, X, rows[lo:hi], e[lo:hi])
        else:
            _bias_act(h[lo:hi], b, act)


@njit(cache=True, fastmath=FASTMATH)
def hidden_forward(P, X, rows, e, h, me, mh, act, parts=1):
    # P: Params. e = gather(E), dropout; h = act(e @ Wt + b); hd = h * mh (returned). parts > 1:
    # the work is split in row blocks over numba's threads (BLAS on one thread, see pgemm)
    if parts > 1:
        _gather_bias_act_split(P.E, X, rows, e, h, P.b, act, 0, parts)
    else:
        gather_concat(P.E, X, rows, e)
    if me.shape[0] > 0:
        e *= me
    pgemm(1.0, e, P.Wt, 0.0, h, False, False, parts)
    if parts > 1:
        _gather_bias_act_split(P.E, X, rows, e, h, P.b, act, 1, parts)
    else:
        _bias_act(h, P.b, act)
    if mh.shape[0] > 0:
        return h * mh
    return h


@njit(cache=True, fastmath=FASTMATH)
def output_logits(U, hd, z, u_layout):
    # z = hd @ U^T  (U as (V, H)) or hd @ U (U as (H, V))
    if u_layout == U_VH:
        np.dot(hd, U.T, z)
    else:
        np.dot(hd, U, z)


_LOG2E = np.float32(1.4426950408889634)
_LN2HI = np.float32(0.693359375)
_LN2LO = np.float32(-2.12194440e-4)
_EXP_MIN = np.float32(-87.0)
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_F2 = np.float32(1.0 / 2.0)
_F3 = np.float32(1.0 / 6.0)
_F4 = np.float32(1.0 / 24.0)
_F5 = np.float32(1.0 / 120.0)
_F6 = np.float32(1.0 / 720.0)
_HALF = np.float32(0.5)


@njit(cache=True, fastmath=FASTMATH)
def exp_shifted(x, mx, scratch, skip=-1):
    """``x[j] <- exp(x[j] - mx)`` in place (all x[j] <= mx but x[skip]), returning the sum.

    float32 rows use a polynomial exp that the compiler vectorizes (|relative error| < 2e-7:
    range reduction to [-ln2/2, ln2/2], degree-6 Taylor, exponent bits built in ``scratch``
    (int32, at least len(x)), flushing below e^-87 to that value); float64 rows use np.exp.
    ``skip`` >= 0: that entry is a word that is never predicted (``<s>``): it becomes exactly 0
    and stays out of the sum.
    """
    n = x.shape[0]
    total = 0.0
    if x.itemsize == 8:
        for j in range(n):
            v = 0.0 if j == skip else np.exp(x[j] - mx)
            x[j] = v
            total += v
        return total
    si = scratch[:n]
    sf = si.view(np.float32)
    m32 = np.float32(mx)
    for j in range(n):
        t = np.float32(x[j] - m32)
        t = t if t > _EXP_MIN else _EXP_MIN
        t = t if t < _F0 else _F0  # (only x[skip] can lie above mx)
        k = np.floor(t * _LOG2E + _HALF)
        f = t - k * _LN2HI - k * _LN2LO
        p = _F1 + f * (_F1 + f * (_F2 + f * (_F3 + f * (_F4 + f * (_F5 + f * _F6)))))
        si[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
        x[j] = p
    acc = np.float32(0.0)
    for j in range(n):
        v = x[j] * sf[j]
        v = _F0 if j == skip else v
        x[j] = v
        acc += v
    return np.float64(acc)


@njit(cache=True, fastmath=FASTMATH)
def _max_without(x, skip, mx):
    """max(x) without x[skip], given ``mx`` = max(x) (skip < 0: ``mx``)."""
    if skip < 0 or x[skip] < mx:
        return mx
    m = -np.inf
    for j in range(x.shape[0]):
        if j != skip and x[j] > m:
            m = x[j]
    return m


@njit(cache=True)
def bos_row(bos, cls, V):
    """Output row of ``<s>`` (never predicted): ``bos`` when given (>= 0), else its id for the exact
    softmax (rows are word ids) and none (-1) for the class layer (rows in class order)."""
    if bos >= 0:
        return bos
    if cls.shape[0] == 0 and V > BOS_ROW:
        return BOS_ROW
    return -1


@njit(cache=True)
def bos_class(cls, cls_start, row):
    """The class of output row ``row`` when it is the only word of its class (so the class itself
    must get p = 0), else -1."""
    if row < 0 or cls.shape[0] == 0:
        return -1
    k = cls[row]
    return k if cls_start[k + 1] - cls_start[k] == 1 else -1


@njit(cache=True, fastmath=FASTMATH)
def add_bias_max(x, c):
    """``x += c`` in place; returns max(x). Eight running maxima, so the compiler vectorizes it."""
    n = x.shape[0]
    for j in range(n):
        x[j] += c[j]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x[0]
    nb = n // 8 * 8
    for j in range(0, nb, 8):
        m0 = x[j] if x[j] > m0 else m0
        m1 = x[j + 1] if x[j + 1] > m1 else m1
        m2 = x[j + 2] if x[j + 2] > m2 else m2
        m3 = x[j + 3] if x[j + 3] > m3 else m3
        m4 = x[j + 4] if x[j + 4] > m4 else m4
        m5 = x[j + 5] if x[j + 5] > m5 else m5
        m6 = x[j + 6] if x[j + 6] > m6 else m6
        m7 = x[j + 7] if x[j + 7] > m7 else m7
    mx = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for j in range(nb, n):
        mx = max(mx, x[j])
    return mx


@njit(cache=True, fastmath=FASTMATH)
def softmax_xent(z, c, y, scale, loss, skip=-1):
    """Fused softmax, loss and output gradient, one row per example (in place); column ``skip``
    (>= 0) is left out of the softmax (p = 0, gradient 0).

    Parameters
    ----------
    z : float[B, V]
        Logits without bias on entry; ``scale * (softmax(z + c) - onehot(y))`` on return.
    c : float[V]
        Output bias.
    y : int32[B]
        Targets.
    scale : float
        Gradient scale (1/B for a mean over the batch).
    loss : float64[B]
        Output: ``-ln softmax(z + c)[y]`` per row.
    """
    V = z.shape[1]
    scratch = np.empty(V, np.int32)
    for r in range(z.shape[0]):
        zr = z[r]
        mx = _max_without(zr, skip, add_bias_max(zr, c))
        t = y[r]
        zt = zr[t]
        s = exp_shifted(zr, mx, scratch, skip)
        loss[r] = np.log(s) + mx - zt
        inv = zr.dtype.type(scale / s)
        for j in range(V):
            zr[j] *= inv
        zr[t] -= scale


@njit(cache=True, parallel=True)
def softmax_xent_split(z, c, y, scale, loss, parts, skip=-1):
    # softmax_xent on ``parts`` row blocks side by side
    n = z.shape[0]
    for p in prange(parts):
        lo = n * p // parts
        hi = n * (p + 1) // parts
        softmax_xent(z[lo:hi], c, y[lo:hi], scale, loss[lo:hi], skip)


@njit(cache=True, fastmath=FASTMATH)
def log_softmax_parts(zr, c, skip, scratch, work):
    """``zr += c``; returns ``(mx, lg)`` with ``ln softmax(zr)[j] = zr[j] - mx - lg`` for every j but
    ``skip`` (>= 0: left out). The one normalizer of the FFNN on the CPU: scoring (``log_softmax_at``)
    and the next-word distribution (``next_word_logprobs``, which sampling draws from) evaluate that
    same expression, so a word's log-probability has the same bits whichever asks.
    ``work`` (at least len(zr)) receives the exponentials; ``scratch`` as for ``exp_shifted``."""
    mx = _max_without(zr, skip, add_bias_max(zr, c))
    n = zr.shape[0]
    w = work[:n]
    for j in range(n):
        w[j] = zr[j]
    return mx, np.log(exp_shifted(w, mx, scratch, skip))


@njit(cache=True, fastmath=FASTMATH)
def log_softmax_at(z, c, y, out, skip=-1):
    """``out[r] = ln softmax(z[r] + c)[y[r]]`` (``z += c``), column ``skip`` (>= 0) left out."""
    V = z.shape[1]
    scratch = np.empty(V, np.int32)
    work = np.empty(V, z.dtype)
    for r in range(z.shape[0]):
        zr = z[r]
        mx, lg = log_softmax_parts(zr, c, skip, scratch, work)
        out[r] = zr[y[r]] - mx - lg


@njit(cache=True, fastmath=FASTMATH)
def class_word_parts(U, c, cls_start, k, hd_r, zw, jskip):
    """The words of class k: ``zw[j] = U[s+j] . hd_r + c[s+j]``; returns ``(mw, lg)`` with
    ``ln p(word j | class k) = zw[j] - mw - lg`` (j = ``jskip`` >= 0 left out). Shared by scoring and
    the next-word distribution, as ``log_softmax_parts``."""
    ne = cls_start[k + 1] - cls_start[k]
    mw = _max_without(zw[:ne], jskip, _class_words(U, c, cls_start, k, hd_r, zw))
    tot = 0.0
    for j in range(ne):
        if j != jskip:
            tot += np.exp(zw[j] - mw)
    return mw, np.log(tot)


@njit(cache=True, fastmath=FASTMATH)
def _class_words(U, c, cls_start, k, hd_r, zw):
    # zw[j] = U[s+j] . hd_r + c[s+j] for the words of class k (U as (V, H)); returns the max
    s = cls_start[k]
    e = cls_start[k + 1]
    H = hd_r.shape[0]
    mx = -np.inf
    for j in range(e - s):
        acc = c[s + j]
        for q in range(H):
            acc += U[s + j, q] * hd_r[q]
        zw[j] = acc
        if acc > mx:
            mx = acc
    return mx
