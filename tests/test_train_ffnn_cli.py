"""lm-train --method ffnn through real processes: trains from text, scores with lm-ppl, refuses mixed options."""

import pytest
from tests.conftest import SHAKESPEARE, run_prog


def _texts(tmp_path):
    lines = SHAKESPEARE.read_text().splitlines(keepends=True)
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text("".join(lines[:1500]))
    valid.write_text("".join(lines[1500:1600]))
    return train, valid


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_train_ffnn_then_score(tmp_path):
    train, valid = _texts(tmp_path)
    out = tmp_path / "f.lm"
    args = ["--method", "ffnn", "--context", "2", "--dim", "8", "--hidden", "16", "--epochs", "2", "--seed", "3",
            "--valid", valid, train, "-o", out]
    r = run_prog("lm-train", *args)
    assert r.returncode == 0, r.stderr
    log = r.stderr.decode().splitlines()
    assert log[0].startswith("epoch 1: train ppl ") and "valid ppl" in log[0]  # one plain line per epoch
    info = dict(line.split("\t", 1) for line in run_prog("lm-info", out).stdout.decode().splitlines())
    assert info["kind"] == "ffnn" and info["context"] == "2" and info["hidden"] == "16"
    ppl = run_prog("lm-ppl", "-m", out, valid)
    assert ppl.returncode == 0 and b"perplexity:" in ppl.stdout
    # same seed, same input: a byte-identical model
    out2 = tmp_path / "g.lm"
    assert run_prog("lm-train", *args[:-1], out2).returncode == 0
    assert out.read_bytes() == out2.read_bytes()


def test_option_families_are_not_mixed(tmp_path):
    train, _ = _texts(tmp_path)
    r = run_prog("lm-train", "--method", "ffnn", "--prune", "0,1", train)
    assert r.returncode == 2 and b"--prune applies to the n-gram methods only" in r.stderr
    counts = run_prog("lm-count", "-n", "2", train).stdout
    r = run_prog("lm-train", "--hidden", "10", input=counts)
    assert r.returncode == 2 and b"--hidden applies to --method ffnn only" in r.stderr


def test_ffnn_bad_input(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    r = run_prog("lm-train", "--method", "ffnn", empty, "-o", tmp_path / "x.lm")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and b"no words" in r.stderr
    assert not (tmp_path / "x.lm").exists()
    train, _ = _texts(tmp_path)
    oov = tmp_path / "oov.txt"
    oov.write_text("zzqx yyqx\n")
    r = run_prog("lm-train", "--method", "ffnn", "--valid", oov, train, "-o", tmp_path / "x.lm")
    assert r.returncode == 1 and b"outside the vocabulary" in r.stderr
    # no GPU visible (whether or not this machine has one): one line, nothing written
    r = run_prog("lm-train", "--method", "ffnn", "--device", "cuda", train, "-o", tmp_path / "x.lm",
                 env={"CUDA_VISIBLE_DEVICES": "", "NUMBA_ENABLE_CUDASIM": "0"})
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and b"--device cuda: no usable" in r.stderr
    assert not (tmp_path / "x.lm").exists()
