"""The same seed gives a byte-identical FFNN model whether numba's kernel cache is cold (the kernels
are compiled in that run) or warm (loaded from the cache): the kernels are compiled without
fast-math flags, so every compilation computes the same numbers."""

import os

import pytest

from tests.conftest import SHAKESPEARE, run_prog


@pytest.mark.slow  # the cold run compiles every training kernel (a minute or more)
@pytest.mark.parametrize("layer", ["softmax"])
def test_cold_and_warm_kernel_cache_give_the_same_model(tmp_path, layer):
    text = tmp_path / "small.txt"
    text.write_text("".join(SHAKESPEARE.read_text(encoding="utf-8").splitlines(keepends=True)[:600]),
                    encoding="utf-8")
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = {"NUMBA_CACHE_DIR": str(cache)}
    args = ["--method", "ffnn", "--context", "2", "--dim", "8", "--hidden", "8", "--epochs", "1", "--seed", "1",
            "--output-layer", layer, text]
    cold = run_prog("lm-train", *args, "-o", tmp_path / "cold.lm", env=env)
    assert cold.returncode == 0, cold.stderr
    assert any(f.endswith(".nbc") for _, _, fs in os.walk(cache) for f in fs)  # the cache was filled
    warm = run_prog("lm-train", *args, "-o", tmp_path / "warm.lm", env=env)
    assert warm.returncode == 0, warm.stderr
    assert (tmp_path / "cold.lm").read_bytes() == (tmp_path / "warm.lm").read_bytes()
