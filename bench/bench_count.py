"""Counting throughput: lm-count against a plain-Python Counter, NLTK and KenLM's lmplz, side by side.

Run: .venv/bin/python bench/bench_count.py [--skip-nltk] [--repeat 3]
Peers: nltk (pip) and lmplz (on PATH, or $LMPLZ / $KENLM_BIN); absent peers are skipped.
Reads PTB from ../shared/data/ptb. Prints markdown tables (paste them into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import PTB, machine, ours, peer, table, timed  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-nltk", action="store_true")
    args = ap.parse_args()
    tmpdir = tempfile.mkdtemp(prefix="lmtools-bench-")
    # KenLM refuses a literal <unk> in its input; every tool reads the same copy with it renamed.
    train = Path(tmpdir) / "ptb-train.txt"
    train.write_text((PTB / "train.txt").read_text().replace("<unk>", "UNKTOK"))
    tokens = sum(len(line.split()) + 1 for line in open(train))
    lm_count = ours("lm-count")
    py = sys.executable
    timed(f"{lm_count} -n 5 {train} > /dev/null", repeat=1)  # warm the JIT cache
    lmplz = peer("lmplz", "LMPLZ")
    print(f"# Counting PTB train ({tokens} tokens incl. </s>), {machine()}\n")
    rows = []
    for order in (3, 5):
        cands = [("lm-count", f"{lm_count} -n {order} {train} > /dev/null"),
                 ("Python Counter", f"{py} {HERE / 'counter_baseline.py'} {order} {train} > /dev/null")]
        if not args.skip_nltk and importlib.util.find_spec("nltk"):
            cands.append(("NLTK NgramCounter", f"{py} {HERE / 'nltk_count.py'} {order} {train} > /dev/null"))
        if lmplz:
            cands.append(("KenLM lmplz (counts+estimates)",
                          f"{lmplz} -o {order} -S 20% -T /tmp < {train} > /dev/null 2>&1"))
        results = [(name, timed(cmd, repeat=1 if "NLTK" in name else args.repeat)) for name, cmd in cands]
        base = results[0][1]["wall"]
        for name, r in results:
            rows.append([order, name, f"{r['wall']:.3f}", f"{tokens / r['wall'] / 1e6:.2f}", f"{r['peak_mb']:.0f}",
                         f"{r['wall'] / base:.2f}"])
    print(table(rows, ["order", "tool", "wall s (median)", "M tokens/s", "peak MB", "time / lm-count"]))
    print("\n# Scaling: lm-count -n 5 on 1x, 4x, 16x PTB train (copies: same distinct n-grams)\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = train.read_bytes()
        for k in (1, 4, 16):
            p = Path(tmp) / f"ptb{k}.txt"
            p.write_bytes(data * k)
            r = timed(f"{lm_count} -n 5 {p} > /dev/null", repeat=args.repeat)
            rows.append([f"{k}x", tokens * k, f"{r['wall']:.3f}", f"{tokens * k / r['wall'] / 1e6:.2f}",
                         f"{r['peak_mb']:.0f}"])
    print(table(rows, ["corpus", "tokens", "wall s", "M tokens/s", "peak MB"]))
    print("\n# Memory against distinct n-grams: lm-count -n N on PTB train\n")
    rows = []
    base = None
    for order in (1, 2, 3, 4, 5, 6):
        import json
        import subprocess

        r = timed(f"{lm_count} -n {order} {train} > /dev/null", repeat=1)
        info = subprocess.run(f"{lm_count} -n {order} {train} | {ours('lm-info')} --json", shell=True,
                              capture_output=True, text=True)
        distinct = sum(json.loads(info.stdout)["sizes"])
        base = base or (r["peak_mb"], distinct)  # order 1: the process without n-gram tables
        extra = (r["peak_mb"] - base[0]) * 1e6 / max(distinct - base[1], 1)
        rows.append([order, distinct, f"{r['wall']:.3f}", f"{r['peak_mb']:.0f}", f"{extra:.0f}" if order > 1 else "-"])
    print(table(rows, ["order", "distinct n-grams (1..N)", "wall s", "peak MB",
                       "bytes per n-gram above order 1"]))
    print("\n# Start-up: echo hi | lm-count -n 3 > /dev/null (warm cache)\n")
    r = timed(f"echo hi | {lm_count} -n 3 > /dev/null", repeat=5)
    print(f"median {r['wall']:.3f} s over 5 runs; peak {r['peak_mb']:.0f} MB")
    r = timed(f"{lm_count} --help > /dev/null", repeat=5)
    print(f"lm-count --help: median {r['wall']:.3f} s")
    import shutil

    shutil.rmtree(tmpdir)


if __name__ == "__main__":
    main()
