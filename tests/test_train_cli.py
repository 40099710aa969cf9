"""lm-train through real processes: pipes, ARPA in and out, options, and bad input."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHAKESPEARE, run_prog

HERE = Path(__file__).parent
KENLM_O3 = HERE / "data" / "kenlm" / "tinyshakespeare-train.o3.arpa.xz"
TEXT = b"".join(SHAKESPEARE.read_bytes().splitlines(keepends=True)[:400])


def _load(data: bytes):
    from lmtools.io.models import load_model

    return load_model(io.BufferedReader(io.BytesIO(data)))


def _one_error_line(r, code=1):
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == code, r.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("lm-train: error: ") and "; " in lines[0], lines[0]
    assert b"Traceback" not in r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def counts3():
    r = run_prog("lm-count", "-n", "3", input=TEXT)
    assert r.returncode == 0
    return r.stdout


def _same_model(a, b):
    assert a.vocab == b.vocab and a.sizes() == b.sizes()
    for x, y in zip(a.ngrams + a.logprob + a.backoff, b.ngrams + b.logprob + b.backoff):
        assert np.array_equal(x, y)


def test_counts_pipe_to_model(counts3, tmp_path):
    from lmtools.ngram.smoothing import smooth

    out = tmp_path / "kn3.lm"
    r = run_prog("lm-train", "-o", out, input=counts3)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    err = r.stderr.decode()
    assert "discounts order 1 (D1 D2 D3+):" in err and "discounts order 3" in err
    model = _load(out.read_bytes())
    assert model.method == "kn-modified" and model.provenance["program"] == "lm-train"
    _same_model(model, smooth(_load(counts3)))
    # the same input gives the same bytes, on stdout as in -o FILE
    r2 = run_prog("lm-train", "-q", input=counts3)
    assert r2.returncode == 0 and r2.stderr == b""
    assert r2.stdout == out.read_bytes()


def test_arpa_out_stdout_and_gz(counts3, tmp_path):
    from lmtools.io.arpa import read_arpa

    r = run_prog("lm-train", "--method", "wb", "--arpa", "-q", input=counts3)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"\\data\\\nngram 1=")
    text_model = read_arpa(io.BytesIO(r.stdout))
    from lmtools.ngram.smoothing import smooth

    _same_model(text_model, smooth(_load(counts3), "wb"))
    gz = tmp_path / "wb3.arpa.gz"
    r2 = run_prog("lm-train", "--method", "wb", "--arpa", "-q", "-o", gz, input=counts3)
    assert r2.returncode == 0
    assert gzip.decompress(gz.read_bytes()) == r.stdout


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_from_arpa(tmp_path):
    from lmtools.io.arpa import read_arpa

    if not KENLM_O3.exists():
        pytest.skip("vendored KenLM ARPA absent")
    out = tmp_path / "ken.lm"
    r = run_prog("lm-train", "--from-arpa", KENLM_O3, "-o", out)
    assert r.returncode == 0, r.stderr
    _same_model(_load(out.read_bytes()), read_arpa(str(KENLM_O3)))
    # an ARPA file given as the input FILE (here on stdin) converts the same way
    small = b"\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-1\t<unk>\n0\t<s>\t-0.3\n-0.5\t</s>\n-0.7\tx\n\n" \
            b"\\2-grams:\n-0.1\t<s> x\n\n\\end\\\n"
    r = run_prog("lm-train", "-q", input=small)
    assert r.returncode == 0, r.stderr
    _same_model(_load(r.stdout), read_arpa(io.BytesIO(small)))


def test_options_reach_the_estimator(counts3):
    from lmtools.ngram.smoothing import smooth

    counts = _load(counts3)
    r = run_prog("lm-train", "-q", "-n", "2", "--method", "kn", "--backoff", "--discount", "0.6", "--prune", "0,1",
                 input=counts3)
    assert r.returncode == 0, r.stderr
    _same_model(_load(r.stdout), smooth(counts, "kn", order=2, interpolate=False, discount=[0.6], prune=[0, 1]))
    r = run_prog("lm-train", "-q", "--method", "add-k", "-k", "0.1", input=counts3)
    assert r.returncode == 0
    _same_model(_load(r.stdout), smooth(counts, "add-k", k=0.1))
    r = run_prog("lm-train", "--method", "stupid", "--alpha", "0.5", input=counts3)
    assert r.returncode == 0 and b"not probabilities" in r.stderr
    assert _load(r.stdout).scores_only
    r = run_prog("lm-train", "-q", "--discount", "0.5,1,1.5", "--discount", "0.6 1.1 1.6", input=counts3)
    assert r.returncode == 0
    assert _load(r.stdout).info["discounts"] == [[0.5, 1.0, 1.5], [0.6, 1.1, 1.6], [0.6, 1.1, 1.6]]
    # KenLM's unquoted forms: --prune 0 1 and --discount 0.5 1 1.5
    r = run_prog("lm-train", "-q", "--prune", "0", "1", "--discount", "0.5", "1", "1.5", "-", input=counts3)
    assert r.returncode == 0, r.stderr
    _same_model(_load(r.stdout), smooth(counts, prune=[0, 1], discount=[(0.5, 1, 1.5)]))


def test_vocab_file(counts3, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("the\nand\nI\nnever-seen\n")
    r = run_prog("lm-train", "-q", "--vocab", vocab, input=counts3)
    assert r.returncode == 0, r.stderr
    assert _load(r.stdout).vocab == ["<unk>", "<s>", "</s>", "the", "and", "I", "never-seen"]


def test_degenerate_data_warns_not_crashes():
    c = run_prog("lm-count", "-n", "3", input=b"a b\na b\nc\n").stdout
    r = run_prog("lm-train", "--arpa", input=c)
    assert r.returncode == 0, r.stderr
    assert b"lm-train: warning:" in r.stderr and b"degenerate" in r.stderr
    assert b"0.5 1 1.5" in r.stderr


@pytest.mark.parametrize("args,needle,code", [
    (["--method", "nope"], "unknown smoothing method", 2),
    (["--method", "ffnn", "--prune", "1"], "applies to the n-gram methods only", 2),
    (["-n", "4"], "larger than the counts' order 3", 1),
    (["-n", "0"], "order must be at least 1", 2),
    (["--prune", "1,1"], "unigrams cannot be pruned", 2),
    (["--prune", "0,2,1"], "must not decrease", 2),
    (["--prune", "x"], "not a list of numbers", 2),
    (["--discount", "0.5,1"], "three discounts", 2),
    (["--method", "wb", "--discount", "0.5"], "does not apply", 2),
    (["--method", "mle", "--interpolate"], "no interpolated form", 2),
    (["--method", "wb", "--kenlm-compat"], "kn-modified only", 2),
    (["no-such-file.lm"], "no such file", 1),
])
def test_bad_arguments(counts3, args, needle, code):
    r = run_prog("lm-train", *args, input=counts3)
    assert needle in _one_error_line(r, code)


def test_bad_inputs(tmp_path):
    # text is counted now (lm-train FILE as lmplz); binary data that is no model is still an error
    r = run_prog("lm-train", input=b"this is text\x00 not counts\n")
    assert "binary data" in _one_error_line(r)
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<unk>\n-1\n\n\\end\\\n")
    msg = _one_error_line(run_prog("lm-train", "--from-arpa", bad, "-o", tmp_path / "x.lm"))
    assert "bad.arpa:6:" in msg
    assert not (tmp_path / "x.lm").exists()
    assert list(tmp_path.glob("*.part")) == []
    empty = run_prog("lm-count", "-n", "2", input=b"").stdout
    assert "no words" in _one_error_line(run_prog("lm-train", input=empty))
    mismatch = tmp_path / "m.arpa"
    mismatch.write_text("\\data\\\nngram 1=9\n\n\\1-grams:\n-1\t<unk>\n0\t<s>\n-0.5\t</s>\n\n\\end\\\n")
    r = run_prog("lm-train", "--from-arpa", mismatch, "--arpa")
    assert r.returncode == 1 and b"m.arpa:2: the ARPA header announces 9 1-grams" in r.stderr
    msg = _one_error_line(run_prog("lm-train", "--from-arpa", mismatch, "--method", "wb", "--arpa"), code=2)
    assert "cannot be applied" in msg
    # an n-gram model is not re-estimated
    clean = tmp_path / "c.arpa"
    clean.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<unk>\n0\t<s>\n-0.5\t</s>\n\n\\end\\\n")
    msg = _one_error_line(run_prog("lm-train", "--prune", "0,1", clean))
    assert "already smoothed" in msg
