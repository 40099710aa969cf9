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

The parameters travel as one tuple ``P = (E, Wt, b, U, c, Uc, cc)``; gradients ``G``, and the
optimizer's state ``S1``, ``S2`` are tuples of the same shapes (``S1``/``S2`` entries are empty
arrays when an optimizer does not use them). All GEMMs go to BLAS (scipy's): ``np.dot`` on
contiguous arrays, or ``gemm`` where plain SGD folds the update into the gradient GEMM. With
``parts`` > 1 (training, BLAS set to one thread by the caller) the products, the softmax, the bias
and dense optimizer updates and the class layer's word loops run in blocks on numba's threads;
each block's arithmetic is fixed and compiled with IEEE semantics (``FASTMATH``), so a seed
reproduces a run bit for bit for a given thread count, whether the kernels were just compiled or
loaded from numba's cache. No I/O here.
"""

import numpy as np
from numba import njit, prange, types
from numba.np.linalg import _BLAS

# numba's own BLAS entry (scipy's sgemm/dgemm), linked by symbol name, so cached code stays valid:
# unlike np.dot it takes alpha and beta, which lets plain SGD update a weight matrix inside the
# gradient GEMM (W <- beta W - lr X^T Y) instead of writing a gradient and reading it back.
try:
    _BLAS()  # numba's check that scipy's BLAS is there (np.dot needs it too)
except ImportError:  # reported when a kernel that needs BLAS is compiled or run
    pass
_xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp,  # kind, transa, transb, m, n, k
    types.voidptr, types.voidptr, types.intp, types.voidptr, types.intp,  # alpha, a, lda, b, ldb
    types.voidptr, types.voidptr, types.intp))  # beta, c, ldc

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
OPT_SGD, OPT_MOMENTUM, OPT_ADAGRAD, OPT_ADAM = 0, 1, 2, 3
OPTIMIZERS = {"sgd": OPT_SGD, "momentum": OPT_MOMENTUM, "adagrad": OPT_ADAGRAD, "adam": OPT_ADAM}
U_VH, U_HV = 0, 1
# <s> (id 1) is never predicted: every softmax leaves its output row out (p(<s>|h) = 0, the other
# words sum to one), in training, scoring and the next-word distribution. For the exact softmax
# the row is the id; for the class layer the callers pass its row in class order (``bos``).
BOS_ROW = 1

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


@njit(cache=True)
def gemm(alpha, A, B, beta, C, trans_a, trans_b):
    """``C <- alpha op(A) @ op(B) + beta C`` on row-major arrays, through BLAS.

    ``op(X)`` is X or X^T (``trans_*``); A, B and C share their dtype (float32 or float64). Rows
    may be strided (a column slice of a larger array) but each row must be contiguous.
    """
    m = C.shape[0]
    n = C.shape[1]
    k = A.shape[0] if trans_a else A.shape[1]
    if (B.shape[1] if trans_b else B.shape[0]) != k or (A.shape[1] if trans_a else A.shape[0]) != m \
            or (B.shape[0] if trans_b else B.shape[1]) != n:
        raise ValueError("gemm: shapes do not agree")
    sz = C.itemsize
    if (A.shape[1] > 1 and A.strides[1] != sz) or (B.shape[1] > 1 and B.strides[1] != sz) \
            or (n > 1 and C.strides[1] != sz):
        raise ValueError("gemm: rows must be contiguous")
    if m == 0 or n == 0:
        return
    al = np.empty(1, C.dtype)
    al[0] = alpha
    be = np.empty(1, C.dtype)
    be[0] = beta
    kind = np.int8(100) if sz == 8 else np.int8(115)  # 'd' or 's'
    tb = np.int8(116) if trans_b else np.int8(110)  # 't' or 'n'
    ta = np.int8(116) if trans_a else np.int8(110)
    lda = max(A.strides[0] // sz, A.shape[1], 1)
    ldb = max(B.strides[0] // sz, B.shape[1], 1)
    ldc = max(C.strides[0] // sz, n, 1)
    # row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T
    _xxgemm(kind, tb, ta, n, m, k, al.ctypes, B.ctypes, ldb, A.ctypes, lda, be.ctypes, C.ctypes, ldc)


@njit(cache=True, parallel=True)
def _gemm_split(alpha, A, B, beta, C, trans_a, trans_b, parts):
    # blocks of C's rows or columns (whichever dimension is longer), one BLAS call each
    m = C.shape[0]
    n = C.shape[1]
    if m >= n:
        for p in prange(parts):
            lo = m * p // parts
            hi = m * (p + 1) // parts
            gemm(alpha, A[:, lo:hi] if trans_a else A[lo:hi], B, beta, C[lo:hi], trans_a, trans_b)
    else:
        for p in prange(parts):
            lo = n * p // parts
            hi = n * (p + 1) // parts
            gemm(alpha, A, B[lo:hi] if trans_b else B[:, lo:hi], beta, C[:, lo:hi], trans_a, trans_b)


@njit(cache=True)
def pgemm(alpha, A, B, beta, C, trans_a, trans_b, parts):
    """``gemm`` with C split in ``parts`` blocks (of rows or columns) run on numba's threads.

    For BLAS set to one thread (``lmtools.nn.blas``): the minibatch GEMMs (128 rows against a
    400 x 200 matrix) gain more from single-threaded calls side by side than from BLAS's own
    threads, and numba's threads stay free for the loops around them. ``parts`` <= 1 is ``gemm``.
    """
    if parts <= 1 or max(C.shape[0], C.shape[1]) < 2 * parts:
        gemm(alpha, A, B, beta, C, trans_a, trans_b)
    else:
        _gemm_split(alpha, A, B, beta, C, trans_a, trans_b, parts)


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
def _act_backward(h, dh, act):
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
def _hidden_forward(P, X, rows, e, h, me, mh, act, parts=1):
    # e = gather(E), dropout; h = act(e @ Wt + b); hd = h * mh (returned). parts > 1: the work is
    # split in row blocks over numba's threads (BLAS on one thread, see pgemm)
    if parts > 1:
        _gather_bias_act_split(P[0], X, rows, e, h, P[2], act, 0, parts)
    else:
        gather_concat(P[0], X, rows, e)
    if me.shape[0] > 0:
        e *= me
    pgemm(1.0, e, P[1], 0.0, h, False, False, parts)
    if parts > 1:
        _gather_bias_act_split(P[0], X, rows, e, h, P[2], act, 1, parts)
    else:
        _bias_act(h, P[2], act)
    if mh.shape[0] > 0:
        return h * mh
    return h


@njit(cache=True, fastmath=FASTMATH)
def _output_logits(U, hd, z, u_layout):
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
def _bos_row(bos, cls, V):
    """Output row of ``<s>`` (never predicted): ``bos`` when given (>= 0), else its id for the exact
    softmax (rows are word ids) and none (-1) for the class layer (rows in class order)."""
    if bos >= 0:
        return bos
    if cls.shape[0] == 0 and V > BOS_ROW:
        return BOS_ROW
    return -1


@njit(cache=True)
def _bos_class(cls, cls_start, row):
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
def _softmax_xent_split(z, c, y, scale, loss, parts, skip=-1):
    # softmax_xent on ``parts`` row blocks side by side
    n = z.shape[0]
    for p in prange(parts):
        lo = n * p // parts
        hi = n * (p + 1) // parts
        softmax_xent(z[lo:hi], c, y[lo:hi], scale, loss[lo:hi], skip)


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
def forward_backward(P, G, X, Y, rows, bufs, me, mh, act, u_layout, cls, cls_start, gE_rows, mark, direct_lr=0.0,
                     l2=0.0, parts=1, bos=-1):
    """Loss and gradients of one minibatch (mean loss over its examples).

    Parameters
    ----------
    P : tuple
        ``(E, Wt, b, U, c, Uc, cc)`` (see the module docstring).
    G : tuple
        Gradients, same shapes as P. Dense ones are overwritten; ``G[0]`` (for E) is accumulated
        into only at the rows listed in ``gE_rows`` (sparse: the caller zeroes them after use);
        with the class layer ``G[3]``, ``G[4]`` are accumulated into at the rows of the classes met
        (``mark``ed), likewise sparse.
    X, Y : int32[N, m], int32[N]
        All examples; ``rows`` (int64[B]) picks this minibatch.
    bufs : tuple
        Work arrays ``(e (B, m*d), h (B, H), z (B, V or C), dh (B, H), de (B, m*d), lossv (B,),
        zw (unused here), gw (B, max class size) or (0, 1))``, B at least len(rows).
    me, mh : float[B, m*d], float[B, H]
        Dropout masks, or arrays with 0 rows for no dropout.
    act, u_layout : int
        Activation code, U layout code.
    cls, cls_start : int32[V], int32[C+1]
        Class of each word and class row ranges (class layer), or empty arrays (exact softmax).
    gE_rows : int64[V + 1]
        Output: ``gE_rows[0]`` = n, then the n distinct E rows touched.
    mark : int8[V + C]
        Zero on entry and on return (scratch for the distinct rows and classes).
    direct_lr, l2 : float
        Plain SGD: when ``direct_lr`` > 0 every parameter takes its step here, ``p -= direct_lr *
        (gradient + l2 p)`` (no l2 on biases; E and the class-layer word rows only where used,
        as in ``apply_update``), each right after the gradient that needs its old value: weight
        matrices inside the gradient GEMM (alpha = -lr, beta = 1 - lr l2), and nothing goes
        through ``G``. The result equals ``apply_update``'s SGD step; it saves a write and a read
        of every gradient. (``gw`` holds the class layer's per-example word gradients.)
    parts : int
        Row blocks of the hidden and class-layer GEMMs (see ``pgemm``).
    bos : int
        Output row of ``<s>``, left out of the softmax (-1: see ``_bos_row``; the class layer's
        callers pass it).

    Returns
    -------
    float
        Sum over the batch of ``-ln p(y|context)``.
    """
    E, Wt, b, U, c, Uc, cc = P
    gE, gWt, gb, gU, gc, gUc, gcc = G
    n = rows.shape[0]
    if n > bufs[0].shape[0] or (me.shape[0] > 0 and n > me.shape[0]) or (mh.shape[0] > 0 and n > mh.shape[0]):
        raise ValueError("minibatch larger than the work buffers")
    e = bufs[0][:n]
    h = bufs[1][:n]
    dh = bufs[3][:n]
    de = bufs[4][:n]
    lossv = bufs[5][:n]
    med = me[:n] if me.shape[0] > 0 else me
    mhd = mh[:n] if mh.shape[0] > 0 else mh
    hd = _hidden_forward(P, X, rows, e, h, med, mhd, act, parts)
    y = np.empty(n, np.int32)
    for r in range(n):
        y[r] = Y[rows[r]]
    scale = 1.0 / n
    direct = direct_lr > 0.0
    beta = 1.0 - direct_lr * l2
    skip = _bos_row(bos, cls, c.shape[0])
    if cls.shape[0] == 0:
        z = bufs[2][:n]
        u_t = u_layout == U_VH  # U is (V, H): z = hd U^T
        pgemm(1.0, hd, U, 0.0, z, False, u_t, parts)
        if parts > 1:
            _softmax_xent_split(z, c, y, scale, lossv, parts, skip)
        else:
            softmax_xent(z, c, y, scale, lossv, skip)
        # output-layer gradients; z now holds dL/dz
        pgemm(1.0, z, U, 0.0, dh, False, not u_t, parts)  # dh through the old U
        if u_t:  # U (V, H): dz^T hd
            _layer_step(z, hd, z, U, gU, c, gc, direct_lr, beta, parts, parts)
        else:  # U (H, V): hd^T dz
            _layer_step(hd, z, z, U, gU, c, gc, direct_lr, beta, parts, parts)
    else:
        zc = bufs[2][:n]  # (B, C) in class mode
        pgemm(1.0, hd, Uc, 0.0, zc, False, True, parts)
        yc = np.empty(n, np.int32)
        for r in range(n):
            yc[r] = cls[y[r]]
        softmax_xent(zc, cc, yc, scale, lossv, _bos_class(cls, cls_start, skip))
        pgemm(1.0, zc, Uc, 0.0, dh, False, False, parts)  # dh through the old Uc
        _layer_step(zc, hd, zc, Uc, gUc, cc, gcc, direct_lr, beta, 1, parts)
        _class_words_step(U, c, gU, gc, cls_start, y, yc, hd, dh, bufs[7][:n], lossv, scale, mark, direct_lr, beta,
                          skip)
    # hidden layer
    if mhd.shape[0] > 0:
        dh *= mhd
    _act_backward(h, dh, act)
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


@njit(cache=True, fastmath=FASTMATH)
def train_batches(P, G, S1, S2, X, Y, order, lo, hi, batch, bufs, me, mh, keep_e, keep_h, rng,
                  act, u_layout, cls, cls_start, gE_rows, mark, hp, t0, losses, parts=1, bos=-1):
    """Run minibatches ``order[lo:hi]`` in steps of ``batch``: forward, backward, update.

    Parameters
    ----------
    order : int64[N]
        The epoch's permutation of example indices.
    lo, hi, batch : int
        Range of ``order`` to run and minibatch size.
    me, mh : float[batch, m*d], float[batch, H]
        Dropout mask buffers (0 rows: no dropout); filled per minibatch from ``rng``.
    keep_e, keep_h : float
        Keep probabilities of the embedding and hidden layers.
    rng : uint64[1]
        Dropout random state (advanced).
    t0 : int
        Number of optimizer steps taken before this call.
    losses : float64[n_batches]
        Output: summed loss of each minibatch (NaN or inf stops the run at that minibatch).
    parts : int
        Split each hidden-layer and class-layer GEMM into this many row blocks on numba's threads
        (``pgemm``; for BLAS set to one thread), 1: plain BLAS calls.
    bos : int
        Output row of ``<s>`` (see ``forward_backward``).

    Returns
    -------
    int
        Number of minibatches run (fewer than asked when a loss was not finite).
    """
    nb = 0
    for s in range(lo, hi, batch):
        rows = order[s:min(s + batch, hi)]
        n = rows.shape[0]
        if me.shape[0] > 0:
            fill_dropout_mask(me[:n], keep_e, rng)
        if mh.shape[0] > 0:
            fill_dropout_mask(mh[:n], keep_h, rng)
        direct = hp[1] if int(hp[0]) == OPT_SGD else 0.0  # plain SGD steps inside the backward pass
        loss = forward_backward(P, G, X, Y, rows, bufs, me, mh, act, u_layout, cls, cls_start, gE_rows, mark,
                                direct, hp[3], parts, bos)
        losses[nb] = loss
        nb += 1
        if not np.isfinite(loss):
            return nb  # the caller stops and restores its last good parameters
        if direct == 0.0:
            apply_update(P, G, S1, S2, gE_rows, cls_start, mark, hp, t0 + nb, parts)
    return nb


# ----------------------------------------------------------------------------------------------
# Scoring


@njit(cache=True, fastmath=FASTMATH)
def score_examples(P, X, Y, act, u_layout, cls, cls_start, batch, out, bos=-1):
    """Natural-log probability ``ln p(Y[i] | X[i])`` of every example (no dropout).

    Parameters
    ----------
    P : tuple
        Parameters (see the module docstring).
    X, Y : int32[N, m], int32[N]
        Examples.
    act, u_layout : int
        Activation and U layout codes.
    cls, cls_start : int32[V], int32[C+1]
        Class layer (empty arrays: exact softmax).
    batch : int
        Examples per GEMM.
    out : float64[N]
        Output.
    bos : int
        Output row of ``<s>``, left out of the softmax (see ``forward_backward``).
    """
    E, Wt, b, U, c, Uc, cc = P
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
    skip = _bos_row(bos, cls, V)
    skip_class = _bos_class(cls, cls_start, skip)
    for s in range(0, N, batch):
        n = min(batch, N - s)
        rows = np.arange(s, s + n)
        hh = _hidden_forward(P, X, rows, e[:n], h[:n], nomask, nomask, act)
        y = Y[s:s + n]
        o = out[s:s + n]
        if cls.shape[0] == 0:
            zz = z[:n]
            _output_logits(U, hh, zz, u_layout)
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
def next_word_logprobs(P, X, act, u_layout, cls, cls_start, out, bos=-1):
    """Full next-word distribution ``out[i, w] = ln p(w | X[i])`` for every word w (in place).

    Parameters
    ----------
    P : tuple
        Parameters.
    X : int32[B, m]
        Contexts.
    act, u_layout : int
        Activation and U layout codes.
    cls, cls_start : int32[V], int32[C+1]
        Class layer, or empty arrays.
    out : float64[B, V]
        Output, in the kernel's word numbering (class order for the class layer).
    bos : int
        Output row of ``<s>`` (see ``forward_backward``): ln p = -inf there, the other words sum to 1.
    """
    E, Wt, b, U, c, Uc, cc = P
    n = X.shape[0]
    dt = E.dtype
    e = np.empty((n, Wt.shape[0]), dt)
    h = np.empty((n, Wt.shape[1]), dt)
    nomask = np.empty((0, 0), dt)
    hh = _hidden_forward(P, X, np.arange(n), e, h, nomask, nomask, act)
    V = c.shape[0]
    skip = _bos_row(bos, cls, V)
    # every log-probability as score_examples computes it (log_softmax_parts, class_word_parts)
    if cls.shape[0] == 0:
        z = np.empty((n, V), dt)
        _output_logits(U, hh, z, u_layout)
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
        skip_class = _bos_class(cls, cls_start, skip)
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
