"""Scoring throughput, side by side in one run: lm-ppl against KenLM (query binary, kenlm module).

    .venv/bin/python bench/bench_score.py [--repeat 10] [--order 5] [--nltk]

Builds a modified Kneser-Ney model of PTB train (../shared/data/ptb) with lmtools, writes it as an
lmtools model and as ARPA, makes a text of PTB train repeated --repeat times (10: ~9.3M tokens) and
times, on the same files:

- lm-ppl as a whole process (start-up, model load, scoring, report), with 1 and 2 threads;
- inside one process, separately: model file load, table build, scoring of the text;
- the kenlm Python module (if installed): Model(ARPA) load, then the Model.score loop over the
  lines that Python users write (and a check that both agree on the total log10 p);
- KenLM's query binary, if found ($KENLM_QUERY, $KENLM_BIN/query or PATH), on the ARPA (or on a binary model given with --kenlm-binary);
- with --nltk: NLTK's KneserNeyInterpolated on a small sample (it scores ~17 tokens/s).

Each timing is the best of --runs runs (default 2): the machine is shared.
Prints a markdown table (copy it into bench/RESULTS_score.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PTB = ROOT.parent / "shared" / "data" / "ptb"
PY = sys.executable


def best_of(runs, fn):
    """(best wall seconds, CPU seconds of that run's child processes, result)."""
    best = None
    out = None
    cpu = None
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        if best is None or dt < best:
            best, cpu = dt, c
    return best, cpu, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="keep models and text here (default: a temporary directory)")
    ap.add_argument("--kenlm-binary", default=None, help="a KenLM binary model for query (build_binary output)")
    ap.add_argument("--nltk", action="store_true", help="also time NLTK's KneserNeyInterpolated on a sample")
    args = ap.parse_args()
    if not (PTB / "train.txt").exists():
        sys.exit(f"PTB not found at {PTB}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_score."))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from lmtools.io.arpa import write_arpa
    from lmtools.io.models import save_model
    from lmtools.ngram.counting import count_text
    from lmtools.ngram.smoothing import smooth

    model_path = work / f"ptb.kn{args.order}.lm"
    arpa_path = work / f"ptb.kn{args.order}.arpa"
    text_path = work / f"ptb.train.x{args.repeat}.txt"
    if not model_path.exists():
        t = time.perf_counter()
        model = smooth(count_text([str(PTB / "train.txt")], args.order), warn=lambda m: None)
        print(f"# built KN{args.order} of PTB train in {time.perf_counter() - t:.2f} s: {model.sizes()}",
              file=sys.stderr)
        with open(model_path, "wb") as f:
            save_model(model, f)
        with open(arpa_path, "w", encoding="utf-8") as f:
            write_arpa(model, f)
    if not text_path.exists():
        train = (PTB / "train.txt").read_bytes()
        text_path.write_bytes(train * args.repeat)
    env = dict(os.environ)
    rows = []

    # -- lm-ppl, whole process -----------------------------------------------------------------
    def lm_ppl(threads):
        r = subprocess.run([PY, "-m", "lmtools.cli.ppl", "--json", "--threads", str(threads), "-m", str(model_path),
                            str(text_path)], capture_output=True, env=env, cwd=ROOT, check=True)
        return json.loads(r.stdout)["total"]

    lm_ppl(1)  # warm the JIT cache and the page cache
    for threads in (1, 2):
        dt, cpu, tot = best_of(args.runs, lambda: lm_ppl(threads))
        tokens = tot["tokens"]
        rows.append((f"lm-ppl --threads {threads} (whole process)", dt, tokens, tot["logprob"], cpu))

    # -- lmtools, in one process: load, build, score ---------------------------------------------
    code = f"""
import json, time, sys
t0 = time.perf_counter()
from lmtools.kinds import load_scorer
from lmtools.ngram.scores import PplStats
from lmtools.io.text import iter_text_chunks
s = load_scorer([{str(model_path)!r}], skip_blas=True)
t1 = time.perf_counter()
import numpy as np
from lmtools.kernels.query import ppl_sums
ppl_sums(np.zeros(1, np.int32), np.zeros(1, np.bool_), np.zeros(1), np.zeros(1, np.bool_))
t2 = time.perf_counter()
s.warm()
t3 = time.perf_counter()
res = {{}}
for threads in (1, 2):
    best = None
    for _ in range({args.runs}):
        t = time.perf_counter()
        c = time.process_time()
        st = PplStats()
        for ch in iter_text_chunks([{str(text_path)!r}]):
            st.add(s.line_scores(ch.data, threads))
        dt = time.perf_counter() - t
        if best is None or dt < best[0]:
            best = (dt, time.process_time() - c)
    res[threads] = best
print(json.dumps({{"load": t1 - t0, "numba": t2 - t1, "build": t3 - t2, "score1": res[1], "score2": res[2],
                  "tokens": st.tokens, "logprob": st.logprob}}))
"""
    r = subprocess.run([PY, "-c", code], capture_output=True, env=env, cwd=ROOT, check=True)
    inproc = json.loads(r.stdout)
    tokens = inproc["tokens"]
    rows.append(("lmtools: model file load (msgpack, imports included)", inproc["load"], None, None, None))
    rows.append(("lmtools: numba start-up (import, first cached kernel)", inproc["numba"], None, None, None))
    rows.append(("lmtools: hash tables build", inproc["build"], None, None, None))
    rows.append(("lmtools: scoring only, 1 thread (read+tokenize+score)", inproc["score1"][0], tokens,
                 inproc["logprob"], inproc["score1"][1]))
    rows.append(("lmtools: scoring only, 2 threads", inproc["score2"][0], tokens, inproc["logprob"],
                 inproc["score2"][1]))

    # -- kenlm Python module ------------------------------------------------------------------------
    kenlm_code = f"""
import json, time
import kenlm
t0 = time.perf_counter()
m = kenlm.Model({str(arpa_path)!r})
t1 = time.perf_counter()
c1 = time.process_time()
total = 0.0
n = 0
with open({str(text_path)!r}) as f:
    for line in f:
        total += m.score(line, bos=True, eos=True)
        n += len(line.split()) + 1
t2 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "score": t2 - t1, "cpu": time.process_time() - c1, "tokens": n,
                  "logprob": total}}))
"""
    r = subprocess.run([PY, "-c", kenlm_code], capture_output=True, env=env, cwd=ROOT)
    if r.returncode == 0:
        k = json.loads(r.stdout)
        rows.append(("kenlm module: Model(ARPA) load", k["load"], None, None, None))
        rows.append(("kenlm module: Model.score loop", k["score"], k["tokens"], k["logprob"], k["cpu"]))
    else:
        rows.append(("kenlm module: not installed (pip install kenlm)", None, None, None, None))

    # -- KenLM query binary ------------------------------------------------------------------------
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from peers import peer  # KENLM_QUERY, KENLM_BIN or PATH

        query = peer("query", "KENLM_QUERY")
    except ImportError:
        query = shutil.which("query")
    if query:
        target = args.kenlm_binary or str(arpa_path)

        def run_query():
            with open(text_path, "rb") as f:
                return subprocess.run([query, "-v", "summary", target], stdin=f, capture_output=True, check=True)

        dt, cpu, _ = best_of(args.runs, run_query)
        rows.append((f"KenLM query -v summary ({'binary' if args.kenlm_binary else 'ARPA'} model, whole process)",
                     dt, tokens, None, cpu))
    else:
        rows.append(("KenLM query: not on PATH", None, None, None, None))

    # -- NLTK ---------------------------------------------------------------------------------------
    if args.nltk:
        nltk_code = f"""
import json, time
from nltk.lm import KneserNeyInterpolated
from nltk.lm.preprocessing import padded_everygram_pipeline
sents = [l.split() for l in open({str(PTB / 'train.txt')!r})]
t0 = time.perf_counter()
train, vocab = padded_everygram_pipeline(3, sents)
lm = KneserNeyInterpolated(3)
lm.fit(train, vocab)
t1 = time.perf_counter()
n = 0
test = [l.split() for l in open({str(PTB / 'test.txt')!r})][:10]
t2 = time.perf_counter()
for s in test:
    toks = ["<s>", "<s>"] + s + ["</s>"]
    for i in range(2, len(toks)):
        lm.logscore(toks[i], toks[i - 2:i])
        n += 1
t3 = time.perf_counter()
print(json.dumps({{"fit": t1 - t0, "score": t3 - t2, "tokens": n}}))
"""
        r = subprocess.run([PY, "-c", nltk_code], capture_output=True, env=env, cwd=ROOT)
        if r.returncode == 0:
            k = json.loads(r.stdout)
            rows.append(("NLTK KneserNeyInterpolated(3): fit on PTB train", k["fit"], None, None, None))
            rows.append(("NLTK KneserNeyInterpolated(3): logscore loop (10 test sentences)", k["score"], k["tokens"],
                         None, None))
        else:
            rows.append(("NLTK: not installed (pip install nltk)", None, None, None, None))

    print(f"\nText: PTB train x{args.repeat} ({tokens} tokens incl. </s>), model: KN{args.order} of PTB train "
          f"(lmtools model {model_path.stat().st_size / 1e6:.1f} MB, ARPA {arpa_path.stat().st_size / 1e6:.1f} MB)\n")
    print("| what | wall s | tokens/s (wall) | CPU s | tokens per CPU s | total log10 p |")
    print("|---|---|---|---|---|---|")
    for what, dt, n, lp, cpu in rows:
        sec = "-" if dt is None else f"{dt:.3f}"
        rate = "-" if (dt is None or n is None) else f"{n / dt / 1e6:.2f} M"
        if n is not None and dt is not None and n / dt < 1e4:
            rate = f"{n / dt:.1f}"
        cps = "-" if cpu is None else f"{cpu:.3f}"
        crate = "-" if (cpu is None or n is None or cpu <= 0) else f"{n / cpu / 1e6:.2f} M"
        lps = "-" if lp is None else f"{lp:.2f}"
        print(f"| {what} | {sec} | {rate} | {cps} | {crate} | {lps} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (machine shared; best of {args.runs} runs)")
    print(f"\n(workdir: {work})")


if __name__ == "__main__":
    main()
