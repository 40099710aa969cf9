"""numba.cuda kernels of the feedforward neural LM: the steps of ``lmtools.kernels.ffnn`` on a GPU.

The same model, layout and arithmetic as the CPU kernels (see that module's docstring):
parameters ``P = (E, Wt, b, U, c, Uc, cc)`` (a ``Params``; the host keeps them as one of device
arrays) with U as (V, H), words in class order for the class-based layer, gradients ``G`` of the
same shapes, the mean loss over a minibatch. One kernel per step of a minibatch:

    gather_embeddings     e = [E[x_1]; ...; E[x_m]] (times the dropout mask)
    gemm                  every matrix product (shared-memory tiles; op(A), op(B) transposed or not)
    bias_activation       h = act(h + b); hd = h * dropout mask
    softmax_xent_rows     fused softmax, loss and output gradient, one block per example
    column_sums           bias gradients
    hidden_backward       dh *= mask * act'(h)
    class_words           the class layer's word softmax and its part of dh, one block per example
    class_rows_grad       gradient of the class rows of U and c (examples grouped by class)
    embedding_grad        gradient of the E rows used (slots grouped by word)
    update_dense/_rows    one optimizer step (SGD, momentum, Adagrad, Adam) on all / listed rows

Every sum runs in a fixed order (no atomics): the examples of a class and the slots of a word
arrive grouped by the host, so a seed reproduces a run on the same GPU. No I/O here.

Under the simulator (``NUMBA_ENABLE_CUDASIM=1``, where every GPU thread is a Python thread) the
tiles and blocks are small; the kernels are the same code with other sizes, and the tests run them
there against the CPU kernels.
"""

import math

import numpy as np
from numba import config, cuda, float32, float64, njit

SIMULATED = bool(config.ENABLE_CUDASIM)
TILE = 4 if SIMULATED else 16  # gemm: TILE x TILE threads per block, each one element of C
ROW_THREADS = 4 if SIMULATED else 128  # threads per example in the row kernels (a power of two)
FLAT_THREADS = 16 if SIMULATED else 256  # threads per block of the elementwise kernels

ACT_TANH, ACT_SIGMOID, ACT_RELU = 0, 1, 2
OPT_SGD, OPT_MOMENTUM, OPT_ADAGRAD, OPT_ADAM = 0, 1, 2, 3


SIDE = 4 if SIMULATED else 16  # 2-D elementwise kernels: SIDE x SIDE threads per block


def blocks(n: int, per_block: int) -> int:
    return max(1, (n + per_block - 1) // per_block)


def on_rows(kernel, n_rows: int, n_cols: int):
    """``kernel`` configured for one thread per element of an n_rows x n_cols array: the 2-D
    kernels here take ``col, row = cuda.grid(2)`` (neighbouring threads, neighbouring columns)."""
    return kernel[(blocks(n_cols, SIDE), blocks(n_rows, SIDE)), (SIDE, SIDE)]


def on_items(kernel, n: int):
    """``kernel`` configured for one thread per item of n (1-D kernels)."""
    return kernel[blocks(n, FLAT_THREADS), FLAT_THREADS]


# ----------------------------------------------------------------------------------------------
# Matrix products

_gemm_kernels = {}


def gemm_kernel(tile: int, dtype):
    """The tiled product kernel for ``tile`` x ``tile`` thread blocks and float32/float64."""
    key = (tile, np.dtype(dtype).name)
    if key in _gemm_kernels:
        return _gemm_kernels[key]
    nbt = float32 if np.dtype(dtype) == np.float32 else float64
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def gemm_tiles(alpha, A, B, beta, C, trans_a, trans_b):
        # C <- alpha op(A) op(B) + beta C; beta == 0 does not read C
        sA = cuda.shared.array((tile, tile), nbt)
        sB = cuda.shared.array((tile, tile), nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * tile + ty
        col = cuda.blockIdx.x * tile + tx
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if trans_a else A.shape[1]
        acc = zero
        for k0 in range(0, K, tile):
            ka = k0 + tx
            if row < M and ka < K:
                sA[ty, tx] = A[ka, row] if trans_a else A[row, ka]
            else:
                sA[ty, tx] = zero
            kb = k0 + ty
            if kb < K and col < N:
                sB[ty, tx] = B[col, kb] if trans_b else B[kb, col]
            else:
                sB[ty, tx] = zero
            cuda.syncthreads()
            for kk in range(tile):
                acc += sA[ty, kk] * sB[kk, tx]
            cuda.syncthreads()
        if row < M and col < N:
            if beta == 0.0:
                C[row, col] = alpha * acc
            else:
                C[row, col] = alpha * acc + beta * C[row, col]

    _gemm_kernels[key] = gemm_tiles
    return gemm_tiles


def gemm(alpha, A, B, beta, C, trans_a=False, trans_b=False, tile=None):
    """``C <- alpha op(A) @ op(B) + beta C`` on device arrays (row-major)."""
    tile = tile or TILE
    M, N = C.shape
    k = gemm_kernel(tile, C.dtype)
    k[(blocks(N, tile), blocks(M, tile)), (tile, tile)](alpha, A, B, beta, C, trans_a, trans_b)


# ----------------------------------------------------------------------------------------------
# Forward


@cuda.jit
def gather_embeddings(E, X, rows, me, e):
    """``e[r, k*d:(k+1)*d] = E[X[rows[r], k]]`` (times ``me[r]`` when it has rows)."""
    col, r = cuda.grid(2)
    d = E.shape[1]
    if r < rows.shape[0] and col < e.shape[1]:
        v = E[X[rows[r], col // d], col % d]
        if me.shape[0] > 0:
            v *= me[r, col]
        e[r, col] = v


@cuda.jit
def targets(Y, rows, cls, y, yc):
    """``y[r] = Y[rows[r]]`` and its class ``yc[r]`` (when ``cls`` is not empty)."""
    r = cuda.grid(1)
    if r < rows.shape[0]:
        w = Y[rows[r]]
        y[r] = w
        if cls.shape[0] > 0:
            yc[r] = cls[w]


@cuda.jit
def bias_activation(h, b, act, mh, hd):
    """``h = act(h + b)`` in place; ``hd = h * mh`` when ``mh`` has rows (``hd`` may be ``h``)."""
    j, r = cuda.grid(2)
    if r < h.shape[0] and j < h.shape[1]:
        v = h[r, j] + b[j]
        if act == ACT_TANH:
            v = math.tanh(v)
        elif act == ACT_SIGMOID:
            v = 1.0 / (1.0 + math.exp(-v))
        elif v < 0:
            v = 0.0
        h[r, j] = v
        if mh.shape[0] > 0:
            hd[r, j] = v * mh[r, j]


@cuda.jit(device=True)
def _block_max(red, t, v):
    # max of v over the block's ROW_THREADS threads (every thread gets it); red: shared scratch
    red[t] = v
    cuda.syncthreads()
    step = ROW_THREADS // 2
    while step > 0:
        if t < step:
            red[t] = max(red[t], red[t + step])
        cuda.syncthreads()
        step //= 2
    r = red[0]
    cuda.syncthreads()  # red may be reused right after
    return r


@cuda.jit(device=True)
def _block_sum(red, t, v):
    # sum of v over the block's ROW_THREADS threads, in a fixed order
    red[t] = v
    cuda.syncthreads()
    step = ROW_THREADS // 2
    while step > 0:
        if t < step:
            red[t] += red[t + step]
        cuda.syncthreads()
        step //= 2
    r = red[0]
    cuda.syncthreads()
    return r


@cuda.jit(device=True)
def _softmax_gradient(x, n, mx, target, scale, red, t, skip):
    # x[:n] holds logits whose max is mx: x <- scale * (softmax(x) - onehot(target)) in place,
    # shared by the block's threads; returns the softmax denominator sum(exp(x - mx)). Entry
    # ``skip`` (>= 0: <s>, never predicted) is left out: p = 0, gradient 0 (as the CPU kernels)
    s = 0.0
    for j in range(t, n, ROW_THREADS):
        v = 0.0 if j == skip else math.exp(x[j] - mx)
        x[j] = v
        s += v
    tot = _block_sum(red, t, s)
    inv = scale / tot
    for j in range(t, n, ROW_THREADS):
        g = x[j] * inv
        if j == target:
            g -= scale
        x[j] = g
    return tot


@cuda.jit
def softmax_xent_rows(z, c, y, scale, loss, add, skip):
    """One block per row: ``loss[r] (+)= -ln softmax(z[r] + c)[y[r]]``, ``z[r]`` <- its gradient
    ``scale * (softmax - onehot(y))`` (``add``: add to loss[r] instead of setting it); column
    ``skip`` (>= 0) is left out of the softmax."""
    red = cuda.shared.array(ROW_THREADS, float64)
    r = cuda.blockIdx.x
    t = cuda.threadIdx.x
    V = z.shape[1]
    mx = -math.inf
    for j in range(t, V, ROW_THREADS):
        v = z[r, j] + c[j]
        z[r, j] = v
        if j != skip:
            mx = max(mx, v)
    mx = _block_max(red, t, mx)
    zt = z[r, y[r]]
    cuda.syncthreads()
    tot = _softmax_gradient(z[r], V, mx, y[r], scale, red, t, skip)
    if t == 0:
        lr = math.log(tot) + mx - zt
        loss[r] = loss[r] + lr if add else lr


@cuda.jit
def class_words(U, c, cls_start, y, yc, hd, dh, gw, loss, scale, skip):
    """One block per example: the word softmax within its class (class layer).

    ``loss[r] += -ln p(y | class, h)``; ``gw[r, j]`` = ``scale * dL/dz_j`` for the class's words;
    ``dh[r] += sum_j gw[r, j] U[class row j]``. Output row ``skip`` (>= 0, <s>) is left out.
    """
    red = cuda.shared.array(ROW_THREADS, float64)
    r = cuda.blockIdx.x
    t = cuda.threadIdx.x
    k = yc[r]
    s = cls_start[k]
    ne = cls_start[k + 1] - s
    H = hd.shape[1]
    jskip = skip - s if s <= skip < s + ne else -1
    mx = -math.inf
    for j in range(t, ne, ROW_THREADS):
        acc = c[s + j]
        for q in range(H):
            acc += U[s + j, q] * hd[r, q]
        gw[r, j] = acc
        if j != jskip:
            mx = max(mx, acc)
    mx = _block_max(red, t, mx)
    ty = y[r] - s
    zt = gw[r, ty]
    cuda.syncthreads()
    tot = _softmax_gradient(gw[r], ne, mx, ty, scale, red, t, jskip)
    if t == 0:
        loss[r] += math.log(tot) + mx - zt
    cuda.syncthreads()
    for q in range(t, H, ROW_THREADS):
        acc = 0.0
        for j in range(ne):
            acc += gw[r, j] * U[s + j, q]
        dh[r, q] += acc


# ----------------------------------------------------------------------------------------------
# Backward


@cuda.jit
def column_sums(z, out):
    """``out[j] = sum_r z[r, j]`` (rows in order)."""
    j = cuda.grid(1)
    if j < z.shape[1]:
        acc = 0.0
        for r in range(z.shape[0]):
            acc += z[r, j]
        out[j] = acc


@cuda.jit
def hidden_backward(h, dh, mh, act):
    """``dh <- dh * mh * act'(a)``, act' written in terms of h = act(a)."""
    j, r = cuda.grid(2)
    if r < h.shape[0] and j < h.shape[1]:
        g = dh[r, j]
        if mh.shape[0] > 0:
            g *= mh[r, j]
        v = h[r, j]
        if act == ACT_TANH:
            g *= 1.0 - v * v
        elif act == ACT_SIGMOID:
            g *= v * (1.0 - v)
        elif v <= 0.0:
            g = 0.0
        dh[r, j] = g


@cuda.jit
def class_rows_grad(cls, cls_start, first, by_class, gw, hd, gU, gc):
    """Gradient of U and c at the rows of the classes met (others untouched).

    ``first``/``by_class``: the minibatch's examples grouped by class (CSR, minibatch order
    within a class); ``gw`` from ``class_words``.
    """
    q, w = cuda.grid(2)
    if w < gU.shape[0] and q < gU.shape[1]:
        k = cls[w]
        a0 = first[k]
        a1 = first[k + 1]
        if a0 == a1:
            return
        j = w - cls_start[k]
        acc = 0.0
        accc = 0.0
        for a in range(a0, a1):
            r = by_class[a]
            g = gw[r, j]
            acc += g * hd[r, q]
            accc += g
        gU[w, q] = acc
        if q == 0:
            gc[w] = accc


@cuda.jit
def embedding_grad(words, word_first, slots, de, me, gE, d):
    """``gE[words[i]] = sum of de's slots of that word`` (times the embedding dropout mask).

    ``slots[word_first[i]:word_first[i+1]]`` are the flat positions ``r * m + k`` where
    ``words[i]`` is context word k of example r (in minibatch order).
    """
    j, i = cuda.grid(2)
    if i < words.shape[0] and j < d:
        m = de.shape[1] // d
        acc = 0.0
        for a in range(word_first[i], word_first[i + 1]):
            sl = slots[a]
            r = sl // m
            col = (sl % m) * d + j
            g = de[r, col]
            if me.shape[0] > 0:
                g *= me[r, col]
            acc += g
        gE[words[i], j] = acc


@cuda.jit
def batch_loss(lossv, n, out, b):
    """``out[b] = sum(lossv[:n])`` (one block)."""
    red = cuda.shared.array(ROW_THREADS, float64)
    t = cuda.threadIdx.x
    s = 0.0
    for r in range(t, n, ROW_THREADS):
        s += lossv[r]
    s = _block_sum(red, t, s)
    if t == 0:
        out[b] = s


# ----------------------------------------------------------------------------------------------
# Parameter updates (the same rules as lmtools.kernels.ffnn.apply_update)


@cuda.jit(device=True)
def _step(p, g, s1, s2, i, opt, lr, mom, l2, b1, b2, eps, c1, c2):
    gi = g[i] + l2 * p[i]
    if opt == OPT_SGD:
        p[i] -= lr * gi
    elif opt == OPT_MOMENTUM:
        v = mom * s1[i] - lr * gi
        s1[i] = v
        p[i] += v
    elif opt == OPT_ADAGRAD:
        s1[i] += gi * gi
        p[i] -= lr * gi / (math.sqrt(s1[i]) + eps)
    else:
        m1 = b1 * s1[i] + (1.0 - b1) * gi
        m2 = b2 * s2[i] + (1.0 - b2) * gi * gi
        s1[i] = m1
        s2[i] = m2
        p[i] -= lr * (m1 * c1) / (math.sqrt(m2 * c2) + eps)


@cuda.jit
def update_dense(p, g, s1, s2, opt, lr, mom, l2, b1, b2, eps, c1, c2):
    """One step on every element of flat arrays (``s1``/``s2`` unused by SGD)."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        _step(p, g, s1, s2, i, opt, lr, mom, l2, b1, b2, eps, c1, c2)


@cuda.jit
def update_rows(p, g, s1, s2, rows, cols, opt, lr, mom, l2, b1, b2, eps, c1, c2):
    """The same step on the listed rows of flat row-major arrays with ``cols`` columns."""
    j, i = cuda.grid(2)
    if i < rows.shape[0] and j < cols:
        _step(p, g, s1, s2, rows[i] * cols + j, opt, lr, mom, l2, b1, b2, eps, c1, c2)


@cuda.jit
def update_class_rows(p, g, s1, s2, cls, first, cols, opt, lr, mom, l2, b1, b2, eps, c1, c2):
    """The same step on the rows (words) of the classes met in the minibatch (``first`` as in
    ``class_rows_grad``), flat row-major arrays with ``cols`` columns."""
    j, w = cuda.grid(2)
    if w < cls.shape[0] and j < cols:
        k = cls[w]
        if first[k] != first[k + 1]:
            _step(p, g, s1, s2, w * cols + j, opt, lr, mom, l2, b1, b2, eps, c1, c2)


# ----------------------------------------------------------------------------------------------
# Host side: what each minibatch of a span needs, grouped so that the GPU sums in a fixed order


@njit(cache=True)
def group_span(X, Y, cls, n_classes, order, lo, hi, batch):
    """For the minibatches ``order[lo:hi]`` (steps of ``batch``), as fixed-size arrays per batch:

    ``words[b, :n_words[b]]`` the distinct context words (ascending), ``word_first[b]`` their
    CSR offsets into ``slots[b]`` (flat positions ``r * m + k``, minibatch order); with the class
    layer (``n_classes`` > 0) ``first[b]`` / ``by_class[b]`` the examples grouped by class.
    """
    m = X.shape[1]
    nb = (hi - lo + batch - 1) // batch
    words = np.zeros((nb, batch * m), np.int32)
    word_first = np.zeros((nb, batch * m + 1), np.int32)
    slots = np.zeros((nb, batch * m), np.int32)
    n_words = np.zeros(nb, np.int64)
    C = max(n_classes, 1)
    first = np.zeros((nb, C + 1), np.int32)
    by_class = np.zeros((nb, batch), np.int32)
    for b in range(nb):
        s0 = lo + b * batch
        n = min(batch, hi - s0)
        keys = np.empty(n * m, np.int64)
        for r in range(n):
            i = order[s0 + r]
            for k in range(m):
                keys[r * m + k] = np.int64(X[i, k]) * (n * m) + r * m + k
        keys.sort()
        nw = 0
        prev = -1
        for a in range(n * m):
            w = keys[a] // (n * m)
            slots[b, a] = keys[a] % (n * m)
            if w != prev:
                words[b, nw] = w
                word_first[b, nw] = a
                nw += 1
                prev = w
        word_first[b, nw] = n * m
        n_words[b] = nw
        if n_classes > 0:
            for r in range(n):
                first[b, cls[Y[order[s0 + r]]] + 1] += 1
            for k in range(C):
                first[b, k + 1] += first[b, k]
            fill = first[b, :C].copy()
            for r in range(n):
                k = cls[Y[order[s0 + r]]]
                by_class[b, fill[k]] = r
                fill[k] += 1
    return words, word_first, slots, n_words, first, by_class
