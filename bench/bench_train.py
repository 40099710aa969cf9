"""Estimation: `lm-count -n N | lm-train` against KenLM's `lmplz -o N`, side by side in one run.

Run: .venv/bin/python bench/bench_train.py [--repeat 3]
Peers: lmplz and build_binary on PATH or in $KENLM_BIN (built outside the repo); skipped if absent.
Both read the same copy of PTB train (../shared/data/ptb) with <unk> renamed (lmplz refuses it).
Reports whole-pipeline wall time (median), peak memory of the largest process, and the model size:
lmtools' model file against KenLM's probing binary of its own ARPA.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import PTB, machine, ours, peer, table, timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    lm_count, lm_train = ours("lm-count"), ours("lm-train")
    lmplz, build_binary = peer("lmplz", "LMPLZ"), peer("build_binary", "KENLM_BUILD_BINARY")
    with tempfile.TemporaryDirectory(prefix="lmtools-bench-") as tmp:
        tmp = Path(tmp)
        train = tmp / "ptb-train.txt"
        train.write_text((PTB / "train.txt").read_text().replace("<unk>", "UNKTOK"))
        timed(f"{lm_count} -n 5 {train} | {lm_train} -q -o {tmp / 'warm.lm'}", repeat=1)  # warm JIT cache
        print(f"# Estimating interpolated modified Kneser-Ney on PTB train, {machine()}\n")
        rows = []
        for order in (3, 5):
            ours_cmd = f"{lm_count} -n {order} {train} | {lm_train} -q -o {tmp / f'kn{order}.lm'}"
            r = timed(ours_cmd, repeat=args.repeat)
            size = os.path.getsize(tmp / f"kn{order}.lm") / 1e6
            rows.append([order, "lm-count + lm-train (pipe)", f"{r['wall']:.3f}", f"{r['peak_mb']:.0f}",
                         f"{size:.1f} (lmtools model)", "1.00"])
            if lmplz:
                arpa = tmp / f"kenlm{order}.arpa"
                k = timed(f"{lmplz} -o {order} -S 20% -T {tmp} < {train} > {arpa} 2>/dev/null", repeat=args.repeat)
                ksize = "-"
                if build_binary:
                    timed(f"{build_binary} {arpa} {tmp / 'k.bin'} > /dev/null 2>&1", repeat=1)
                    ksize = f"{os.path.getsize(tmp / 'k.bin') / 1e6:.1f} (KenLM probing binary)"
                rows.append([order, "KenLM lmplz", f"{k['wall']:.3f}", f"{k['peak_mb']:.0f}", ksize,
                             f"{k['wall'] / r['wall']:.2f}"])
        print(table(rows, ["order", "tool", "wall s (median)", "peak MB", "model MB", "time / ours"]))
        if not lmplz:
            print("\n(lmplz not found: set KENLM_BIN or put it on PATH)")


if __name__ == "__main__":
    main()
