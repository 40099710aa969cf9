"""numba kernels: pure computation on arrays, no I/O."""

import sys


def skip_blas() -> None:
    """Start numba without probing scipy's BLAS, for programs whose kernels never call np.dot.

    numba checks for BLAS when it is imported by importing scipy.linalg, which costs about 0.13 s
    of start-up here: more than a short lm-count run does. Call this before the first numba import;
    it does nothing if numba is already loaded (the FFNN needs BLAS and must not call it).
    """
    if "numba" not in sys.modules and "scipy.linalg.cython_blas" not in sys.modules:
        sys.modules["scipy.linalg.cython_blas"] = None  # makes numba's BLAS probe fail fast
