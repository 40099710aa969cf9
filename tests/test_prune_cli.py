"""lm-prune and lm-train --prune-entropy/--prune-size: the programs give the pruning stage's model
(lmtools.ngram.prune, checked against the reference in test_prune.py), from model files, ARPA and
stdin, and refuse what cannot be pruned with one error line."""

from __future__ import annotations

import io
import lzma

import numpy as np
import pytest

from lmtools.io.arpa import read_arpa
from lmtools.io.models import load_model
from lmtools.ngram.prune import prune_entropy
from tests.conftest import KENLM_O3, SHAKESPEARE, error_line
from tests.inprocess import invoke, keep_signal_handlers, ok  # noqa: F401 (an autouse fixture)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("prune_cli")
    (d / "train.txt").write_bytes(b"".join(SHAKESPEARE.read_bytes().splitlines(keepends=True)[:1500]))
    ok(invoke("lm-count", "-n", "3", "-o", d / "c.lm", d / "train.txt"))
    ok(invoke("lm-train", "-q", "-o", d / "kn.lm", d / "c.lm"))
    ok(invoke("lm-train", "-q", "--method", "stupid", "-o", d / "stupid.lm", d / "c.lm"))
    return d


def _same_arrays(a, b):
    assert a.vocab == b.vocab and a.sizes() == b.sizes()
    for n in range(a.order):
        assert np.array_equal(a.ngrams[n], b.ngrams[n])
        assert np.array_equal(a.logprob[n], b.logprob[n])
        assert np.array_equal(a.backoff[n], b.backoff[n])


def _summary(stderr: str) -> list[tuple[int, int]]:
    line = next(x for x in stderr.splitlines() if "entropy pruning" in x)
    kept = line.split("kept ", 1)[1].split(" n-grams")[0]
    return [tuple(int(v) for v in pair.split("/")) for pair in kept.split()]


def test_threshold_is_the_stage(d, tmp_path):
    r = ok(invoke("lm-prune", "--threshold", "1e-7", d / "kn.lm", "-o", tmp_path / "p.lm"))
    model = load_model(str(d / "kn.lm"))
    want = prune_entropy(model, threshold=1e-7)
    got = load_model(str(tmp_path / "p.lm"))
    _same_arrays(got, want)
    assert sum(got.sizes()) < sum(model.sizes())
    assert _summary(r.stderr) == list(zip(got.sizes(), model.sizes()))
    assert got.provenance["program"] == "lm-prune" and got.provenance["options"]["threshold"] == 1e-7
    assert got.info["entropy_prune"] == {"threshold": 1e-7}


def test_size_from_stdin_to_stdout(d):
    model = load_model(str(d / "kn.lm"))
    N = model.sizes()[0] + 5000
    r = ok(invoke("lm-prune", "-q", "--size", N, input=(d / "kn.lm").read_bytes()))
    assert r.stderr == ""
    got = load_model(io.BufferedReader(io.BytesIO(r.stdout_bytes)))
    assert sum(got.sizes()) <= N
    _same_arrays(got, prune_entropy(model, size=N))


@pytest.mark.slow
def test_arpa_in_and_out(tmp_path):
    """KenLM's ARPA (xz) pruned to ARPA: the same as pruning the model read from it."""
    r = ok(invoke("lm-prune", "-q", "--threshold", "1e-6", "--arpa", KENLM_O3))
    got = read_arpa(io.BytesIO(r.stdout_bytes))
    want = prune_entropy(read_arpa(io.BytesIO(lzma.decompress(KENLM_O3.read_bytes()))), threshold=1e-6)
    assert got.sizes() == want.sizes() and got.sizes()[1] < read_arpa(str(KENLM_O3)).sizes()[1]
    for n in range(want.order):
        assert np.array_equal(got.ngrams[n], want.ngrams[n])
        assert np.array_equal(got.logprob[n], want.logprob[n])  # ARPA numbers read back to the same float32
        assert np.array_equal(got.backoff[n], want.backoff[n])


def test_train_prune_entropy_is_train_then_prune(d, tmp_path):
    ok(invoke("lm-train", "-q", "--prune-entropy", "1e-7", d / "c.lm", "-o", tmp_path / "a.lm"))
    ok(invoke("lm-prune", "-q", "--threshold", "1e-7", d / "kn.lm", "-o", tmp_path / "b.lm"))
    _same_arrays(load_model(str(tmp_path / "a.lm")), load_model(str(tmp_path / "b.lm")))


def test_train_prune_size_and_cutoffs(d, tmp_path):
    """--prune-size after count cutoffs: the cutoff model, pruned to N."""
    ok(invoke("lm-train", "-q", "--prune", "0", "1", "-o", tmp_path / "cut.lm", d / "c.lm"))
    cut = load_model(str(tmp_path / "cut.lm"))
    N = sum(cut.sizes()) - (sum(cut.sizes()) - cut.sizes()[0]) // 3
    r = ok(invoke("lm-train", "--prune", "0", "1", "--prune-size", N, "-o", tmp_path / "a.lm", d / "c.lm"))
    got = load_model(str(tmp_path / "a.lm"))
    assert sum(got.sizes()) <= N
    _same_arrays(got, prune_entropy(cut, size=N))
    assert _summary(r.stderr) == list(zip(got.sizes(), cut.sizes()))


@pytest.mark.parametrize("prog,args,needle", [
    ("lm-prune", ["kn.lm"], "exactly one of --threshold T and --size N"),
    ("lm-prune", ["--threshold", "1e-8", "--size", "100000", "kn.lm"], "both given"),
    ("lm-prune", ["--threshold", "-1", "kn.lm"], "--threshold"),
    ("lm-prune", ["--size", "0", "kn.lm"], "--size"),
    ("lm-prune", ["--size", "10", "kn.lm"], "unigrams"),
    ("lm-train", ["--prune-entropy", "1e-8", "--prune-size", "100000", "c.lm"], "both --prune-entropy and"),
    ("lm-train", ["--prune-entropy", "-0.5", "c.lm"], "--prune-entropy"),
    ("lm-train", ["--method", "stupid", "--prune-entropy", "1e-8", "c.lm"], "stupid backoff gives scores"),
    ("lm-train", ["--method", "ffnn", "--prune-size", "100000", "train.txt"], "n-gram methods only"),
    ("lm-train", ["--prune-size", "10", "c.lm"], "unigrams"),
])
def test_usage_errors(d, tmp_path, monkeypatch, prog, args, needle):
    monkeypatch.chdir(d)
    r = invoke(prog, *args, "-o", tmp_path / "out.lm")
    assert needle in error_line(r, prog, 2)
    assert not (tmp_path / "out.lm").exists()


@pytest.mark.parametrize("model,needle", [("c.lm", "not an n-gram model"), ("stupid.lm", "not probabilities"),
                                          ("train.txt", "looks like text")])
def test_data_errors(d, tmp_path, model, needle):
    r = invoke("lm-prune", "--threshold", "1e-8", d / model, "-o", tmp_path / "out.lm")
    assert needle in error_line(r, "lm-prune", 1)
    assert not (tmp_path / "out.lm").exists()


def test_terminal_on_stdin_is_a_usage_error(monkeypatch):
    import lmtools.cli.prune as prune_cli

    monkeypatch.setattr(prune_cli, "_stdin_is_terminal", lambda: True)
    assert "terminal" in error_line(invoke("lm-prune", "--threshold", "1e-8"), "lm-prune", 2)


def test_output_that_is_the_input_is_refused(d, tmp_path):
    model = tmp_path / "m.lm"
    model.write_bytes((d / "kn.lm").read_bytes())
    r = invoke("lm-prune", "--threshold", "1e-8", model, "-o", model)
    error_line(r, "lm-prune", 1)
    assert model.read_bytes() == (d / "kn.lm").read_bytes()


@pytest.mark.slow
def test_real_pipe(d):
    """As a shell runs it: the model on stdin of a real process, the pruned model on its stdout, the
    summary on stderr, read by lm-ppl from its stdin."""
    from tests.conftest import run_prog

    r = run_prog("lm-prune", "--threshold", "1e-7", input=(d / "kn.lm").read_bytes())
    assert r.returncode == 0, r.stderr
    assert b"entropy pruning (threshold 1e-07): kept" in r.stderr
    _same_arrays(load_model(io.BufferedReader(io.BytesIO(r.stdout))),
                 prune_entropy(load_model(str(d / "kn.lm")), threshold=1e-7))
    ppl = run_prog("lm-ppl", "-m", "-", d / "train.txt", input=r.stdout)
    assert ppl.returncode == 0 and b"perplexity:" in ppl.stdout, ppl.stderr
