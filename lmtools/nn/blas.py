"""The BLAS thread count, set to one while the class-based layer's kernels split GEMMs themselves.

With the class-based output layer the minibatch GEMMs are small (128 x 400 x 200) and sit
between loops that numba runs on all cores. BLAS's own threads spin for a while after each call,
and on a 2-core machine those spinning threads and numba's workers take the cores from each other
(training fell from ~110k to ~11k tokens/s here). So while such a kernel runs, BLAS is set to one
thread and the kernels split each GEMM in row blocks over numba's threads (``kernels.ffnn.pgemm``).

Only scipy's OpenBLAS (the BLAS numba calls) is recognised; with any other BLAS the context
manager reports False and the kernels keep plain BLAS calls.
"""

from __future__ import annotations

import ctypes
import glob
import os
from contextlib import contextmanager

_lib = None
_looked = False


def _scipy_openblas():
    """scipy's bundled OpenBLAS (already loaded by numba's BLAS probe), or None."""
    global _lib, _looked
    if _looked:
        return _lib
    _looked = True
    try:
        import scipy
    except ImportError:
        return None
    here = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
    for path in sorted(glob.glob(os.path.join(here, "scipy.libs", "libscipy_openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
            lib.scipy_openblas_set_num_threads.argtypes = [ctypes.c_int]
            ctypes.c_int.in_dll(lib, "blas_num_threads")
        except (OSError, AttributeError, ValueError):
            continue
        _lib = lib
        break
    return _lib


@contextmanager
def single_threaded_blas():
    """Run the body with BLAS on one thread; yields whether that could be arranged."""
    lib = _scipy_openblas()
    if lib is None:
        yield False
        return
    before = ctypes.c_int.in_dll(lib, "blas_num_threads").value
    lib.scipy_openblas_set_num_threads(1)
    try:
        yield True
    finally:
        lib.scipy_openblas_set_num_threads(max(1, before))
