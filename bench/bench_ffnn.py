"""FFNN training speed: lmtools (numba + BLAS) against PyTorch on the CPU, side by side in one run.

    .venv/bin/python bench/bench_ffnn.py [--batches 200] [--rounds 2] [--threads 2]

lmtools trains with BLAS on one thread and splits its matrix products over numba's threads
(lmtools/nn/blas.py), so --threads sets numba's thread count here and torch's there.

Same data (PTB train, V = 10k), same model (context 4, dim 100, hidden 200, tanh), same minibatch
SGD (batch 128, float32). Rounds alternate between the tools so that a busy machine hurts both
alike; the best round of each is reported, with all rounds listed. Also: the two layouts of the
output matrix, the class-based output layer against the exact softmax, and scoring (inference)
tokens/s. Needs torch only for the PyTorch column (skipped with a note when it is missing).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lmtools.kernels import ffnn as K  # noqa: E402
from lmtools.nn.train import Trainer, TrainConfig, build_vocab_and_ids, encode_with_vocab, init_model  # noqa: E402

PTB = os.environ.get("PTB_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                                             "data", "ptb"))


def lmtools_tokens_per_s(vocab, counts, X, Y, cfg, n_batches):
    model = init_model(cfg, vocab, counts)
    tr = Trainer(model, cfg)
    Yo = tr.out_ids(Y)
    order = np.random.default_rng(1).permutation(len(Y)).astype(np.int64)
    losses = np.zeros(n_batches + 8)
    B = cfg.batch
    tr.run(X, Yo, order, 0, 3 * B, losses)  # warm-up (and JIT on a cold cache)
    t0 = time.perf_counter()
    tr.run(X, Yo, order, 3 * B, (3 + n_batches) * B, losses)
    dt = time.perf_counter() - t0
    return n_batches * B / dt, float(losses[:n_batches].mean() / B)


def scoring_tokens_per_s(vocab, counts, cfg, test_ids):
    model = init_model(cfg, vocab, counts)
    model.score_ids(test_ids[:2000])
    t0 = time.perf_counter()
    model.score_ids(test_ids)
    return int(np.count_nonzero(test_ids != 1)) / (time.perf_counter() - t0)


def torch_round(a):
    """(tokens/s, torch version) of one PyTorch measurement in a process of its own, or None
    without torch. Its own process: PyTorch's OpenMP runtime and lmtools' numba threads in one
    process slowed PyTorch by 20-25% (11.4-12.3k tokens/s there, 15.2-16.1k alone)."""
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_ffnn.py"),
                        "--ptb", PTB, "--batches", str(a.batches), "--threads", str(a.threads)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        if "No module named 'torch'" in r.stderr:
            return None
        raise SystemExit(f"torch_ffnn.py failed: {r.stderr.strip().splitlines()[-1]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["tokens_per_s"], out["torch"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=200, help="timed minibatches per measurement (exact softmax)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="threads of lmtools (numba) and of torch")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--quality-config", action="store_true",
                    help="time only lmtools on the PTB quality configuration (context 5, dim 128, hidden 400, "
                         "dropout 0.4 / 0.2, Adam)")
    a = ap.parse_args()
    import numba

    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))  # lmtools' training threads
    vocab, ids, counts = build_vocab_and_ids([os.path.join(PTB, "train.txt")])
    if a.quality_config:
        X, Y, _ = K.build_examples(ids, 5)
        cfg = TrainConfig(context=5, dim=128, hidden=400, batch=128, optimizer="adam", lr=0.001, dropout=0.4,
                          dropout_emb=0.2)
        runs = [lmtools_tokens_per_s(vocab, counts, X, Y, cfg, a.batches)[0] for _ in range(a.rounds)]
        print(f"quality configuration, {a.threads} threads: {max(runs):.0f} tokens/s "
              f"[{', '.join(f'{x:.0f}' for x in runs)}]")
        return
    test, _ = encode_with_vocab([os.path.join(PTB, "test.txt")], vocab)
    X, Y, _ = K.build_examples(ids, 4)
    base = dict(context=4, dim=100, hidden=200, batch=128, optimizer="sgd", lr=0.5)
    probe = torch_round(argparse.Namespace(batches=1, threads=a.threads))  # is torch there, which version
    torch_version = probe[1] if probe else None
    rounds = {"lmtools softmax U(V,H)": [], "lmtools softmax U(H,V)": [], "pytorch": [],
              "lmtools class C=100": [], "lmtools class C=200": []}
    for r in range(a.rounds):
        rounds["lmtools softmax U(V,H)"].append(
            lmtools_tokens_per_s(vocab, counts, X, Y, TrainConfig(**base, u_layout="vh"), a.batches)[0])
        if torch_version is not None:
            rounds["pytorch"].append(torch_round(a)[0])
        rounds["lmtools softmax U(H,V)"].append(
            lmtools_tokens_per_s(vocab, counts, X, Y, TrainConfig(**base, u_layout="hv"), a.batches)[0])
        for C in (100, 200):
            cfg = TrainConfig(**base, output_layer="class", classes=C)
            rounds[f"lmtools class C={C}"].append(lmtools_tokens_per_s(vocab, counts, X, Y, cfg, a.batches * 10)[0])
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rounds.items() if v), file=sys.stderr,
              flush=True)
    score = {"softmax": scoring_tokens_per_s(vocab, counts, TrainConfig(**base), test),
             "class": scoring_tokens_per_s(vocab, counts, TrainConfig(**base, output_layer="class"), test)}
    best = {k: max(v) for k, v in rounds.items() if v}
    soft = max(best["lmtools softmax U(V,H)"], best["lmtools softmax U(H,V)"])
    print(f"\nPTB train, V={len(vocab)}, context 4, dim 100, hidden 200, tanh, batch 128, SGD, float32, "
          f"{a.threads} threads; best of {a.rounds} rounds (all rounds in brackets)")
    print(f"{'tool':28s} {'train tokens/s':>15s}")  # noqa: E231
    for k, v in best.items():
        print(f"{k:28s} {v:15.0f}   [{', '.join(f'{x:.0f}' for x in rounds[k])}]")
    if "pytorch" in best:
        print(f"lmtools exact softmax / pytorch: {soft / best['pytorch']:.2f}x   (torch {torch_version})")
    else:
        print("pytorch: not installed (pip install torch==2.13.0 for the comparison)")
    for C in (100, 200):
        print(f"class-based (C={C}) / exact softmax (lmtools): {best[f'lmtools class C={C}'] / soft:.1f}x")
    print(f"scoring tokens/s (PTB test, {int(np.count_nonzero(test != 1))} tokens): softmax {score['softmax']:.0f}, "
          f"class {score['class']:.0f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rounds": rounds, "best": best, "scoring": score, "torch": torch_version}, f, indent=1)


if __name__ == "__main__":
    main()
