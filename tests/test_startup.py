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
                  "numba": "numba" in sys.modules, "scipy.linalg": "scipy.linalg" in sys.modules}))
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


def test_ngram_sampling_skips_the_blas_probe(tmp_path):
    # lm-gen with an n-gram model loads numba's kernels but not scipy.linalg (numba's BLAS probe)
    model = tmp_path / "m.lm"
    subprocess.run([sys.executable, "-m", "lmtools.cli.count", "-n", "2", str(SHAKESPEARE), "-o", str(model)],
                   check=True, timeout=300)
    got = probe("gen", [["lm-gen", "-m", str(model), "-s", "2", "--seed", "1"]])
    assert got["codes"][0][0] == 0, got["codes"]
    assert got["numba"] and not got["scipy.linalg"]
