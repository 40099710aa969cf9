"""lmtools: Unix-style language-modeling tools (n-gram counting, smoothing, scoring, sampling, FFNN).

Every program is a thin layer over this importable API; import the submodules you need
(they pull in numba only when a kernel is first used).
"""

__version__ = "0.1.0"
