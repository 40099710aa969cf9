"""What a program imports before it does any work (DESIGN.md, "Where the time goes"): --help,
--version and usage errors import none of the heavy packages (numpy, numba, scipy, msgpack, rich),
nor does importing a program's module; a program whose input is small enough for its plain-Python or
numpy path does not import numba. No timings here (they belong to bench/bench_startup.py): only
which modules a fresh interpreter holds afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROGRAMS, SHAKESPEARE

HEAVY = ("numpy", "numba", "llvmlite", "scipy", "msgpack", "rich")

# Runs the program's main() in this interpreter for each argv, then prints the exit codes and the
# heavy packages that were imported, as JSON.
_PROBE = """
import contextlib, io, json, sys
module, heavy, runs = sys.argv[1], sys.argv[2].split(","), json.loads(sys.argv[3])
codes = []
for argv in runs:
    sys.argv = argv
    main = __import__("lmtools.cli." + module, fromlist=["main"]).main
    out, err = (io.TextIOWrapper(io.BytesIO(), write_through=True) for _ in range(2))  # with .buffer
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            rc = 0
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    codes.append([rc] + [f.buffer.getvalue()[:200].decode(errors="replace") for f in (out, err)])
print(json.dumps({"codes": codes, "heavy": [h for h in heavy if h in sys.modules],
                  "numba": "numba" in sys.modules, "scipy.linalg": "scipy.linalg" in sys.modules,
                  "kernels": sorted(m for m in sys.modules if m.startswith("lmtools.kernels."))}))
"""


def probe(module: str, runs: list[list[str]]) -> dict:
    r = subprocess.run([sys.executable, "-c", _PROBE, module, ",".join(HEAVY), json.dumps(runs)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_probe_sees_heavy_imports():
    # the check can fail: importing the mixture scorer does import numpy
    code = "import sys; import lmtools.mixture; print([h for h in %r if h in sys.modules])" % (HEAVY,)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "numpy" in r.stdout


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_help_version_and_usage_errors_import_nothing_heavy(prog):
    module = PROGRAMS[prog]
    runs = [[prog, "--help"], [prog, "--version"], [prog, "--no-such-option"]]
    got = probe(module, runs)
    (help_rc, help_out, _), (ver_rc, ver_out, _), (bad_rc, _, bad_err) = got["codes"]
    assert help_rc == 0 and "Usage:" in help_out
    assert ver_rc == 0 and ver_out.startswith(f"{prog} (lmtools) ")
    assert bad_rc == 2 and "--no-such-option" in bad_err
    assert got["heavy"] == [], f"{prog} --help/--version/usage error imported {got['heavy']}"


@pytest.mark.parametrize("prog, args", [
    ("lm-ppl", ["-m", "m.lm", "--lambda", "0.5,0.7", "-m", "n.lm", "t.txt"]),  # weights that sum past 1
    ("lm-score", ["-m", "m.lm", "--lambda", "1.5"]),
    ("lm-gen", ["-m", "m.lm", "--temperature", "0"]),
    ("lm-train", ["-n", "three", "counts.lm"]),
    ("lm-count", ["-n", "0"]),
])
def test_option_value_errors_import_nothing_heavy(prog, args):
    got = probe(PROGRAMS[prog], [[prog, *args]])
    (rc, _, err), = got["codes"]
    assert rc == 2 and err.startswith(f"{prog}: error: "), err
    assert got["heavy"] == [], f"{prog} {' '.join(args)}: imported {got['heavy']}"


@pytest.mark.parametrize("module", sorted(set(PROGRAMS.values())))
def test_importing_a_program_imports_nothing_heavy(module):
    code = f"import sys; import lmtools.cli.{module}; print([h for h in {HEAVY!r} if h in sys.modules])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_small_merge_does_not_import_numba(tmp_path):
    # two small count files are summed in plain Python; the numba table is for big ones
    lines = SHAKESPEARE.read_text().splitlines(keepends=True)[:400]
    paths = []
    for i in range(2):
        t = tmp_path / f"s{i}.txt"
        t.write_text("".join(lines[i::2]))
        c = tmp_path / f"s{i}.lm"
        subprocess.run([sys.executable, "-m", "lmtools.cli.count", "-n", "3", str(t), "-o", str(c)], check=True,
                       timeout=300)
        paths.append(str(c))
    got = probe("merge", [["lm-merge", *paths, "-o", str(tmp_path / "m.lm")]])
    assert got["codes"][0][0] == 0
    assert not got["numba"] and "numpy" in got["heavy"]


@pytest.mark.slow
def test_ngram_sampling_skips_the_blas_probe(tmp_path):
    # lm-gen with an n-gram model loads numba's kernels but not scipy.linalg (numba's BLAS probe)
    model = tmp_path / "m.lm"
    subprocess.run([sys.executable, "-m", "lmtools.cli.count", "-n", "2", str(SHAKESPEARE), "-o", str(model)],
                   check=True, timeout=300)
    got = probe("gen", [["lm-gen", "-m", str(model), "-s", "2", "--seed", "1"]])
    assert got["codes"][0][0] == 0, got["codes"]
    assert got["numba"] and not got["scipy.linalg"]


def _shakespeare_counts(tmp_path, order=4, lines=3000):
    from lmtools.ngram import counting

    text = tmp_path / "t.txt"
    text.write_text("".join(SHAKESPEARE.read_text().splitlines(keepends=True)[:lines]))
    return counting.count_levels([str(text)], order)


def test_small_index_functions_equal_the_kernels(tmp_path):
    import numpy as np

    from lmtools.kernels import count as kc
    from lmtools.kernels import small
    from lmtools.kernels import smooth as ks

    levels = _shakespeare_counts(tmp_path)
    V = len(levels.vocab)
    rows = np.arange(V, dtype=np.int32).reshape(V, 1)
    rank = np.arange(V, dtype=np.int64)
    ngrams = [rows]
    for prefix, word, _ in levels.levels:
        a = kc.build_sorted(prefix, word, rank, rows, V)
        b = small.build_sorted(prefix, word, rank, rows, V)
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and np.array_equal(x, y)
        # the rows are those of the n-grams in order; the ranks invert the order
        assert np.array_equal(a[0][:, :-1], rows[rank[prefix]][a[2]]) and np.array_equal(a[0][:, -1], word[a[2]])
        assert np.array_equal(a[1][a[2]], np.arange(a[2].size))
        for f in (kc.build_sorted, small.build_sorted):  # without the ranks (the highest order): the rest alike
            c = f(prefix, word, rank, rows, V, False)
            assert c[1].size == 0 and np.array_equal(c[0], a[0]) and np.array_equal(c[2], a[2])
        rows, rank = a[0], a[1]
        ngrams.append(rows)
    assert len(ngrams) == 4 and ngrams[3].shape[0] > 1000
    rng = np.random.default_rng(5)
    for n in range(2, 5):
        hi, lo = ngrams[n - 1], ngrams[n - 2]
        # drop some rows of the lower order, so that some prefixes are absent (-1)
        kept = np.ascontiguousarray(lo[np.sort(rng.choice(lo.shape[0], lo.shape[0] * 3 // 4, replace=False))])
        for low in (lo, kept):
            x, y = ks.prefix_index(hi, low), small.prefix_index(hi, low)
            assert x.dtype == y.dtype and np.array_equal(x, y)
        assert (ks.prefix_index(hi, kept) < 0).any()
    # suffix_index over the smoothing Index's own arrays, and with absent contexts and words
    pre3 = ks.prefix_index(ngrams[2], ngrams[1])
    pre4 = ks.prefix_index(ngrams[3], ngrams[2])
    suf3 = ks.suffix_index(pre3, np.ascontiguousarray(ngrams[2][:, 2]), ngrams[1][:, 1].astype(np.int64),
                           np.concatenate([[0], np.cumsum(np.bincount(ks.prefix_index(ngrams[1], ngrams[0]),
                                                                       minlength=V))]).astype(np.int64),
                           np.ascontiguousarray(ngrams[1][:, 1]))
    start = np.zeros(ngrams[1].shape[0] + 1, np.int64)
    np.cumsum(np.bincount(pre3, minlength=ngrams[1].shape[0]), out=start[1:])
    holes = suf3.copy()
    holes[::7] = -1
    last = np.ascontiguousarray(ngrams[3][:, 3])
    for suf_prev, lastw in ((suf3, last), (holes, last), (suf3, (last + 1) % V)):
        args = (pre4, np.ascontiguousarray(lastw), suf_prev, start, np.ascontiguousarray(ngrams[2][:, 2]))
        x, y = ks.suffix_index(*args), small.suffix_index(*args)
        assert x.dtype == y.dtype and np.array_equal(x, y)
        assert (x >= 0).any()
    assert (ks.suffix_index(pre4, np.ascontiguousarray((last + 1) % V), suf3, start,
                            np.ascontiguousarray(ngrams[2][:, 2])) < 0).any()


@pytest.mark.parametrize("method", ["kn-modified", "wb"])
def test_small_path_smooths_to_the_same_model(tmp_path, monkeypatch, method):
    # the whole estimate (sorting the counts, the smoothing index) both ways: the same model file
    import io

    from lmtools.io.models import save_model
    from lmtools.kernels import small
    from lmtools.ngram.smoothing import smooth

    out = []
    for limit in (0, 1 << 30):  # 0: always the kernels; huge: always the plain-Python twins
        monkeypatch.setattr(small, "SMALL_ROWS", limit)
        model = smooth(_shakespeare_counts(tmp_path, 3, 1500).to_counts(), method)
        model.provenance = {}
        buf = io.BytesIO()
        save_model(model, buf)
        out.append(buf.getvalue())
    assert out[0] == out[1]


def test_small_ngram_training_loads_no_counting_or_smoothing_kernel(tmp_path):
    # sorting the counts and the smoothing index take the plain-Python twins (kernels/small.py); what
    # writing the model file needs is its own business
    counts = tmp_path / "c.lm"
    text = tmp_path / "t.txt"
    text.write_text("".join(SHAKESPEARE.read_text().splitlines(keepends=True)[:300]))
    subprocess.run([sys.executable, "-m", "lmtools.cli.count", "-n", "3", str(text), "-o", str(counts)], check=True,
                   timeout=300)
    got = probe("train", [["lm-train", "-q", str(counts), "-o", str(tmp_path / "m.lm")]])
    assert got["codes"][0][0] == 0, got["codes"]
    assert "lmtools.kernels.small" in got["kernels"]
    assert not {"lmtools.kernels.count", "lmtools.kernels.smooth"} & set(got["kernels"]), got["kernels"]


def test_a_few_ngram_sentences_load_no_numba(tmp_path):
    # lm-gen draws up to PYTHON_SENTENCES sentences of an n-gram model in plain Python
    # (lmtools/ngram/sample_steps.py) and renders them in Python; more go to the kernels
    counts, model = tmp_path / "c.lm", tmp_path / "m.lm"
    text = tmp_path / "t.txt"
    text.write_text("".join(SHAKESPEARE.read_text().splitlines(keepends=True)[:300]))
    subprocess.run([sys.executable, "-m", "lmtools.cli.count", "-n", "3", str(text), "-o", str(counts)], check=True,
                   timeout=300)
    subprocess.run([sys.executable, "-m", "lmtools.cli.train", "-q", str(counts), "-o", str(model)], check=True,
                   timeout=300)
    few = probe("gen", [["lm-gen", "-m", str(model), "-s", "3", "--seed", "1", "--scores"]])
    many = probe("gen", [["lm-gen", "-m", str(model), "-s", "40", "--seed", "1", "--scores"]])
    assert few["codes"][0][0] == 0 and many["codes"][0][0] == 0, (few["codes"], many["codes"])
    assert not few["numba"] and few["kernels"] == ["lmtools.kernels.flat_model"], few["kernels"]
    assert many["numba"] and "lmtools.kernels.sample_sentences" in many["kernels"]
    # the first three of forty are the three (the probe keeps the first 200 characters of stdout)
    lines_few = few["codes"][0][1].splitlines()
    assert lines_few and many["codes"][0][1].startswith(few["codes"][0][1].rsplit("\n", 1)[0])
