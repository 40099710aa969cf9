"""Entropy pruning on PTB: model size against test perplexity, beside count cutoffs.

    .venv/bin/python bench/prune.py [PTB_DIR]      (default ../shared/data/ptb)

With the programs, as a user runs them: lm-count -n 5 train.txt | lm-train (modified Kneser-Ney,
interpolated), then lm-prune --threshold T for several T, lm-train --prune cutoffs, and for each
cutoff model lm-prune --size (its n-gram count), so the two ways of pruning meet at the same
size; the same for Katz back-off (cutoffs and sizes only); every model scored by lm-ppl on
test.txt. Times: the lm-prune run (wall, load and save
included) and the pruning stage alone (lmtools.ngram.prune.prune_entropy on the loaded model,
best of 2, kernels compiled). Prints a markdown table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THRESHOLDS = ["1e-9", "1e-8", "3e-8", "1e-7", "1e-6"]
CUTOFFS = {"kn-modified": ["0 0 0 1", "0 0 1", "0 1 1", "0 1 2"], "katz": ["0 0 1", "0 1 1"]}


def run(*args, stdin=None) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(ROOT / "bin" / args[0]), *map(str, args[1:])], stdin=stdin,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))}: {r.stderr.strip()}")
    return r


def sizes(model: Path) -> list[int]:
    info = dict(line.split("\t", 1) for line in run("lm-info", model).stdout.splitlines())
    return [int(x) for x in info["sizes"].split()]


def ppl(model: Path, test: Path) -> float:
    return json.loads(run("lm-ppl", "--json", "-m", model, test).stdout)["files"][0]["ppl"]


def main() -> None:
    ptb = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "ptb"
    test = ptb / "test.txt"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        counts = d / "c5.lm"
        run("lm-count", "-n", "5", ptb / "train.txt", "-o", counts)
        for method in CUTOFFS:
            full = d / f"{method}.lm"
            run("lm-train", "-q", "--method", method, counts, "-o", full)
            total = sum(sizes(full))
            rows.append((method, "none", sizes(full), total, ppl(full, test), None, None))
            thresholds = THRESHOLDS if method == "kn-modified" else []
            stage = stage_times(full, thresholds)
            for T in thresholds:
                out = d / f"{method}.p{T}.lm"
                t = time.perf_counter()
                run("lm-prune", "-q", "--threshold", T, full, "-o", out)
                rows.append((method, f"lm-prune --threshold {T}", sizes(out), total, ppl(out, test),
                             time.perf_counter() - t, stage[T]))
            for cut in CUTOFFS[method]:
                out = d / f"{method}.cut{cut.replace(' ', '')}.lm"
                run("lm-train", "-q", "--method", method, "--prune", *cut.split(), counts, "-o", out)
                s = sizes(out)
                rows.append((method, f"lm-train --prune {cut}", s, total, ppl(out, test), None, None))
                same = d / f"{method}.size{sum(s)}.lm"
                t = time.perf_counter()
                run("lm-prune", "-q", "--size", sum(s), full, "-o", same)
                rows.append((method, f"lm-prune --size {sum(s)}", sizes(same), total, ppl(same, test),
                             time.perf_counter() - t, None))
    print("| model | pruning | n-grams per order | n-grams | of full | test ppl | lm-prune s | stage s |")
    print("|---|---|---|---|---|---|---|---|")
    for method, name, s, total, p, wall, st in rows:
        print(f"| {method} | {name} | {' '.join(map(str, s))} | {sum(s)} | {100 * sum(s) / total:.1f}% | {p:.2f} | "
              f"{'' if wall is None else f'{wall:.2f}'} | {'' if st is None else f'{st:.2f}'} |")


def stage_times(path: Path, thresholds: list[str]) -> dict:
    """Seconds of prune_entropy alone per threshold (best of 2, after one warm-up run)."""
    from lmtools.io.models import load_model
    from lmtools.ngram.prune import prune_entropy

    if not thresholds:
        return {}
    model = load_model(str(path))
    prune_entropy(model, threshold=1e-8)
    out = {}
    for T in thresholds:
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            prune_entropy(model, threshold=float(T))
            best = min(best, time.perf_counter() - t)
        out[T] = best
    return out


if __name__ == "__main__":
    main()
