"""lm-gen through real processes: pipes, reproducibility, --next, character models, bad input."""

import numpy as np
import pytest

from tests.conftest import SHAKESPEARE, run_prog

TEXT = b"\n".join(SHAKESPEARE.read_bytes().split(b"\n")[:3000]) + b"\n"


@pytest.fixture(scope="module")
def counts3(tmp_path_factory):
    r = run_prog("lm-count", "-n", "3", input=TEXT)
    assert r.returncode == 0, r.stderr
    p = tmp_path_factory.mktemp("gen") / "c3.lm"
    p.write_bytes(r.stdout)
    return p


def _error(r, code=1):
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == code, r.stderr
    assert len(lines) == 1 and lines[0].startswith("lm-gen: error: ") and "; " in lines[0], lines
    return lines[0]


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_counts_from_stdin_and_seed_reproducible(counts3):
    data = counts3.read_bytes()
    a = run_prog("lm-gen", "-s", "25", "--seed", "7", input=data)
    assert a.returncode == 0, a.stderr
    assert a.stderr == b""
    lines = a.stdout.decode().split("\n")
    assert len(lines) == 26 and lines[-1] == ""
    b = run_prog("lm-gen", "-m", counts3, "-s", "25", "--seed", "7")
    assert a.stdout == b.stdout
    c = run_prog("lm-gen", "-m", counts3, "-s", "25", "--seed", "8")
    assert c.stdout != a.stdout
    words = set(TEXT.decode().split())
    assert all(w in words for line in lines for w in line.split())  # no <unk>, no specials
    d = run_prog("lm-gen", "-m", counts3, "-s", "25", "--seed", "7", "--threads", "2")
    assert d.stdout == a.stdout


def test_scores_match_lm_score(counts3, tmp_path):
    r = run_prog("lm-gen", "-m", counts3, "-s", "30", "--seed", "3", "--scores", "--max-len", "200")
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t", 1) for line in r.stdout.decode().splitlines()]
    assert len(rows) == 30
    sents = "".join(s + "\n" for _, s in rows).encode()
    model = tmp_path / "kn3.lm"
    t = run_prog("lm-train", "-o", model, counts3)
    assert t.returncode == 0, t.stderr
    sc = run_prog("lm-score", "-m", model, input=sents)
    assert sc.returncode == 0, sc.stderr
    theirs = [float(line.split("\t")[0]) for line in sc.stdout.decode().splitlines()]
    np.testing.assert_allclose([float(x) for x, _ in rows], theirs, atol=2e-4)


def test_prefix_with_oov_warns_and_continues(counts3):
    r = run_prog("lm-gen", "-m", counts3, "-s", "4", "--seed", "1", "--prefix", "I pray qqqqzz")
    assert r.returncode == 0
    assert all(line.startswith("I pray qqqqzz") for line in r.stdout.decode().splitlines())
    assert r.stderr.decode().count("warning") == 1 and "<unk>" in r.stderr.decode()


def test_greedy_is_one_deterministic_line(counts3):
    r = run_prog("lm-gen", "-m", counts3, "--greedy", "--prefix", "I am", "--max-len", "8")
    assert r.returncode == 0
    assert len(r.stdout.decode().splitlines()) == 1
    r2 = run_prog("lm-gen", "-m", counts3, "--greedy", "--prefix", "I am", "--max-len", "8", "--seed", "99")
    assert r2.stdout == r.stdout


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_next_table_sums_and_top(counts3):
    r = run_prog("lm-gen", "-m", counts3, "--next", "I pray", "--top", "5")
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.decode().splitlines()]
    assert len(rows) == 5 and all(len(x) == 3 for x in rows)
    probs = [float(x[1]) for x in rows]
    assert probs == sorted(probs, reverse=True)
    for _, p, lp in rows:
        assert float(lp) == pytest.approx(np.log10(float(p)), abs=1e-4)
    assert "showing the 5 most likely" in r.stderr.decode() and "sums to 1.0000" in r.stderr.decode()
    full = run_prog("lm-gen", "-m", counts3, "--next", "I pray", "--top", "0")
    allp = [float(line.split("\t")[1]) for line in full.stdout.decode().splitlines()]
    assert abs(sum(allp) - 1) < 1e-4 and full.stderr == b""
    assert [line.split("\t")[0] for line in full.stdout.decode().splitlines()[:5]] == [x[0] for x in rows]


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_character_model(tmp_path):
    r = run_prog("lm-count", "-n", "4", "--chars", input=TEXT)
    assert r.returncode == 0
    g = run_prog("lm-gen", "-s", "20", "--seed", "5", "--prefix", "KING R", input=r.stdout)
    assert g.returncode == 0, g.stderr
    lines = g.stdout.decode().splitlines()
    assert len(lines) == 20 and all(line.startswith("KING R") for line in lines)
    assert "<sp>" not in g.stdout.decode() and any(" " in line[7:] for line in lines)
    w = run_prog("lm-gen", "-s", "3", "--seed", "5", "--no-chars", input=r.stdout)
    assert "<sp>" in w.stdout.decode() or all(len(t) == 1 for t in w.stdout.decode().split())
    sp = run_prog("lm-gen", "-s", "5", "--seed", "5", "--prefix", "First ", input=r.stdout)
    assert all(line.startswith("First ") for line in sp.stdout.decode().splitlines())
    nx = run_prog("lm-gen", "--next", "First Citi", "--top", "3", input=r.stdout)
    assert nx.stdout.decode().split("\t")[0] == "z"


@pytest.mark.parametrize("args,what,code", [
    (["--temperature", "0"], "--temperature", 2),
    (["--temperature", "-2"], "--temperature", 2),
    (["--top-k", "0"], "--top-k", 2),
    (["--top-p", "0"], "--top-p", 2),
    (["--max-len", "0"], "--max-len", 2),
    (["-n", "-1"], "-n", 2),
    (["--prefix", "a </s> b"], "<s>", 1),
    (["--next", "x", "--prefix", "y"], "--next", 2),
])
def test_bad_options_one_line(counts3, args, what, code):
    r = run_prog("lm-gen", "-m", counts3, *args)
    assert what in _error(r, code)


def test_empty_counts_model_and_not_a_model(tmp_path):
    empty = run_prog("lm-count", "-n", "2", input=b"")
    assert "no text" in _error(run_prog("lm-gen", input=empty.stdout))
    (tmp_path / "x.txt").write_bytes(b"hello\n")
    _error(run_prog("lm-gen", "-m", tmp_path / "x.txt"))
    _error(run_prog("lm-gen", "-m", tmp_path / "missing.lm"))


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_arpa_model_and_head_closes_quietly(counts3, tmp_path):
    arpa = tmp_path / "m.arpa"
    t = run_prog("lm-train", "--arpa", "-o", arpa, counts3)
    assert t.returncode == 0, t.stderr
    a = run_prog("lm-gen", "-m", arpa, "-s", "10", "--seed", "2")
    assert a.returncode == 0, a.stderr
    assert len(a.stdout.splitlines()) == 10
    import subprocess
    import sys

    p = subprocess.run(f"{sys.executable} -m lmtools.cli.gen -m {arpa} -s 2000000 --seed 1 | head -3",
                       shell=True, capture_output=True, timeout=120)
    assert len(p.stdout.splitlines()) == 3 and b"Traceback" not in p.stderr and b"error" not in p.stderr


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_ffnn_model_file(tmp_path):
    from lmtools.io.models import save_model
    from tests.test_sample import _ffnn

    m = _ffnn("softmax", V=30, ctx=3)
    with open(tmp_path / "ffnn.lm", "wb") as f:
        save_model(m, f)
    a = run_prog("lm-gen", "-m", tmp_path / "ffnn.lm", "-s", "8", "--seed", "4", "--scores", "--top-k", "5")
    assert a.returncode == 0, a.stderr
    rows = [line.split("\t") for line in a.stdout.decode().splitlines()]
    assert len(rows) == 8 and all(float(x) < 0 for x, _ in rows)
    assert all(w.startswith("w") for _, s in rows for w in s.split())
    b = run_prog("lm-gen", "-m", tmp_path / "ffnn.lm", "-s", "8", "--seed", "4", "--scores", "--top-k", "5")
    assert a.stdout == b.stdout
    # the scores lm-gen prints are lm-score's, to the last digit (one forward pass for both; a model
    # whose matrix products are exact, see exact_products_ffnn)
    from tests.test_sample import exact_products_ffnn

    with open(tmp_path / "exact.lm", "wb") as f:
        save_model(exact_products_ffnn("class"), f)
    g = run_prog("lm-gen", "-m", tmp_path / "exact.lm", "-s", "40", "--seed", "2", "--scores", "--max-len", "500")
    rows = [line.split("\t") for line in g.stdout.decode().splitlines()]
    sc = run_prog("lm-score", "-m", tmp_path / "exact.lm", input="".join(s + "\n" for _, s in rows).encode())
    assert sc.returncode == 0, sc.stderr
    assert [x for x, _ in rows] == [line.split("\t")[0] for line in sc.stdout.decode().splitlines()]
    nx = run_prog("lm-gen", "-m", tmp_path / "ffnn.lm", "--next", "w1 w2", "--top", "0")
    assert abs(sum(float(line.split("\t")[1]) for line in nx.stdout.decode().splitlines()) - 1) < 1e-5
