"""bench/scale.py --dask SPEC: the Dask pipeline against the single process on the same corpus (issue 14).

    .venv/bin/python bench/scale.py --dask local:2 --tokens 40M [--repeat 2] [--record]

For each corpus size and repetition, alternating which runs first:

    single:  lm-count -q -n 5 CORPUS | lm-train -q -o single.lm
    dask:    lm-count -q -n 5 --dask SPEC --shards -o counts.d CORPUS
             lm-train -q --dask SPEC -o dask.lm counts.d

(local:N starts its own LocalCluster in each of the two dask commands, as a user's commands do.)
Measured: the wall time of each stage and of the whole, the peak RSS of every process (the client
and each worker: VmHWM of the process tree, polled), the shard directory's size; the ratio dask /
single. The two models must give the same PTB-test log10 probability to the last printed digit and the
same n-gram counts (lm-info), else the run stops.

The dask commands run with LMTOOLS_DASK_TASKS (lmtools.cluster.write_task_log), so each task's compute
seconds, worker and result size are known: from them the per-task rates (tokens/s of a count range,
n-grams/s of an estimation partition), the shuffle's size (the count pieces that move between
workers), and the client's serial part (the wall time outside the tasks' span: start-up, the
vocabulary join, writing the shards; the merge and the model's writing). These feed a projection to
1B and 100B tokens on 10 and 100 workers, printed with its assumptions.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from peers import PTB, ours, table

TASK_LOG_ENV = "LMTOOLS_DASK_TASKS"
GROWTH = 0.91  # distinct 5-grams ~ tokens^0.91: 24.1M at 10.4M tokens, 84.8M at 40M (sampled text, measured)
PARTITION_BYTES = 128 << 20  # lm-count --dask's default: one partition per 128M of input (at least 2 per worker)
LINK_BYTES_PER_S = 125e6  # 1 Gbit/s per worker, assumed


class TreeRSS(threading.Thread):
    """Peak RSS (VmHWM, MiB) of every process in the tree under ``pid``, by role (client / worker)."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak: dict[int, tuple[str, float]] = {}
        self.done = threading.Event()

    def sample(self) -> None:
        from scale import _children

        kids, todo = _children(), [self.pid]
        while todo:
            p = todo.pop()
            todo.extend(kids.get(p, ()))
            try:
                status = open(f"/proc/{p}/status").read()
                cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            if not m or "python" not in cmd.split(" ", 1)[0]:  # not bash, time or the shell's helpers
                continue
            role = "worker" if "spawn_main" in cmd else "resource tracker" if "resource_tracker" in cmd else \
                "client" if "lm-" in cmd else "other"
            self.peak[p] = (role, max(int(m.group(1)) / 1024, self.peak.get(p, ("", 0.0))[1]))

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)

    def by_role(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for role, mib in self.peak.values():
            out.setdefault(role, []).append(mib)
        return {r: sorted(v, reverse=True) for r, v in out.items() if r in ("client", "worker")}


def timed(cmd: str, env: dict | None = None) -> dict:
    """Run ``cmd`` (bash -o pipefail) with its process tree's RSS polled; stop on failure."""
    t0 = time.perf_counter()
    p = subprocess.Popen(["bash", "-o", "pipefail", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=dict(os.environ, **(env or {})))
    poll = TreeRSS(p.pid)
    poll.start()
    err = p.communicate()[1]
    wall = time.perf_counter() - t0
    poll.done.set()
    poll.join()
    if p.returncode != 0:
        sys.exit(f"scale: error: failed ({p.returncode}): {cmd}\n{err.decode(errors='replace')[-3000:]}")
    return {"wall": wall, "rss": poll.by_role()}


def read_tasks(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def group(key: str) -> str:
    """'lm-count-piece-3-1-abc' -> 'lm-count-piece'."""
    parts = key.split("-")
    return "-".join(parts[:3])


def task_summary(tasks: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for t in tasks:
        g = out.setdefault(group(t["key"]), {"n": 0, "compute": 0.0, "nbytes": 0, "max": 0.0, "transfer": 0.0})
        c = t["seconds"].get("compute", 0.0)
        g["n"] += 1
        g["compute"] += c
        g["max"] = max(g["max"], c)
        g["nbytes"] += t.get("nbytes") or 0
        g["transfer"] += t["seconds"].get("transfer", 0.0)
    starts = [t["start"] for t in tasks if t.get("start")]
    stops = [t["stop"] for t in tasks if t.get("stop")]
    span = (max(stops) - min(starts)) if starts else 0.0
    return {"groups": out, "span": span}


def info_sizes(path: Path) -> str:
    r = subprocess.run([ours("lm-info"), str(path)], capture_output=True, text=True, check=True)
    return " ".join(line for line in r.stdout.splitlines() if line.startswith(("sizes", "total_count")))


def ppl_logprob(model: Path) -> str:
    r = subprocess.run([ours("lm-ppl"), "--json", "-m", str(model), str(PTB / "test.txt")], capture_output=True,
                       text=True, check=True)
    t = json.loads(r.stdout)["total"]
    return f"{t['logprob']:.6f}"


def dask_compare(args, sizes: list[int], d: Path, spec: str) -> str:
    """The comparison's report (markdown)."""
    from scale import corpus, corpus_meta, load_average, lmtools_version, machine, run, size_label

    lm_count, lm_train = ours("lm-count"), ours("lm-train")
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load_before = load_average()
    rows, ratio_rows, rate_rows, proj_rows, checks = [], [], [], [], []
    for n in sizes:
        text = corpus(d, n, args.seed, args.chunk)
        meta = corpus_meta(text)
        tokens, nbytes = meta["tokens"], text.stat().st_size
        label = size_label(n)
        work = d / "runs" / f"dask-{label}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        # untimed: every kernel of both paths in numba's cache (workers load them from it)
        warm = work / "warm.txt"
        run(f"head -c 2000000 {shlex.quote(str(text))} > {warm}", shell=True)
        run(f"{lm_count} -q -n 5 --dask {spec} --shards -o {work / 'warm.d'} {warm} && "
            f"{lm_count} -q -n 5 {warm} | {lm_train} -q > /dev/null", shell=True)
        # a worker's resting size (interpreter, dask, numpy, the kernels): the base of the memory projection
        idle = timed(f"{lm_train} -q --dask {spec} -o /dev/null {work / 'warm.d'}")["rss"].get("worker", [0])
        shutil.rmtree(work / "warm.d", ignore_errors=True)
        walls: dict[str, list[float]] = {"single": [], "dask": []}
        last_tasks: dict[str, list[dict]] = {}
        shard_mb = 0.0
        for rep in range(args.repeat):
            for job in (["single", "dask"] if rep % 2 == 0 else ["dask", "single"]):
                if job == "single":
                    out = work / "single.lm"
                    r = timed(f"{lm_count} -q -n 5 {text} | {lm_train} -q -o {out}")
                    walls["single"].append(r["wall"])
                    rows.append([label, rep + 1, "lm-count | lm-train", f"{r['wall']:.1f}", "-",
                                 " ".join(f"{x:.0f}" for x in r["rss"].get("client", [])), "-", "-"])
                else:
                    shards, out = work / f"counts-{uuid.uuid4().hex[:6]}.d", work / "dask.lm"
                    logs = {s: work / f"tasks-{s}.jsonl" for s in ("count", "train")}
                    for f in logs.values():
                        f.unlink(missing_ok=True)
                    rc = timed(f"{lm_count} -q -n 5 --dask {spec} --shards -o {shards} {text}",
                               {TASK_LOG_ENV: str(logs["count"])})
                    shard_mb = sum(f.stat().st_size for f in shards.iterdir()) / 2**20
                    rt = timed(f"{lm_train} -q --dask {spec} -o {out} {shards}", {TASK_LOG_ENV: str(logs["train"])})
                    wall = rc["wall"] + rt["wall"]
                    walls["dask"].append(wall)
                    last_tasks = {s: read_tasks(f) for s, f in logs.items()}
                    rows.append([label, rep + 1, f"dask {spec}: count --shards, train", f"{wall:.1f}",
                                 f"{rc['wall']:.1f} + {rt['wall']:.1f}",
                                 f"{max(rc['rss'].get('client', [0])):.0f}, {max(rt['rss'].get('client', [0])):.0f}",
                                 ", ".join(f"{x:.0f}" for x in rc["rss"].get("worker", [])) + "; " +
                                 ", ".join(f"{x:.0f}" for x in rt["rss"].get("worker", [])),
                                 f"{shard_mb:.0f}"])
                    if rep + 1 < args.repeat:
                        shutil.rmtree(shards, ignore_errors=True)
                    keep_shards = shards
                print("# " + " | ".join(map(str, rows[-1])) + f"   ({load_average()})", file=sys.stderr)
        single, dask = statistics.median(walls["single"]), statistics.median(walls["dask"])
        ratio_rows.append([label, spec, f"{single:.1f}", f"{dask:.1f}", f"{dask / single:.2f}"])
        # the same numbers, or stop
        a, b = info_sizes(keep_shards), info_sizes(work / "single.lm")
        pa, pb = ppl_logprob(work / "dask.lm"), ppl_logprob(work / "single.lm")
        if pa != pb:
            sys.exit(f"scale: error: the dask model's PTB-test log10 p {pa} differs from the single process's {pb}")
        checks.append(f"{label}: counts {a.split(chr(10))[0]} (shards) and the single process's counts model's "
                      f"sizes {'equal' if a.split()[:6] == b.split()[:6] else 'DIFFER: ' + b}; PTB-test log10 p "
                      f"{pa} from both models")
        ngrams = sum(int(x) for x in a.split()[1:6])
        # rates from the task logs of the last dask run
        cs, ts = task_summary(last_tasks.get("count", [])), task_summary(last_tasks.get("train", []))
        g = {**cs["groups"], **ts["groups"]}
        count_s = g.get("lm-count-range", {}).get("compute", 0.0)
        split_s = g.get("lm-count-split", {}).get("compute", 0.0)
        sum_s = g.get("lm-count-part", {}).get("compute", 0.0)
        shuffle_b = g.get("lm-count-piece", {}).get("nbytes", 0)
        stats_s = g.get("lm-train-stats", {}).get("compute", 0.0)
        est_s = g.get("lm-train-estimate", {}).get("compute", 0.0)
        client_count = rc["wall"] - cs["span"]
        client_train = rt["wall"] - ts["span"]
        rate_rows += [
            [label, "count ranges", g.get("lm-count-range", {}).get("n", 0), f"{count_s:.1f}",
             f"{tokens / count_s / 1e6:.2f} M tokens/s" if count_s else "-"],
            [label, "split + sum (shuffle)", g.get("lm-count-split", {}).get("n", 0) + g.get("lm-count-part", {}).get("n", 0),
             f"{split_s + sum_s:.1f}", f"{ngrams / (split_s + sum_s) / 1e6:.2f} M n-grams/s; {shuffle_b / 2**20:.0f} MiB "
             f"of pieces ({shuffle_b / ngrams:.1f} B/n-gram)" if split_s + sum_s else "-"],
            [label, "client, count (outside the tasks' span)", "-", f"{client_count:.1f}",
             f"{ngrams / client_count / 1e6:.2f} M n-grams/s" if client_count > 0 else "-"],
            [label, "estimate pass 1 + pass 2", g.get("lm-train-stats", {}).get("n", 0) + g.get("lm-train-estimate", {}).get("n", 0),
             f"{stats_s + est_s:.1f}", f"{ngrams / (stats_s + est_s) / 1e6:.2f} M n-grams/s" if stats_s + est_s else "-"],
            [label, "client, train (merge, query tables, write)", "-", f"{client_train:.1f}",
             f"{ngrams / client_train / 1e6:.2f} M n-grams/s" if client_train > 0 else "-"],
        ]
        # projection (see the assumptions printed with it)
        parts_now = g.get("lm-train-estimate", {}).get("n", 0)
        if count_s and stats_s + est_s and parts_now:
            for T in (10**9, 10**11):
                scale = T / tokens
                ng = ngrams * scale ** GROWTH
                for W in (10, 100):
                    parts = max(2 * W, math.ceil(nbytes * scale / PARTITION_BYTES))  # lm-count's default
                    workers_s = (count_s * scale + (split_s + sum_s + stats_s + est_s) * ng / ngrams) / W
                    shuffle_s = shuffle_b * ng / ngrams * (W - 1) / W / W / LINK_BYTES_PER_S
                    client_s = (client_count + client_train) * ng / ngrams
                    peak = max(rt["rss"].get("worker", [0]))
                    mem_w = min(idle) + (peak - min(idle)) * (ng / parts) / (ngrams / parts_now)
                    proj_rows.append([f"{T / 1e9:g}B", W, parts, f"{ng / 1e9:.2f}B", f"{workers_s / 3600:.2f}",
                                      f"{shuffle_s / 3600:.2f}", f"{client_s / 3600:.2f}",
                                      f"{(workers_s + shuffle_s + client_s) / 3600:.2f}", f"{mem_w / 1024:.1f}"])
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = [f"{started} UTC, {machine()}; {load_before} before, {load_average()} after; {lmtools_version()}.", ""]
    out.append(table(rows, ["tokens", "run", "pipeline", "wall s", "count + train s", "client peak RSS MiB",
                            "worker peak RSS MiB (count; train)", "shards MiB"]))
    out += ["", table(ratio_rows, ["tokens", "cluster", "single wall s (median)", "dask wall s (median)",
                                   "dask / single"])]
    out += ["", "Task rates of the last dask run (compute seconds summed over tasks; LMTOOLS_DASK_TASKS):", "",
            table(rate_rows, ["tokens", "stage", "tasks", "seconds", "rate"])]
    if proj_rows:
        out += ["", "Projection (on paper, from the rates above): distinct n-grams grow as tokens^0.91 (measured "
                    "10M -> 40M on sampled text); partitions as lm-count --dask's default (one per 128M of text, "
                    "at least 2 per worker); the worker stages' task seconds divide by W with no loss; the "
                    "shuffle's pieces cross a 1 Gbit/s link per worker, (W-1)/W of them; the client's serial "
                    "part (start-up, the vocabulary join, writing the shards; the merge, query tables and "
                    "writing one model file) grows with the n-grams. Worker memory: a resting worker's RSS (a "
                    "train on 2 MB of text) plus the measured train-worker peak above it, scaled by n-grams per "
                    "partition.", "",
                table(proj_rows, ["tokens", "workers", "partitions", "n-grams", "workers h", "shuffle h", "client h",
                                  "total h", "GiB per worker"])]
    out += [""] + [f"- {c}" for c in checks]
    return "\n".join(out)
