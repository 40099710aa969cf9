"""The flat layout of a back-off n-gram model for sampling (kernels/backoff_distribution.py's module
docstring says what each array holds), in a module without numba: lmtools/ngram/sample.py builds it,
and a few sentences are drawn from it in plain Python (lmtools/ngram/sample_steps.py) by a process
that never loads numba."""

from typing import NamedTuple

import numpy as np


class FlatModel(NamedTuple):
    """A back-off n-gram model laid out for sampling."""

    ids: np.ndarray  # int32: the rows of orders 2..N, n ids each, order after order
    id_base: np.ndarray  # int64 (N+1,): where order n's rows begin in ids
    row_base: np.ndarray  # int64 (N+1,): where order n's values begin in pr and bof
    n_rows: np.ndarray  # int64 (N+1,): rows of order n
    pr: np.ndarray  # float64: 10^logprob of each row
    bof: np.ndarray  # float64: 10^backoff of each row
    cum: np.ndarray  # float64: per order, 0 then the running sums of its pr
    uni: np.ndarray  # float64 (V,): p(w) by word id (0 for <s>)
    uni_bo: np.ndarray  # float64 (V,): 10^backoff of each word
    ucum: np.ndarray  # float64 (V,): running sums of uni
