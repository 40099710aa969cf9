"""The optional CUDA path (lm-train --method ffnn --device cuda).

Its kernels are compared with the CPU kernels in tests/cudasim_checks.py, run here in a child
process under numba's CUDA simulator (NUMBA_ENABLE_CUDASIM must be set before numba loads), so
they run on every machine, GPU or not. The host-side grouping is plain numba and checked directly.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from lmtools.kernels import ffnn as K

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_group_span_matches_plain_python():
    from lmtools.kernels.ffnn_cuda import group_span

    rng = np.random.default_rng(3)
    ids = np.concatenate([[1] + list(rng.integers(3, 40, rng.integers(1, 9))) + [2] for _ in range(40)]).astype(np.int32)
    X, Y, _ = K.build_examples(ids, 3)
    cls = (np.arange(40) % 5).astype(np.int32)
    order = rng.permutation(len(Y)).astype(np.int64)
    lo, hi, B = 5, len(Y) - 3, 16
    words, word_first, slots, n_words, first, by_class = group_span(X, Y, cls, 5, order, lo, hi, B)
    for b, s0 in enumerate(range(lo, hi, B)):
        rows = order[s0:min(s0 + B, hi)]
        n = len(rows)
        want_words = sorted(set(X[rows].ravel().tolist()))
        assert words[b, :n_words[b]].tolist() == want_words
        for i, w in enumerate(want_words):
            got = slots[b, word_first[b, i]:word_first[b, i + 1]].tolist()
            assert got == [r * 3 + k for r in range(n) for k in range(3) if X[rows[r], k] == w]
        for k in range(5):
            got = by_class[b, first[b, k]:first[b, k + 1]].tolist()
            assert got == [r for r in range(n) if cls[Y[rows[r]]] == k]


@pytest.mark.slow  # about 110 s on 2 cores: the simulator runs every CUDA kernel thread by thread
def test_cuda_kernels_match_cpu_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("LMTOOLS_DEBUG", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cudasim_checks.py"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "failed" not in r.stdout
