"""Estimation: `lm-count -n N | lm-train` against KenLM's `lmplz -o N`, side by side in one run.

Run: .venv/bin/python bench/bench_train.py [--repeat 3] [--replace]
Peers: lmplz and build_binary on PATH or in $KENLM_BIN (built outside the repo); skipped if absent.
Both read the same copy of PTB train (../shared/data/ptb) with <unk> renamed (lmplz refuses it).
Reports whole-pipeline wall time (median), peak memory of the largest process, and the model size:
lmtools' model file against KenLM's probing binary of its own ARPA. The two alternate, one run each
per repeat, and every run writes to a path that does not exist (the last run's output is removed
first, untimed). Why: lmtools replaces an existing output only once the new file is whole, so the
old file's page cache is freed at the end, while a shell's `> file` for lmplz frees it before the
first write; on a virtual machine that returns freed memory to its host, writing into pages that
were not just freed costs about 10 ms/MB (bench/RESULTS.md, 2026-12-03), so overwriting the same
path would time that difference rather than the tools.
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
    ap.add_argument("--replace", action="store_true",
                    help="write every run over the last run's output instead of into a path that does not exist")
    args = ap.parse_args()
    lm_count, lm_train = ours("lm-count"), ours("lm-train")
    lmplz, build_binary = peer("lmplz", "LMPLZ"), peer("build_binary", "KENLM_BUILD_BINARY")
    with tempfile.TemporaryDirectory(prefix="lmtools-bench-") as tmp:
        tmp = Path(tmp)
        train = tmp / "ptb-train.txt"
        train.write_text((PTB / "train.txt").read_text().replace("<unk>", "UNKTOK"))
        timed(f"{lm_count} -n 5 {train} | {lm_train} -q -o {tmp / 'warm.lm'}", repeat=1)  # warm JIT cache
        where = "over the last run's output" if args.replace else "into paths that do not exist"
        print(f"# Estimating interpolated modified Kneser-Ney on PTB train, {machine()}; alternating runs, "
              f"written {where}\n")
        rows = []
        for order in (3, 5):
            out, arpa = tmp / f"kn{order}.lm", tmp / f"kenlm{order}.arpa"
            ours_cmd = f"{lm_count} -n {order} {train} | {lm_train} -q -o {out}"
            lmplz_cmd = f"{lmplz} -o {order} -S 20% -T {tmp} < {train} > {arpa} 2>/dev/null" if lmplz else None
            r, k = [], []
            for _ in range(args.repeat):  # alternating, each into a path that does not exist (see above)
                if not args.replace:
                    out.unlink(missing_ok=True)
                r.append(timed(ours_cmd, repeat=1))
                if lmplz_cmd:
                    if not args.replace:
                        arpa.unlink(missing_ok=True)
                    k.append(timed(lmplz_cmd, repeat=1))
            r = _merged(r)
            size = os.path.getsize(out) / 1e6
            rows.append([order, "lm-count + lm-train (pipe)", f"{r['wall']:.3f}", f"{r['peak_mb']:.0f}",
                         f"{size:.1f} (lmtools model)", "1.00", " ".join(f"{w:.2f}" for w in r["walls"])])
            if lmplz:
                k = _merged(k)
                ksize = "-"
                if build_binary:
                    timed(f"{build_binary} {arpa} {tmp / 'k.bin'} > /dev/null 2>&1", repeat=1)
                    ksize = f"{os.path.getsize(tmp / 'k.bin') / 1e6:.1f} (KenLM probing binary)"
                rows.append([order, "KenLM lmplz", f"{k['wall']:.3f}", f"{k['peak_mb']:.0f}", ksize,
                             f"{k['wall'] / r['wall']:.2f}", " ".join(f"{w:.2f}" for w in k["walls"])])
        print(table(rows, ["order", "tool", "wall s (median)", "peak MB", "model MB", "time / ours", "runs s"]))
        if not lmplz:
            print("\n(lmplz not found: set KENLM_BIN or put it on PATH)")


def _merged(runs: list[dict]) -> dict:
    """One result of single timed runs: the median wall time, every run's, the largest peak."""
    import statistics

    walls = [w for x in runs for w in x["walls"]]
    return {"wall": statistics.median(walls), "walls": walls, "peak_mb": max(x["peak_mb"] for x in runs)}


if __name__ == "__main__":
    main()
