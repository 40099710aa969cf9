"""The same feedforward LM in a few lines of PyTorch: the peer of bench/bench_ffnn.py (CPU, float32).

Never imported by lmtools; needs ``pip install torch==2.13.0`` in the venv.
"""

import time

import numpy as np
import torch
from torch import nn


class TorchFFNN(nn.Module):
    def __init__(self, V, context, dim, hidden):
        super().__init__()
        self.E = nn.Embedding(V, dim)
        self.hid = nn.Linear(context * dim, hidden)
        self.out = nn.Linear(hidden, V)

    def forward(self, x):  # x: (B, context) int64
        return self.out(torch.tanh(self.hid(self.E(x).flatten(1))))


def torch_tokens_per_s(X, Y, V, context, dim, hidden, batch, n_batches, lr=0.5, threads=None, seed=1):
    """Training tokens/s of minibatch SGD over ``n_batches`` batches (after 3 warm-up batches)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = TorchFFNN(V, context, dim, hidden)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    lossf = nn.CrossEntropyLoss()
    order = np.random.default_rng(seed).permutation(len(Y))
    Xt = torch.from_numpy(X.astype(np.int64))
    Yt = torch.from_numpy(Y.astype(np.int64))

    def step(i):
        rows = torch.from_numpy(order[i * batch:(i + 1) * batch])
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(Xt[rows]), Yt[rows])
        loss.backward()
        opt.step()
        return loss.item()

    for i in range(3):
        step(i)
    t0 = time.perf_counter()
    tot = 0.0
    for i in range(3, 3 + n_batches):
        tot += step(i)
    dt = time.perf_counter() - t0
    return n_batches * batch / dt, tot / n_batches


def main():
    """Run one measurement in its own process (bench_ffnn.py does, so that PyTorch's OpenMP
    runtime and lmtools' threads never share a process): prints one JSON line."""
    import argparse
    import json
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from lmtools.kernels.ffnn import build_examples
    from lmtools.nn.train import build_vocab_and_ids

    ap = argparse.ArgumentParser()
    ap.add_argument("--ptb", required=True)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    vocab, ids, _ = build_vocab_and_ids([os.path.join(a.ptb, "train.txt")])
    X, Y, _ = build_examples(ids, 4)
    # a first call warms PyTorch up (its first run in a process was 20% slower than later ones)
    torch_tokens_per_s(X, Y, len(vocab), 4, 100, 200, 128, 30, threads=a.threads)
    tps, loss = torch_tokens_per_s(X, Y, len(vocab), 4, 100, 200, 128, a.batches, threads=a.threads)
    print(json.dumps({"tokens_per_s": tps, "loss": loss, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
