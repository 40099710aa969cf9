"""lmtools.api's word-at-a-time scoring (State, BaseScore) against the kenlm Python module's, on one
ARPA file: per word log10 p and matched n-gram length, per sentence totals, and calls per second.

The model is an lmtools n-gram model (built with lm-train unless --model gives one); lm-train --arpa
writes its ARPA text, which kenlm reads. Ours scores from the lmtools file (its stored query tables,
mapped) and from the ARPA file; kenlm from the ARPA file. KenLM adds float32s where lmtools adds the
same float32 values into a float64, so equal models differ by ~1e-6 in log10 p.

kenlm is never a dependency of lmtools: it runs in its own Python (--kenlm-python, or $KENLM_PYTHON,
default /work/peers/kenlm-venv/bin/python: `python -m venv DIR && DIR/bin/pip install kenlm`), in a
subprocess; without it, only our side is measured.

    .venv/bin/python bench/api_peer.py                         # PTB train 5-gram, PTB test
    .venv/bin/python bench/api_peer.py --quick                 # Tiny Shakespeare 3-gram (seconds)
    .venv/bin/python bench/api_peer.py --model kn5.lm --sentences 3700
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import PTB, ROOT, machine, ours  # noqa: E402

DEFAULT_KENLM_PYTHON = "/work/peers/kenlm-venv/bin/python"

# Run by kenlm's Python: the same loop as ours below, on kenlm.Model.
KENLM_SIDE = r"""
import json, sys, time
import kenlm
arpa, sents_path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
m = kenlm.Model(arpa)
load = time.perf_counter() - t
sents = json.load(open(sents_path))
scores, lengths = [], []
for words in sents:
    st, out = kenlm.State(), kenlm.State()
    m.BeginSentenceWrite(st)
    for w in words + ["</s>"]:
        r = m.BaseFullScore(st, w, out)
        scores.append(r.log_prob)
        lengths.append(r.ngram_length)
        st, out = out, st
best = None
for _ in range(repeat):
    t = time.process_time()
    n = 0
    BS, BW = m.BaseScore, m.BeginSentenceWrite
    for words in sents:
        st, out = kenlm.State(), kenlm.State()
        BW(st)
        for w in words:
            BS(st, w, out)
            st, out = out, st
        BS(st, "</s>", out)
        n += len(words) + 1
    dt = time.process_time() - t
    best = dt if best is None else min(best, dt)
totals = [m.score(" ".join(words), bos=True, eos=True) for words in sents]
json.dump({"load_s": load, "scores": scores, "lengths": lengths, "calls_per_s": n / best, "totals": totals},
          sys.stdout)
"""


def ours_side(model_path: str, sents: list[list[str]], repeat: int) -> dict:
    import lmtools.api as lm

    t = time.perf_counter()
    m = lm.Model(model_path)
    load = time.perf_counter() - t
    scores, lengths, totals, kernel_lengths = [], [], [], []
    for words in sents:
        st, out = lm.State(), lm.State()
        m.BeginSentenceWrite(st)
        total = 0.0
        for w in words + ["</s>"]:
            r = m.BaseFullScore(st, w, out)
            scores.append(r.log_prob)
            lengths.append(r.ngram_length)
            total += r.log_prob
            st, out = out, st
        totals.append(total)
        kernel_lengths.extend(o for _, o, _ in m.full_scores(" ".join(words)))
    kernel_totals = [m.score(" ".join(words)) for words in sents]
    best = None
    for _ in range(repeat):
        t = time.process_time()
        n = 0
        BS, BW = m.BaseScore, m.BeginSentenceWrite
        for words in sents:
            st, out = lm.State(), lm.State()
            BW(st)
            for w in words:
                BS(st, w, out)
                st, out = out, st
            BS(st, "</s>", out)
            n += len(words) + 1
        dt = time.process_time() - t
        best = dt if best is None else min(best, dt)
    return {"load_s": load, "scores": scores, "lengths": lengths, "totals": totals, "calls_per_s": n / best,
            "kernel_totals": kernel_totals, "kernel_lengths": kernel_lengths}


def compare(a: dict, b: dict) -> dict:
    ds = [abs(x - y) for x, y in zip(a["scores"], b["scores"])]
    dt = [abs(x - y) for x, y in zip(a["totals"], b["totals"])]
    return {"words": len(ds), "max_abs_log10p": max(ds), "max_abs_sentence": max(dt),
            "length_mismatches": sum(x != y for x, y in zip(a["lengths"], b["lengths"]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="an lmtools n-gram model (default: lm-train -n ORDER on the training text)")
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="Tiny Shakespeare (first 36,000 lines), order 3")
    ap.add_argument("--sentences", type=int, default=2000, help="test sentences scored")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes (the fastest is reported)")
    ap.add_argument("--kenlm-python", default=os.environ.get("KENLM_PYTHON", DEFAULT_KENLM_PYTHON))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="lmtools-api-peer-") as d:
        d = Path(d)
        if args.quick:
            lines = (ROOT / "lmtools" / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8").split("\n")
            train, test = d / "train.txt", lines[36000:40000]
            train.write_text("\n".join(lines[:36000]) + "\n", encoding="utf-8")
            order = 3
        else:
            train, order = PTB / "train.txt", args.order
            test = (PTB / "test.txt").read_text(encoding="utf-8").split("\n")
        model = args.model
        if model is None:
            model = str(d / "model.lm")
            subprocess.run([ours("lm-train"), "-n", str(order), str(train), "-o", model], check=True)
        arpa = d / "model.arpa"
        subprocess.run([ours("lm-train"), model, "--arpa", "-o", str(arpa)], check=True)
        sents = [line.split() for line in test if line.strip()][: args.sentences]
        sents_path = d / "sents.json"
        sents_path.write_text(json.dumps(sents), encoding="utf-8")

        ours_file = ours_side(model, sents, args.repeat)
        ours_arpa = ours_side(str(arpa), sents, 1)
        print(f"# {machine()}")
        print(f"model {model}, {len(sents)} sentences, {len(ours_file['scores'])} words scored (</s> included)")
        print(f"ours, lmtools file: open {ours_file['load_s']:.3f} s, BaseScore {ours_file['calls_per_s']:,.0f} "
              f"calls/s (CPU time, fastest of {args.repeat})")
        print(f"ours, ARPA file: open {ours_arpa['load_s']:.3f} s")
        same = compare(ours_file, ours_arpa)
        print(f"ours file vs ours ARPA: {json.dumps(same)}")
        kernel = {"max_abs_sentence_vs_kernel": max(abs(x - y) for x, y in
                                                    zip(ours_file["totals"], ours_file["kernel_totals"])),
                  "length_mismatches_vs_kernel": sum(x != y for x, y in
                                                     zip(ours_file["lengths"], ours_file["kernel_lengths"]))}
        print(f"BaseScore vs Model.score/full_scores (the kernel): {json.dumps(kernel)}")
        if not Path(args.kenlm_python).exists():
            print(f"kenlm: no Python at {args.kenlm_python} (--kenlm-python): not compared")
            return
        r = subprocess.run([args.kenlm_python, "-c", KENLM_SIDE, str(arpa), str(sents_path), str(args.repeat)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"kenlm: failed: {r.stderr.strip().splitlines()[-1:]}")
            return
        theirs = json.loads(r.stdout)
        print(f"kenlm: open ARPA {theirs['load_s']:.3f} s, BaseScore {theirs['calls_per_s']:,.0f} calls/s "
              f"(CPU time, fastest of {args.repeat})")
        print(f"ours vs kenlm: {json.dumps(compare(ours_file, theirs))}")
        dk = max(abs(x - y) for x, y in zip(theirs["totals"], ours_file["kernel_totals"]))
        print(f"kenlm Model.score vs ours: max abs sentence difference {dk:.3g}")


if __name__ == "__main__":
    main()
