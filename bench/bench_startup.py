"""Start-up: every program on a one-line input (warm numba cache), whole process, and what it imports.

Run: .venv/bin/python bench/bench_startup.py [--repeat 5] [--model kn5.lm] [--json out.json]
     [--compare before.json] [--tree-before DIR [--tree-after DIR]]
Builds in a temporary directory: the PTB train 5-gram (unless --model gives one), a tiny 3-gram (the
first 200 lines of PTB train: the part of start-up that is not model loading), a small counts file
(1000 lines) for lm-train, lm-merge and lm-prune. Each command runs once to warm the caches, then
--repeat times; the table gives the median and the smallest wall time, the peak RSS, and which heavy
packages the process imported (one more run under `python -X importtime`). --compare puts the medians
of an earlier --json beside this run's. --tree-before DIR (a directory holding another lmtools package,
e.g. `git archive OLD lmtools | tar -x -C DIR`) runs every command under both trees, alternately, so
that both see the same machine load (the after tree: --tree-after DIR, default the installed one); the
inputs are then made by the before tree, whose model files both can read. Prints a markdown table
(paste it into bench/RESULTS.md).

Python is run with bytecode writing allowed (PYTHONDONTWRITEBYTECODE unset): an installed package has
its .pyc files, and compiling every module from source at each start is not what users see.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import PTB, machine, ours, table  # noqa: E402

HEAVY = ("numpy", "numba", "llvmlite", "scipy", "scipy.linalg", "msgpack", "rich")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def tree_env(tree: str | None) -> dict:
    """The environment that runs the programs on the lmtools package under ``tree`` (None: as installed)."""
    return dict(ENV, PYTHONPATH=str(Path(tree).resolve())) if tree else ENV


def run_once(argv: list[str], stdin: Path | None, env: dict = ENV) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MB, CPU seconds user+sys) of one process, from fork to its exit (wait4).
    The CPU time is the steadier figure on a shared machine: waiting for a core does not count."""
    with open(stdin or os.devnull, "rb") as fin:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"failed ({p.returncode}): {' '.join(argv)}\n{err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def imported(argv: list[str], stdin: Path | None, env: dict = ENV) -> list[str]:
    """The heavy packages the command imports, from `python -X importtime` on its script."""
    with open(stdin or os.devnull, "rb") as fin:
        r = subprocess.run([sys.executable, "-X", "importtime", *argv], stdin=fin, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env=env)
    names = {line.rsplit("|", 1)[1].strip() for line in r.stderr.decode(errors="replace").splitlines()
             if line.startswith("import time:") and line.count("|") == 2}
    return [h for h in HEAVY if h in names]


def build(work: Path, model: str | None, env: dict = ENV) -> dict[str, Path]:
    train = PTB / "train.txt"
    lines = train.read_text().splitlines(keepends=True)
    f = {"one": work / "one.txt", "tiny_text": work / "tiny.txt", "small_text": work / "small.txt",
         "small_text2": work / "small2.txt"}
    f["one"].write_text("the cat sat on the mat\n")
    f["tiny_text"].write_text("".join(lines[:200]))
    f["small_text"].write_text("".join(lines[:1000]))
    f["small_text2"].write_text("".join(lines[1000:2000]))

    def sh(cmd: str) -> None:
        subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, env=env, stderr=subprocess.DEVNULL)

    count, trainer = ours("lm-count"), ours("lm-train")
    if model:
        f["kn5"] = Path(model)
    else:
        f["kn5"] = work / "kn5.lm"
        sh(f"{count} -n 5 {train} | {trainer} -o {f['kn5']}")
    f["tiny"] = work / "tiny.lm"
    sh(f"{count} -n 3 {f['tiny_text']} | {trainer} -o {f['tiny']}")
    f["counts"] = work / "small.counts"
    f["counts2"] = work / "small2.counts"
    sh(f"{count} -n 3 {f['small_text']} -o {f['counts']}")
    sh(f"{count} -n 3 {f['small_text2']} -o {f['counts2']}")
    f["small"] = work / "small.lm"
    f["small_wb"] = work / "small_wb.lm"
    sh(f"{trainer} {f['counts']} -o {f['small']}")
    sh(f"{trainer} --method wb {f['counts']} -o {f['small_wb']}")
    f["out"] = work / "out.lm"
    return f


def cases(f: dict[str, Path]) -> list[tuple[str, list[str], Path | None]]:
    """(shown command, argv, stdin) of every case."""
    c = [
        ("lm-ppl -m kn5.lm one.txt", ["lm-ppl", "-m", f["kn5"], f["one"]], None),
        ("lm-score -m kn5.lm one.txt", ["lm-score", "-m", f["kn5"], f["one"]], None),
        ("lm-ppl -m tiny.lm one.txt", ["lm-ppl", "-m", f["tiny"], f["one"]], None),
        ("lm-score -m tiny.lm one.txt", ["lm-score", "-m", f["tiny"], f["one"]], None),
        ("lm-gen -m kn5.lm -s 1 --seed 1", ["lm-gen", "-m", f["kn5"], "-s", "1", "--seed", "1"], None),
        ("lm-gen -m tiny.lm -s 1 --seed 1", ["lm-gen", "-m", f["tiny"], "-s", "1", "--seed", "1"], None),
        ("lm-train small.counts -o out.lm", ["lm-train", "-q", f["counts"], "-o", f["out"]], None),
        ("lm-count -n 3 < one.txt", ["lm-count", "-n", "3"], f["one"]),
        ("lm-merge small.counts small2.counts", ["lm-merge", f["counts"], f["counts2"], "-o", f["out"]], None),
        ("lm-info kn5.lm", ["lm-info", f["kn5"]], None),
        ("lm-info tiny.lm", ["lm-info", f["tiny"]], None),
        ("lm-prune --threshold 1e-6 small.lm", ["lm-prune", "--threshold", "1e-6", f["small"], "-o", f["out"]],
         None),
        ("lm-mix -m small.lm -m small_wb.lm one.txt", ["lm-mix", "-m", f["small"], "-m", f["small_wb"], f["one"]],
         None),
    ]
    for prog in ("ppl", "score", "gen", "train", "count", "merge", "info", "prune", "mix"):
        c.append((f"lm-{prog} --help", [f"lm-{prog}", "--help"], None))
    return [(shown, [ours(argv[0]), *map(str, argv[1:])], stdin) for shown, argv, stdin in c]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--model", help="the PTB train 5-gram, if already built")
    ap.add_argument("--json", help="write the measurements here")
    ap.add_argument("--compare", help="an earlier --json: its medians go beside this run's")
    ap.add_argument("--only", help="run only the commands containing this text")
    ap.add_argument("--tree-before", help="a directory holding the lmtools package to compare with")
    ap.add_argument("--tree-after", help="the directory of the lmtools package measured (default: installed)")
    args, _ = ap.parse_known_args()  # `make bench` passes its own arguments to every benchmark
    before = json.loads(Path(args.compare).read_text()) if args.compare else {}
    before = before.get("after", before)  # a --json of a --tree-before run: its after column
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lmtools-startup-") as tmp:
        after = tree_env(args.tree_after)
        trees = {"after": after}
        if args.tree_before:
            trees = {"before": tree_env(args.tree_before), "after": after}
            before = {}
        f = build(Path(tmp), args.model, trees.get("before", after))
        results = {}
        for shown, argv, stdin in cases(f):
            if args.only and args.only not in shown:
                continue
            runs: dict[str, list] = {k: [] for k in trees}
            for env in trees.values():
                run_once(argv, stdin, env)  # warm: numba's cache, the page cache, .pyc files
            for _ in range(args.repeat):  # alternately, so that both trees see the same machine load
                for k, env in trees.items():
                    runs[k].append(run_once(argv, stdin, env))
            for k, env in trees.items():
                walls = [w for w, _, _ in runs[k]]
                r = {"median": statistics.median(walls), "min": min(walls),
                     "cpu": statistics.median(c for _, _, c in runs[k]),
                     "rss_mb": max(m for _, m, _ in runs[k]), "imports": imported(argv, stdin, env)}
                if k == "before":
                    before[shown] = r
                else:
                    results[shown] = r
    print(f"# Start-up, one-line input, warm cache: median of {args.repeat} runs, {machine()}, "
          f"load average before the run {load:.2f}, after {os.getloadavg()[0]:.2f}\n")
    header = ["command"] + (["before s"] if before else []) + ["median s", "min s"]
    header += (["CPU s before"] if before else []) + ["CPU s", "peak MB", "heavy imports"]
    if before:
        header += ["heavy imports before"]
    rows = []
    for shown, r in results.items():
        row = [f"`{shown}`"]
        b = before.get(shown)
        if before:
            row.append(f"{b['median']:.3f}" if b else "-")
        row += [f"{r['median']:.3f}", f"{r['min']:.3f}"]
        if before:
            row.append(f"{b['cpu']:.3f}" if b and "cpu" in b else "-")
        row += [f"{r['cpu']:.3f}", f"{r['rss_mb']:.0f}", " ".join(r["imports"]) or "-"]
        if before:
            row.append((" ".join(b["imports"]) or "-") if b else "-")
        rows.append(row)
    print(table(rows, header))
    if args.json:
        Path(args.json).write_text(json.dumps(results if not args.tree_before else {"before": before, "after": results},
                                              indent=1))


if __name__ == "__main__":
    main()
