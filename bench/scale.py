"""Scale benchmark (issue 12): `lm-count -n 5 | lm-train` against KenLM's `lmplz -o 5` on sampled corpora.

    .venv/bin/python bench/scale.py [--tokens 10M] [--memory 1G --memory 4G] [--repeat 2] [--record]
    make bench-scale                       (the same with BENCH_SCALE_ARGS="...")

Corpora: text sampled with `lm-gen` from the modified Kneser-Ney 5-gram of PTB train
(../shared/data/ptb/train.txt, trained once with `lm-train -n 5`), so that it holds as many distinct
n-grams as real text of its size. Sizes 10M, 40M, 100M tokens (--tokens, repeatable or comma-separated;
a token is a word or an end of sentence, as lm-ppl and KenLM's query count them). A corpus is made
from a fixed seed (--seed) in chunks of --chunk sentences, chunk i drawn with seed SEED*100000+i, and
cut at the first line that reaches the size: the same seed gives the same bytes, and a smaller corpus
is a prefix of a larger one. Corpora, the PTB model and the run outputs are cached in --data-dir
(default $LMTOOLS_BENCH_DATA or /tmp/lmtools-bench; never inside the repository: several GB at 100M).
With --dask SPEC (e.g. local:2) the comparison is the Dask pipeline against the single process instead
(bench/scale_dask.py: stages, every process's peak RSS, per-task rates, a projection to 1B and 100B tokens).

For each size, budget (--memory, default 1G and 4G) and repetition (--repeat), alternating which runs
first:

    lm-count -n 5 [-S X -T DIR] CORPUS | lm-train [-S X -T DIR] -q -o kn5.lm
    lmplz -o 5 -S X -T DIR --discount_fallback < CORPUS > kn5.arpa

(--discount_fallback: sampled text has no word rare enough for lmplz's unigram discounts.) -S/-T are
passed to lm-count and lm-train only if their --help lists them; otherwise they run without them and
the table says so. Measured: the wall time of the whole pipe; the peak RSS of EVERY process (each runs
under /usr/bin/time -f '%M %e'); the peak temporary disk use in the run's private -T directory (polled:
the files in it plus the files under it that the run's processes hold open, deleted or not, since lmplz
unlinks its temporaries at once); the output size; lmtools' time / lmplz's time.

Then the perplexity check: the lmtools model's and lmplz's perplexity of PTB test (<unk> kept as is:
neither model was trained on a literal <unk>, so both score it as their unknown word), lm-ppl against
KenLM's query on lmplz's ARPA, and the total log10 probabilities compared (query's per-sentence totals
summed). Issue 12 asks this of the 40M-token model, to 1e-4.

Peer: lmplz and query are found through $LMPLZ / $KENLM_QUERY, or $KENLM_BIN (a directory holding
KenLM's lmplz, query and build_binary: e.g. KENLM_BIN=$HOME/kenlm/build/bin), or PATH. KenLM is never
part of lmtools; build it elsewhere (github.com/kpu/kenlm, cmake + make). Without it the lmtools runs
are still measured and the peer is reported as missing.

The table goes to stdout; --record also appends it to bench/RESULTS.md with the date, the load average
and the exact command.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import PTB, ROOT, machine, ours, peer, table  # noqa: E402

TIME = "/usr/bin/time"


# ---------------------------------------------------------------- helpers shared with query_peer.py

def parse_size(text: str) -> int:
    """'10M' -> 10_000_000 (K, M, G: powers of 1000; tokens, not bytes)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 10M)")
    return int(float(m.group(1)) * {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}[m.group(2).upper()])


def size_label(n: int) -> str:
    for unit, v in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n % v == 0:
            return f"{n // v}{unit}"
    return str(n)


def data_dir(arg: str | None) -> Path:
    d = Path(arg or os.environ.get("LMTOOLS_BENCH_DATA") or "/tmp/lmtools-bench").resolve()
    if d == ROOT or ROOT in d.parents:
        sys.exit(f"scale: error: --data-dir {d} is inside the repository; give a directory outside it")
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_average() -> str:
    return "load average " + " ".join(open("/proc/loadavg").read().split()[:3])


def run(cmd, **kw) -> subprocess.CompletedProcess:
    """Run an untimed preparation step; stop with its stderr if it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        shown = cmd if isinstance(cmd, str) else shlex.join(map(str, cmd))
        sys.exit(f"scale: error: {shown} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def ptb_model(d: Path) -> Path:
    """The PTB train 5-gram (lmtools model file), trained once and cached."""
    p = d / "ptb-kn5.lm"
    if not p.exists():
        print(f"# training the PTB 5-gram: lm-train -n 5 {PTB / 'train.txt'} -o {p}", file=sys.stderr)
        run([ours("lm-train"), "-q", "-n", "5", str(PTB / "train.txt"), "-o", str(p)])
    return current_tables(p)


def current_tables(model: Path) -> Path:
    """``model`` (a cached lmtools model file), its query tables rewritten first if they are of another
    layout than this lmtools writes: a reader would rebuild them at every load, which is not what a
    benchmark of scoring means to time. The same estimate (lm-train MODEL -o NEW)."""
    info = run([ours("lm-info"), str(model)]).stdout
    fields = dict(line.split("\t", 1) for line in info.splitlines() if "\t" in line)
    want = run([sys.executable, "-c", "from lmtools.ngram.model import QUERY_LAYOUT; print(QUERY_LAYOUT)"]).stdout.strip()
    if fields.get("query_tables") == "true" and fields.get("query_layout") != want:
        print(f"# query tables of layout {fields.get('query_layout')}, not {want}: lm-train {model} -o {model}",
              file=sys.stderr)
        part = model.with_name(model.name + ".relayout")
        run([ours("lm-train"), "-q", str(model), "-o", str(part)])
        part.replace(model)
    return model


def corpus(d: Path, tokens: int, seed: int = 1, chunk: int = 200_000, threads: int = 2) -> Path:
    """A corpus of at least ``tokens`` tokens sampled from the PTB 5-gram (cached; see the module doc)."""
    path = d / f"sampled-{size_label(tokens)}-seed{seed}.txt"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path
    model = ptb_model(d)
    part = path.with_suffix(".part")
    n_tok = n_sent = n_words = 0
    t0 = time.perf_counter()
    with open(part, "w") as out:
        i = 0
        while n_tok < tokens:
            cmd = [ours("lm-gen"), "-m", str(model), "-s", str(chunk), "--seed", str(seed * 100000 + i),
                   "--threads", str(threads)]
            lines = run(cmd).stdout.splitlines(keepends=True)
            for line in lines:
                w = len(line.split())
                out.write(line)
                n_sent += 1
                n_words += w
                n_tok += w + 1
                if n_tok >= tokens:
                    break
            i += 1
            print(f"# {path.name}: {n_tok} of {tokens} tokens", file=sys.stderr)
    part.rename(path)
    meta.write_text(json.dumps({
        "tokens": n_tok, "sentences": n_sent, "words": n_words, "seed": seed, "chunk": chunk,
        "chunks": i, "model": str(model), "seconds": round(time.perf_counter() - t0, 1),
        "command": f"lm-gen -m {model} -s {chunk} --seed {seed}*100000+i (i = 0..{i - 1}), "
                   f"cut after {n_sent} lines"}, indent=1))
    return path


def corpus_meta(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def lmtools_version() -> str:
    """Which lmtools the programs import: the repository (its commit, and whether lmtools/ has uncommitted
    changes: several people edit it at once) or another copy (e.g. a `git archive` of a commit put first
    on PYTHONPATH; its COMMIT file, if it has one)."""
    r = subprocess.run([sys.executable, "-c", "import lmtools, os; print(os.path.dirname(lmtools.__file__))"],
                       capture_output=True, text=True, cwd="/")  # not the repository: python -c puts the cwd first
    where = Path(r.stdout.strip()).parent
    if where == ROOT:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "lmtools"],
                               capture_output=True, text=True).stdout.splitlines()
        return f"lmtools {head}" + (f" with uncommitted changes in {len(dirty)} files of lmtools/" if dirty else "")
    commit = (where / "COMMIT").read_text().strip() if (where / "COMMIT").exists() else "?"
    return f"lmtools from {where} (commit {commit})"


def supports(program: str, option: str) -> bool:
    """Whether ``program --help`` lists ``option`` (the bounded-memory options are being added)."""
    r = subprocess.run([ours(program), "--help"], capture_output=True, text=True)
    return re.search(rf"(^|[\s,]){re.escape(option)}([\s,=]|$)", r.stdout, re.M) is not None


# ---------------------------------------------------------------- measuring a pipe

def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for e in os.scandir("/proc"):
        if not e.name.isdigit():
            continue
        try:
            stat = open(f"/proc/{e.name}/stat").read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(e.name))
    return kids


class TempDiskPoll(threading.Thread):
    """Peak bytes on disk under ``tmp``: its files plus the files under it that the process tree of
    ``pid`` holds open (lmplz creates its temporaries and unlinks them at once)."""

    def __init__(self, pid: int, tmp: Path, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.tmp, self.interval = pid, str(tmp), interval
        self.peak = 0
        self.done = threading.Event()

    def sample(self) -> int:
        seen: dict[tuple[int, int], int] = {}
        for dirpath, _, files in os.walk(self.tmp):
            for f in files:
                try:
                    st = os.lstat(os.path.join(dirpath, f))
                except OSError:
                    continue
                seen[st.st_dev, st.st_ino] = st.st_blocks * 512
        kids, todo = _children(), [self.pid]
        while todo:
            p = todo.pop()
            todo.extend(kids.get(p, ()))
            try:
                fds = os.listdir(f"/proc/{p}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{p}/fd/{fd}").startswith(self.tmp + "/"):
                        st = os.stat(f"/proc/{p}/fd/{fd}")
                        seen[st.st_dev, st.st_ino] = st.st_blocks * 512
                except OSError:
                    continue
        return sum(seen.values())

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.sample())
            self.done.wait(self.interval)


def measure(stages: list[tuple[str, str]], tmp: Path, stdin: Path | None = None, stdout: Path | None = None,
            env: dict | None = None, poll: bool = True) -> dict:
    """Run the pipe of ``stages`` (name, shell command) under bash -o pipefail, each stage under
    /usr/bin/time; return the wall time, each stage's peak RSS (MiB) and seconds, the peak temp disk
    (polled only with ``poll``: the poller takes a little CPU)."""
    tmp.mkdir(parents=True, exist_ok=True)
    stats = [tmp.parent / f"{tmp.name}.time{i}" for i in range(len(stages))]
    pipe = " | ".join(f"{TIME} -f '%M %e' -o {shlex.quote(str(s))} {cmd}" for s, (_, cmd) in zip(stats, stages))
    if stdin:
        pipe = f"< {shlex.quote(str(stdin))} {pipe}"
    if stdout:
        pipe = f"{pipe} > {shlex.quote(str(stdout))}"
    e = dict(os.environ, TMPDIR=str(tmp), **(env or {}))
    t0 = time.perf_counter()
    p = subprocess.Popen(["bash", "-o", "pipefail", "-c", pipe], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=e)
    poller = TempDiskPoll(p.pid, tmp)
    if poll:
        poller.start()
    err = p.communicate()[1]
    wall = time.perf_counter() - t0
    if poll:
        poller.done.set()
        poller.join()
    if p.returncode != 0:
        sys.exit(f"scale: error: the pipe failed ({p.returncode}): {pipe}\n{err.decode(errors='replace')[-3000:]}")
    procs = []
    for s, (name, _) in zip(stats, stages):
        rss_kb, secs = open(s).read().split()[-2:]
        procs.append({"name": name, "rss_mib": int(rss_kb) / 1024, "seconds": float(secs)})
        s.unlink()
    shutil.rmtree(tmp, ignore_errors=True)
    return {"command": pipe, "wall": wall, "procs": procs, "temp_mib": poller.peak / 2**20}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 22), b""):
            h.update(b)
    return h.hexdigest()


def query_totals(query: str, model: Path, text: Path) -> dict:
    """KenLM query's per-sentence totals summed (log10, OOVs included) and its summary lines."""
    r = run(f"{shlex.quote(query)} -v sentence -v summary {shlex.quote(str(model))} < {shlex.quote(str(text))}",
            shell=True)
    total = sum(float(m.group(1)) for m in re.finditer(r"^Total: (\S+) OOV:", r.stdout, re.M))
    summ = dict(re.findall(r"^(Perplexity including OOVs|Perplexity excluding OOVs|OOVs|Tokens):\t(\S+)",
                           r.stdout, re.M))
    tokens = int(summ["Tokens"])
    # query prints its perplexity to 6 digits; the one of the summed totals is finer.
    return {"logprob": total, "ppl": 10 ** (-total / tokens), "ppl_printed": float(summ["Perplexity including OOVs"]),
            "oovs": int(summ["OOVs"]), "tokens": tokens}


def lmppl_totals(model: Path, text: Path, threads: int = 1) -> dict:
    r = run([ours("lm-ppl"), "--json", "--threads", str(threads), "-m", str(model), str(text)])
    t = json.loads(r.stdout)["total"]
    return {"logprob": t["logprob"], "ppl": t["ppl"], "oovs": t["oovs"], "tokens": t["tokens"]}


# ---------------------------------------------------------------- the benchmark

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", action="append", default=None, metavar="SIZE",
                    help="corpus sizes (10M, 40M, 100M; repeat or separate by commas; default 10M)")
    ap.add_argument("--memory", action="append", default=None, metavar="X",
                    help="budgets -S (lmplz syntax; repeat or separate by commas; default 1G and 4G)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each tool per size and budget, alternating")
    ap.add_argument("--data-dir", default=None,
                    help="cache of corpora and outputs (default $LMTOOLS_BENCH_DATA or /tmp/lmtools-bench)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the sampled corpora")
    ap.add_argument("--chunk", type=int, default=200_000, help="sentences per lm-gen call")
    ap.add_argument("--no-ppl", action="store_true", help="skip the PTB-test perplexity check")
    ap.add_argument("--no-peer", action="store_true", help="run lmtools only")
    ap.add_argument("--keep", action="store_true", help="keep the models and ARPA files in the data dir")
    ap.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    ap.add_argument("--dask", default=None, metavar="SPEC",
                    help="instead of lmplz: the Dask pipeline (lm-count --dask SPEC --shards, lm-train --dask SPEC) "
                         "against the single process, e.g. --dask local:2 (bench/scale_dask.py)")
    args = ap.parse_args()
    sizes = [parse_size(x) for a in (args.tokens or ["10M"]) for x in a.split(",") if x]
    budgets = [x for a in (args.memory or ["1G,4G"]) for x in a.split(",") if x]
    d = data_dir(args.data_dir)
    if args.dask:
        from scale_dask import dask_compare

        report = dask_compare(args, sizes, d, args.dask)
        print(report)
        if args.record:
            cmd = shlex.join([".venv/bin/python", "bench/scale.py", *sys.argv[1:]])
            with open(ROOT / "bench" / "RESULTS.md", "a") as f:
                f.write(f"\n## Scale: the Dask pipeline against the single process (issue 14)\n\n"
                        f"    LMTOOLS_BENCH_DATA={d} {cmd}\n\n{report}\n")
        return
    lm_count, lm_train = ours("lm-count"), ours("lm-train")
    lmplz = None if args.no_peer else peer("lmplz", "LMPLZ")
    query = None if args.no_peer else peer("query", "KENLM_QUERY")
    bounded = {p: supports(p, "--memory") and supports(p, "--temp-dir") for p in ("lm-count", "lm-train")}
    notes = []
    for p, ok in bounded.items():
        if not ok:
            notes.append(f"{p} has no -S/--memory and -T/--temp-dir yet (its --help does not list them): it ran "
                         f"without a budget, so its rows show the unbounded program at every -S")
    if not args.no_peer and not lmplz:
        notes.append("lmplz not found (set KENLM_BIN=/path/to/kenlm/build/bin, or LMPLZ, or put it on PATH): "
                     "lmtools ran alone")
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load_average()
    print(f"# scale: {machine()}; {load_before} at {started:%Y-%m-%d %H:%M} UTC", file=sys.stderr)

    rows, ratio_rows, ppl_rows, hashes = [], [], [], []
    for n in sizes:
        text = corpus(d, n, args.seed, args.chunk)
        meta = corpus_meta(text)
        label = size_label(n)
        work = d / "runs" / label
        work.mkdir(parents=True, exist_ok=True)
        print(f"# {text}: {meta['tokens']} tokens, {meta['sentences']} sentences", file=sys.stderr)
        # One untimed run of the pipe on a slice, with the options of the timed runs: every kernel is in
        # numba's cache before the first timed run.
        warm = work / "tmp-warm"
        warm.mkdir(exist_ok=True)
        wo = lambda p: f" -S {budgets[0]} -T {warm}" if bounded[p] else ""  # noqa: E731
        run(f"head -c 1000000 {shlex.quote(str(text))} | {lm_count} -q -n 5{wo('lm-count')} | "
            f"{lm_train} -q{wo('lm-train')} > /dev/null", shell=True)
        shutil.rmtree(warm, ignore_errors=True)
        walls: dict[tuple[str, str], list[float]] = {}
        models: dict[str, Path] = {}
        arpa = work / "lmplz.arpa"
        for rep in range(args.repeat):
            for budget in budgets:
                jobs = ["ours", "peer"] if rep % 2 == 0 else ["peer", "ours"]
                for job in jobs:
                    tmp = work / f"tmp-{job}-{uuid.uuid4().hex[:8]}"
                    if job == "ours":
                        out = work / f"lmtools-S{budget}.lm"
                        so = lambda p: f" -S {budget} -T {tmp}" if bounded[p] else ""  # noqa: E731
                        r = measure([("lm-count", f"{lm_count} -q -n 5{so('lm-count')} {text}"),
                                     ("lm-train", f"{lm_train} -q{so('lm-train')} -o {out}")], tmp)
                        size_mb = out.stat().st_size / 1e6
                        models[budget] = out
                        tool = " | ".join(p + (" -S" if bounded[p] else " (no -S)") for p in bounded)
                    else:
                        if not lmplz:
                            continue
                        r = measure([("lmplz", f"{lmplz} -o 5 -S {budget} -T {tmp} --discount_fallback")], tmp,
                                    stdin=text, stdout=arpa)
                        size_mb = arpa.stat().st_size / 1e6
                        tool = "lmplz -o 5 --discount_fallback"
                    walls.setdefault((budget, job), []).append(r["wall"])
                    rss = ", ".join(f"{p['name']} {p['rss_mib']:.0f}" for p in r["procs"])
                    secs = ", ".join(f"{p['name']} {p['seconds']:.1f}" for p in r["procs"])
                    rows.append([label, budget, rep + 1, tool, f"{r['wall']:.1f}", secs, rss,
                                 f"{r['temp_mib']:.0f}", f"{size_mb:.0f}",
                                 f"{r['wall'] / meta['tokens'] * 1e6:.2f}"])
                    print("# " + " | ".join(map(str, rows[-1])) + f"   ({load_average()})", file=sys.stderr)
        for budget in budgets:
            w_ours = statistics.median(walls[budget, "ours"])
            w_peer = statistics.median(walls[budget, "peer"]) if (budget, "peer") in walls else None
            ratio_rows.append([label, budget, f"{w_ours:.1f}", f"{w_peer:.1f}" if w_peer else "-",
                               f"{w_ours / w_peer:.2f}" if w_peer else "-"])
        digests = {b: sha256(m) for b, m in models.items()}
        hashes.append(f"{label}: lmtools model files at " + ", ".join(f"-S {b}" for b in digests) +
                      (" (one budget)" if len(digests) == 1 else
                       " byte-identical" if len(set(digests.values())) == 1 else
                       " differ in bytes (sizes " + ", ".join(f"{m.stat().st_size / 1e6:.0f}" for m in models.values()) +
                       " MB; their perplexities are below)") +
                      " (sha256 " + ", ".join(x[:12] for x in digests.values()) + ")")
        if not args.no_ppl:
            test = PTB / "test.txt"
            # Every budget's model: they may differ in bytes (a model estimated on disk is written
            # without its query tables when those do not fit the budget) but not in a probability.
            for b in budgets:
                mine = lmppl_totals(models[b], test)
                ppl_rows.append([label, f"lm-ppl (lmtools model, -S {b})", f"{mine['ppl']:.6f}",
                                 f"{mine['logprob']:.4f}", mine["oovs"], mine["tokens"], "-"])
            if lmplz and query and arpa.exists():
                theirs = query_totals(query, arpa, test)
                ppl_rows.append([label, "query (lmplz ARPA)", f"{theirs['ppl']:.6f} ({theirs['ppl_printed']:g})",
                                 f"{theirs['logprob']:.4f}", theirs["oovs"], theirs["tokens"],
                                 f"ppl {mine['ppl'] - theirs['ppl']:+.2e}, log10 {mine['logprob'] - theirs['logprob']:+.4f}"])
            elif lmplz:
                notes.append("KenLM's query not found: the perplexity check compared nothing")
        if not args.keep:
            for m in list(models.values()) + [arpa]:
                m.unlink(missing_ok=True)

    out = [f"{started:%Y-%m-%d %H:%M} UTC, {machine()}; {load_before} before, {load_average()} after; "
           f"{lmtools_version()}.", ""]
    out.append(table(rows, ["tokens", "-S", "run", "tool", "wall s", "s per process", "peak RSS MiB per process",
                            "temp disk MiB", "output MB", "us/token"]))
    out += ["", table(ratio_rows, ["tokens", "-S", "lmtools wall s (median)", "lmplz wall s (median)",
                                   "lmtools / lmplz"])]
    if ppl_rows:
        out += ["", "Perplexity of PTB test (82k tokens, <unk> as is: lm-ppl takes it as the model's <unk>, "
                    "query counts it as an OOV, both score it with p(<unk>)). query's log10 p is the sum of its "
                    "per-sentence totals (-v sentence), its ppl 10^(-log10 p / tokens), in brackets as it prints "
                    "it (6 digits):", "",
                table(ppl_rows, ["tokens", "scorer", "ppl", "total log10 p", "OOVs", "tokens scored",
                                 "lmtools - query"])]
    out += [""] + [f"- {h}" for h in hashes] + [f"- {x}" for x in notes]
    report = "\n".join(out)
    print(report)
    if args.record:
        cmd = shlex.join([".venv/bin/python", "bench/scale.py", *sys.argv[1:]])
        env = "".join(f"{k}={os.environ[k]} " for k in ("PYTHONPATH", "KENLM_BIN") if os.environ.get(k))
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(f"\n## Scale: lm-count | lm-train against lmplz on sampled corpora (issue 12)\n\n"
                    f"    {env}LMTOOLS_BENCH_DATA={d} {cmd}\n\n{report}\n")


if __name__ == "__main__":
    main()
