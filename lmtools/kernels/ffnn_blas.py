"""BLAS glue of the FFNN kernels: ``gemm`` (alpha and beta, through numba's own BLAS entry) and
``pgemm``, the same product split in blocks over numba's threads. No I/O here."""

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
