"""The CUDA training path against the CPU path, run on the CPU by numba's CUDA simulator.

Not collected by pytest directly: tests/test_ffnn_cuda.py runs this file in a process with
NUMBA_ENABLE_CUDASIM=1 (numba reads it at import). The simulator runs every GPU thread as a
Python thread, so the models here are tiny; the kernels use small tiles and blocks there
(kernels/ffnn_cuda.py), and the GEMM kernel is also checked with the tile size a GPU uses.
"""

import os

import numpy as np
import pytest

from lmtools.kernels import ffnn as K
from lmtools.nn.train import Trainer, TrainConfig, init_model
from tests.conftest import run_prog

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run through tests/test_ffnn_cuda.py"

from lmtools.kernels import ffnn_cuda as KC  # noqa: E402
from lmtools.nn.cuda_train import CudaTrainer  # noqa: E402
from numba import cuda  # noqa: E402

V = 23
VOCAB = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(3, V)]


def stream(seed=0, sentences=30):
    rng = np.random.default_rng(seed)
    ids = []
    for _ in range(sentences):
        ids += [1] + list(rng.integers(3, V, size=rng.integers(0, 7))) + [2]
    return np.array(ids, np.int32)


def train_both(cfg, hi=16):
    ids = stream()
    model = init_model(cfg, VOCAB, np.bincount(ids, minlength=V))
    X, Y, _ = K.build_examples(ids, cfg.context)
    order = np.random.default_rng(2).permutation(len(Y)).astype(np.int64)
    out = []
    for T in (Trainer, CudaTrainer):
        tr = T(model, cfg)
        losses = np.zeros(8)
        nb = tr.run(X, tr.out_ids(Y), order, 0, hi, losses)
        out.append((nb, losses[:nb].copy(), tr.to_model().param_arrays()))
    return out


@pytest.mark.parametrize("layer", ["softmax", "class"])
@pytest.mark.parametrize("opt,l2,dropout", [("sgd", 0.01, 0.25), ("adam", 0.0, 0.0)])
def test_minibatch_steps_match_cpu(layer, opt, l2, dropout):
    # float64: the GPU kernels compute what the CPU kernels compute, update rules and masks included
    cfg = TrainConfig(context=3, dim=4, hidden=5, dtype="float64", output_layer=layer, classes=4, batch=8,
                      optimizer=opt, lr=0.2 if opt == "sgd" else 0.01, l2=l2, dropout=dropout, activation="tanh")
    (n1, l1, p1), (n2, l2_, p2) = train_both(cfg)
    assert n1 == n2 == 2
    np.testing.assert_allclose(l2_, l1, rtol=1e-12)
    for k in p1:
        np.testing.assert_allclose(p2[k], p1[k], rtol=1e-10, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("act,opt", [("sigmoid", "momentum"), ("relu", "adagrad")])
def test_float32_other_activations_and_optimizers(act, opt):
    cfg = TrainConfig(context=2, dim=3, hidden=4, dtype="float32", output_layer="softmax", batch=8,
                      optimizer=opt, lr=0.05, activation=act)
    (n1, l1, p1), (n2, l2, p2) = train_both(cfg)
    assert n1 == n2 == 2
    np.testing.assert_allclose(l2, l1, rtol=1e-5)
    for k in p1:
        np.testing.assert_allclose(p2[k], p1[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_kernel_with_the_gpu_tile(ta, tb):
    rng = np.random.default_rng(1)
    M, N, Kd = 5, 17, 19  # not multiples of the tile
    A = rng.standard_normal((Kd, M) if ta else (M, Kd))
    B = rng.standard_normal((N, Kd) if tb else (Kd, N))
    C = rng.standard_normal((M, N))
    want = -0.5 * ((A.T if ta else A) @ (B.T if tb else B)) + 2.0 * C
    dC = cuda.to_device(C)
    KC.gemm(-0.5, cuda.to_device(A), cuda.to_device(B), 2.0, dC, ta, tb, tile=16)
    np.testing.assert_allclose(dC.copy_to_host(), want, rtol=1e-12)


def test_lm_train_device_cuda(tmp_path):
    # the whole program (validation and the epoch schedule included): the CPU run's model up to
    # float32 rounding, the same file format
    rng = np.random.default_rng(4)
    words = [f"w{i}" for i in range(12)]
    train = tmp_path / "train.txt"
    train.write_text("".join(" ".join(rng.choice(words, rng.integers(2, 6))) + "\n" for _ in range(20)))
    ppl = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.lm"
        r = run_prog("lm-train", "--method", "ffnn", "--device", device, "--context", "2", "--dim", "4", "--hidden", "4",
                     "--batch", "64", "--epochs", "2", "--output-layer", "class", "--classes", "3", "--valid", train,
                     train, "-o", out, env={"NUMBA_ENABLE_CUDASIM": "1"})
        assert r.returncode == 0, r.stderr
        r = run_prog("lm-ppl", "--json", "-m", out, train)
        assert r.returncode == 0, r.stderr
        import json
        ppl[device] = json.loads(r.stdout)["total"]["ppl"]
    assert ppl["cuda"] == pytest.approx(ppl["cpu"], rel=1e-5)
