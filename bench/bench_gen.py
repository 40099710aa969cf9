"""lm-gen against NLTK: sentences and tokens per second, side by side in one run.

    .venv/bin/python bench/bench_gen.py [--sentences 20000] [--nltk-budget 60] [--out FILE]

Models, all from PTB train (../shared/data/ptb/train.txt):
- lmtools KN 5-gram and KN 3-gram: ``lm-count -n N train.txt | lm-train -o knN.lm`` (interpolated
  modified Kneser-Ney), sampled from the exact back-off distribution over the whole vocabulary;
- lmtools FFNN (context 4, d 100, H 200, full softmax over 10k words), trained for one short epoch on
  the first 200k tokens: sampling cost does not depend on how well it is trained;
- NLTK ``KneserNeyInterpolated(3)`` fitted on the same trigram data (padded_everygram_pipeline),
  sampled with ``generate()`` one word at a time. NLTK's generate() scores every seen successor of
  the context in Python, and each score walks its count tables: the first word of a sentence (after
  ``<s> <s>``, thousands of successors) takes minutes. So one first word and, for a time budget, single
  words after mid-sentence contexts are timed, and a sentence is estimated as the first word plus
  PTB's mean number of further tokens at the mid-sentence rate.

Throughput is measured in-process after a warm-up (model loading and compilation excluded); the
whole-process time of ``lm-gen`` (start-up, model load, sampling, output) is reported too.
A token is a word or the ``</s>`` that ends a sentence.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import PTB, machine, table  # noqa: E402

PY = sys.executable


def sh(cmd: str) -> float:
    t = time.perf_counter()
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{r.stderr.decode()[-2000:]}")
    return time.perf_counter() - t


def ours(sampler, n: int, seed: int = 1, **kw) -> dict:
    from lmtools.ngram.sample import check_options

    opts = check_options(**kw)
    pre = np.zeros(0, np.int32)
    sampler.sample_batch(min(n, 64), seed + 1, 0, pre, opts)  # warm-up (compilation)
    t = time.perf_counter()
    tokens = 0
    for b in sampler.sample_all(n, seed, pre, opts):
        tokens += int(b.lengths.sum() + b.ended.sum())
    dt = time.perf_counter() - t
    return {"sentences": n, "tokens": tokens, "seconds": dt, "sent_s": n / dt, "tok_s": tokens / dt}


def nltk_gen(train: Path, budget: float) -> tuple[dict, float]:
    """NLTK KneserNeyInterpolated(3) on the same data: fit, then time generate() for the first word
    of a sentence (context <s> <s>) and, for at most ``budget`` seconds, for single words after
    mid-sentence trigram contexts of PTB valid. A whole sentence costs the first word plus its
    other words at the mid-sentence rate: that gives NLTK's sentences/s and tokens/s."""
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    sents = [line.split() for line in train.read_text().splitlines()]
    t = time.perf_counter()
    data, vocab = padded_everygram_pipeline(3, sents)
    lm = KneserNeyInterpolated(3)
    lm.fit(data, vocab)
    fit = time.perf_counter() - t
    import random

    rng = random.Random(1)
    t = time.perf_counter()
    lm.generate(1, text_seed=["<s>", "<s>"], random_seed=rng)
    first = time.perf_counter() - t
    contexts = [(s[i - 2], s[i - 1]) for s in (line.split() for line in (train.parent / "valid.txt").read_text()
                                                .splitlines()[:200]) for i in range(2, len(s))]
    rng2 = random.Random(2)
    rng2.shuffle(contexts)
    mid = 0
    t = time.perf_counter()
    for ctx in contexts:
        if time.perf_counter() - t >= budget:
            break
        lm.generate(1, text_seed=list(ctx), random_seed=rng)
        mid += 1
    mid_s = time.perf_counter() - t
    per_sentence = sum(len(s) + 1 for s in sents) / len(sents)
    sentence_s = first + (per_sentence - 1) * mid_s / mid
    return {"sentences": "-", "tokens": 1 + mid, "seconds": first + mid_s, "tok_s": per_sentence / sentence_s,
            "sent_s": 1.0 / sentence_s, "first": first, "mid": mid, "mid_s": mid_s, "per_sentence": per_sentence}, fit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=20000)
    ap.add_argument("--ffnn-sentences", type=int, default=500)
    ap.add_argument("--nltk-budget", type=float, default=60.0,
                    help="seconds of NLTK mid-sentence generate() calls (after its first word)")
    ap.add_argument("--ffnn-tokens", type=int, default=30000, help="FFNN training tokens (one epoch)")
    ap.add_argument("--no-nltk", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    train = PTB / "train.txt"
    if not train.exists():
        raise SystemExit(f"PTB not found at {train}")
    from lmtools.io.models import load_model, save_model
    from lmtools.kinds import sampler_for

    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as d:
        d = Path(d)
        build = {}
        for n in (5, 3):
            build[n] = sh(f"{PY} -m lmtools.cli.count -n {n} {train} | {PY} -m lmtools.cli.train -q -o {d}/kn{n}.lm"
                          if _train_has_quiet() else
                          f"{PY} -m lmtools.cli.count -n {n} {train} | {PY} -m lmtools.cli.train -o {d}/kn{n}.lm")
        s5 = sampler_for(load_model(str(d / "kn5.lm")))
        s3 = sampler_for(load_model(str(d / "kn3.lm")))
        res = {}
        res["kn5"] = ours(s5, args.sentences)
        res["kn3"] = ours(s3, args.sentences)
        for name, kw in (("kn5 --temperature 0.8", dict(temperature=0.8)), ("kn5 --top-k 50", dict(top_k=50)),
                         ("kn5 --top-p 0.9", dict(top_p=0.9)), ("kn5 --greedy -n 1", dict(greedy=True))):
            res[name] = ours(s5, 1 if "greedy" in name else max(1, args.sentences // 10), **kw)
        n_cli = args.sentences
        cli = sh(f"{PY} -m lmtools.cli.gen -m {d}/kn5.lm -s {n_cli} --seed 1 > {d}/out.txt")
        cli_small = sh(f"{PY} -m lmtools.cli.gen -m {d}/kn5.lm -s 10 --seed 1 > /dev/null")
        # FFNN
        ffnn = None
        try:
            from lmtools.nn.train import TrainConfig, build_vocab_and_ids, train as train_ffnn

            vocab, ids, counts = build_vocab_and_ids([str(train)])
            cut = int(np.flatnonzero(ids[: args.ffnn_tokens] == 1)[-1])  # whole sentences
            t = time.perf_counter()
            model = train_ffnn(TrainConfig(context=4, dim=100, hidden=200, epochs=1, seed=1), vocab, ids[:cut],
                               counts=counts)
            ffnn_train = time.perf_counter() - t
            with open(d / "ffnn.lm", "wb") as f:
                save_model(model, f)
            sf = sampler_for(load_model(str(d / "ffnn.lm")))
            ffnn = ours(sf, args.ffnn_sentences)
            notes.append(f"FFNN trained in {ffnn_train:.1f} s (1 epoch, {cut} tokens), V = {len(vocab)}")
        except Exception as e:  # the FFNN is optional here
            notes.append(f"FFNN skipped: {type(e).__name__}: {e}")
        nl = fit = None
        if not args.no_nltk:
            try:
                nl, fit = nltk_gen(train, args.nltk_budget)
            except ImportError:
                notes.append("NLTK not installed: pip install nltk")

    def num(x):
        return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"

    def row(name, r):
        return [name, r["sentences"], r["tokens"], f"{r['seconds']:.2f}", num(r["sent_s"]), num(r["tok_s"]),
                f"{r['tok_s'] / nl['tok_s']:,.0f}x" if nl else "n/a"]

    for name, r in res.items():
        rows.append(row(f"lmtools {name}", r))
    if ffnn:
        rows.append(row("lmtools ffnn (ctx 4, H 200)", ffnn))
    if nl:
        rows.append(row("NLTK KneserNeyInterpolated(3) generate()", nl))
        rows[-1][4] += " (est.)"
        rows[-1][5] += " (est.)"
    header = ["sampler (PTB train)", "sentences", "tokens", "seconds", "sentences/s", "tokens/s", "vs NLTK (tokens/s)"]
    out = [f"Machine: {machine()}; one run, in-process after warm-up.", "", table(rows, header), ""]
    out.append(f"- lm-gen whole process, KN 5-gram, -n {n_cli}: {cli:.2f} s wall "
               f"({n_cli / cli:,.0f} sentences/s including start-up and model load); -n 10: {cli_small:.2f} s.")
    out.append(f"- Model building (lm-count | lm-train): 5-gram {build[5]:.1f} s, 3-gram {build[3]:.1f} s.")
    if nl:
        out.append(f"- NLTK fit on the same trigram data: {fit:.1f} s. generate(): the first word of a sentence "
                   f"(context <s> <s>) took {nl['first']:.1f} s; {nl['mid']} words after mid-sentence contexts "
                   f"(PTB valid) took {nl['mid_s']:.1f} s ({nl['mid'] / nl['mid_s']:.3g} words/s). Estimated "
                   f"sentence = first word + {nl['per_sentence'] - 1:.1f} more words (PTB's mean of "
                   f"{nl['per_sentence']:.1f} tokens per sentence): {1 / nl['sent_s']:.0f} s.")
        out.append(f"- Same trigram data: lmtools {res['kn3']['tok_s'] / nl['tok_s']:,.0f}x NLTK in tokens/s, "
                   f"{res['kn3']['sent_s'] / nl['sent_s']:,.0f}x in sentences/s.")
    out += [f"- {x}" for x in notes]
    text = "\n".join(out)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


def _train_has_quiet() -> bool:
    r = subprocess.run([PY, "-m", "lmtools.cli.train", "--help"], capture_output=True, text=True,
                       env=dict(os.environ))
    return "--quiet" in r.stdout


if __name__ == "__main__":
    main()
