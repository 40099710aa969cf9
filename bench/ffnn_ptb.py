"""Train the FFNN LM on PTB and report validation/test perplexity (quality benchmark).

    python bench/ffnn_ptb.py --context 4 --dim 100 --hidden 200 --epochs 10 -o /tmp/ffnn.lm \
        --save-test-probs /tmp/ffnn_test_log10.npy

Prints one line per epoch to stderr and a final JSON line to stdout. Uses only lmtools'
Python API (the same code as ``lm-train --method ffnn``).
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from lmtools.nn.train import TrainConfig, build_vocab_and_ids, encode_with_vocab, perplexity, train  # noqa: E402

PTB = os.environ.get("PTB_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ptb"))


def main():
    ap = argparse.ArgumentParser()
    for k, v in TrainConfig().__dict__.items():
        t = type(v) if v is not None else (float if k in ("lr", "dropout_emb") else str)
        ap.add_argument("--" + k.replace("_", "-"), type=t, default=v)
    ap.add_argument("-o", "--output", default=None)
    ap.add_argument("--save-test-probs", default=None)
    a = ap.parse_args()
    cfg = TrainConfig(**{k: getattr(a, k) for k in TrainConfig().__dict__})
    t0 = time.time()
    vocab, ids, counts = build_vocab_and_ids([os.path.join(PTB, "train.txt")])
    valid, _ = encode_with_vocab([os.path.join(PTB, "valid.txt")], vocab)
    test, _ = encode_with_vocab([os.path.join(PTB, "test.txt")], vocab)

    def progress(ev, info):
        if ev == "epoch_end":
            print(f"epoch {info['epoch']} train_ppl {info['train_ppl']:.2f} "
                  f"valid_ppl {info.get('valid_ppl') or 0:.2f} lr {info['lr']:.5g} {info['seconds']:.1f}s "
                  f"elapsed {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        elif ev == "batch" and info["done"] % (128 * 64 * 40) < 128 * 64:
            print(f"  epoch {info['epoch']} {info['done']}/{info['examples']} loss {info['loss']:.3f} "
                  f"{info['tokens_per_s']:.0f} tok/s", file=sys.stderr, flush=True)
        elif ev == "note":
            print(info["message"], file=sys.stderr, flush=True)

    model = train(cfg, vocab, ids, valid, progress, counts=counts)
    secs = time.time() - t0
    lp = model.score_ids(test)
    n = int(np.count_nonzero(test != 1))
    test_ppl = float(10 ** (-lp.sum() / n))
    if a.save_test_probs:
        np.save(a.save_test_probs, lp[test != 1])
    if a.output:
        from lmtools.io.models import save_model
        with open(a.output, "wb") as f:
            save_model(model, f)
    res = {"config": cfg.__dict__, "valid_ppl": perplexity(model, valid), "test_ppl": test_ppl,
           "train_seconds": round(secs, 1), "best_epoch": model.provenance["training"]["best_epoch"],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
