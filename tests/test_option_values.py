"""Impossible option values: every program refuses them before any work, with one line and exit 2.

In process through click's CliRunner (no subprocess per case), plus the FFNN divergence path that a
too large --lr leads to (exit 1 with the last good model, or none).
"""

from __future__ import annotations

import importlib
import math

import click
import numpy as np
import pytest
from click.testing import CliRunner

from lmtools.cli import common
from tests.conftest import PROGRAMS, SHAKESPEARE, error_line
from tests.inprocess import keep_signal_handlers  # noqa: F401 (an autouse fixture)
from tests.inprocess import program_main as _main


def invoke(prog: str, args: list[str], input: bytes | None = None):
    return CliRunner().invoke(_main(prog), [str(a) for a in args], input=input, prog_name=prog)


def assert_usage_error(r, prog: str, needle: str | None = None) -> str:
    line = error_line(r, prog, 2)
    assert "Traceback" not in r.stderr and r.stdout == ""
    if needle is not None:
        assert needle in line, line
    return line


# Every case: (program, arguments, a word the message names). Paths need not exist: the values are
# refused before any file is opened.
BAD = [
    # lm-count
    ("lm-count", ["-n", "0"], "order"),
    ("lm-count", ["-n", "-3"], "order"),
    ("lm-count", ["-n", "x"], "--order"),
    ("lm-count", ["--min-count", "0"], "--min-count"),
    ("lm-count", ["--vocab-size", "-1"], "--vocab-size"),
    ("lm-count", ["-n", "1001"], "order"),
    ("lm-count", ["-n", "99999999999999999999"], "too large"),
    ("lm-count", ["-", "-"], "stdin"),
    # lm-train, n-gram methods: discounts (0 <= D_k <= k, finite), -k, --alpha, -n, --prune
    ("lm-train", ["--discount", "5"], "discount"),
    ("lm-train", ["--discount", "nan"], "finite"),
    ("lm-train", ["--discount", "inf"], "finite"),
    ("lm-train", ["--discount", "-0.1"], "discount"),
    ("lm-train", ["--discount", "0.5,1,1.5", "--discount", "0.5,2.5,1.5"], "D2 <= 2"),
    ("lm-train", ["--discount", "1.1,1,1.5"], "D1 <= 1"),
    ("lm-train", ["--discount", "0.5,1,3.5"], "D3+ <= 3"),
    ("lm-train", ["--discount", "0.5,1,nan"], "finite"),
    ("lm-train", ["--method", "kn", "--discount", "1.5"], "[0, 1]"),
    ("lm-train", ["--method", "abs", "--discount", "nan"], "finite"),
    ("lm-train", ["--method", "add-k", "-k", "0"], "-k"),
    ("lm-train", ["--method", "add-k", "-k", "-1"], "-k"),
    ("lm-train", ["--method", "add-k", "-k", "nan"], "-k"),
    ("lm-train", ["--method", "add-k", "-k", "inf"], "-k"),
    ("lm-train", ["--method", "stupid", "--alpha", "0"], "--alpha"),
    ("lm-train", ["--method", "stupid", "--alpha", "1.5"], "--alpha"),
    ("lm-train", ["--method", "stupid", "--alpha", "nan"], "--alpha"),
    ("lm-train", ["-n", "0"], "order"),
    ("lm-train", ["--prune", "0,-1"], "--prune"),
    ("lm-train", ["--prune", "0,99999999999999999999"], "too large"),
    ("lm-train", ["--method", "ffnn", "--dim", "99999999999999999999"], "too large"),
    ("lm-train", ["--method", "ffnn", "--seed", "99999999999999999999"], "too large"),
    ("lm-train", ["--method", "nope"], "unknown smoothing method"),
    ("lm-train", ["--from-arpa", "x.arpa", "--discount", "0.5"], "--from-arpa"),
    ("lm-train", ["--method", "wb", "--kenlm-compat"], "kn-modified only"),
    ("lm-train", ["-", "-"], "stdin"),  # (several FILES are text to count; two counts inputs: test_train_from_text)
    # lm-train --method ffnn
    ("lm-train", ["--method", "ffnn", "--lr", "nan"], "--lr"),
    ("lm-train", ["--method", "ffnn", "--lr", "inf"], "--lr"),
    ("lm-train", ["--method", "ffnn", "--lr", "0"], "--lr"),
    ("lm-train", ["--method", "ffnn", "--lr", "-0.1"], "--lr"),
    ("lm-train", ["--method", "ffnn", "--momentum", "1"], "--momentum"),
    ("lm-train", ["--method", "ffnn", "--momentum", "nan"], "--momentum"),
    ("lm-train", ["--method", "ffnn", "--dropout", "1"], "--dropout"),
    ("lm-train", ["--method", "ffnn", "--dropout", "-0.5"], "--dropout"),
    ("lm-train", ["--method", "ffnn", "--dropout", "nan"], "--dropout"),
    ("lm-train", ["--method", "ffnn", "--dropout-emb", "1.5"], "--dropout-emb"),
    ("lm-train", ["--method", "ffnn", "--l2", "-1"], "--l2"),
    ("lm-train", ["--method", "ffnn", "--l2", "inf"], "--l2"),
    ("lm-train", ["--method", "ffnn", "--lr-decay", "0"], "--lr-decay"),
    ("lm-train", ["--method", "ffnn", "--lr-decay", "1"], "--lr-decay"),
    ("lm-train", ["--method", "ffnn", "--min-improvement", "nan"], "--min-improvement"),
    ("lm-train", ["--method", "ffnn", "--min-improvement", "1"], "--min-improvement"),
    ("lm-train", ["--method", "ffnn", "--time-limit", "-1"], "--time-limit"),
    ("lm-train", ["--method", "ffnn", "--time-limit", "nan"], "--time-limit"),
    ("lm-train", ["--method", "ffnn", "--epochs", "0"], "--epochs"),
    ("lm-train", ["--method", "ffnn", "--batch", "0"], "--batch"),
    ("lm-train", ["--method", "ffnn", "--context", "0"], "--context"),
    ("lm-train", ["--method", "ffnn", "--dim", "0"], "--dim"),
    ("lm-train", ["--method", "ffnn", "--hidden", "-2"], "--hidden"),
    ("lm-train", ["--method", "ffnn", "--patience", "0"], "--patience"),
    ("lm-train", ["--method", "ffnn", "--seed", "-1"], "--seed"),
    ("lm-train", ["--method", "ffnn", "--threads", "-1"], "--threads"),
    ("lm-train", ["--method", "ffnn", "--classes", "-1"], "--classes"),
    ("lm-train", ["--method", "ffnn", "--vocab-size", "-1"], "--vocab-size"),
    ("lm-train", ["--method", "ffnn", "--min-count", "0"], "--min-count"),
    ("lm-train", ["--method", "ffnn", "--prune", "0,1"], "n-gram methods only"),
    ("lm-train", ["--hidden", "10"], "--method ffnn only"),
    # lm-ppl and lm-score: --threads, --lambda (checked before any model is read)
    ("lm-ppl", ["--threads", "0", "-m", "a.lm", "t.txt"], "--threads"),
    ("lm-ppl", ["-m", "a.lm", "-m", "b.lm", "--lambda", "nan", "t.txt"], "[0, 1]"),
    ("lm-ppl", ["-m", "a.lm", "-m", "b.lm", "--lambda", "inf", "t.txt"], "[0, 1]"),
    ("lm-ppl", ["-m", "a.lm", "-m", "b.lm", "--lambda", "1.5", "t.txt"], "[0, 1]"),
    ("lm-ppl", ["-m", "a.lm", "-m", "b.lm", "--lambda", "-0.2", "t.txt"], "[0, 1]"),
    ("lm-ppl", ["-m", "a.lm", "-m", "b.lm", "--lambda", "x", "t.txt"], "--lambda"),
    ("lm-ppl", ["-m", "a.lm", "-m", "b.lm", "--lambda", "0.5,0.6", "t.txt"], "sum"),
    ("lm-ppl", ["-m", "a.lm", "-m", "b.lm", "--lambda", "0.7", "--lambda", "0.6", "t.txt"], "sum"),
    ("lm-ppl", ["-m", "a.lm", "--lambda", "nan", "t.txt"], "[0, 1]"),
    ("lm-ppl", ["-m", "a.lm", "--lambda", "0.5", "t.txt"], "--lambda"),
    ("lm-ppl", ["-m", "-", "-"], "stdin"),
    ("lm-score", ["--threads", "-1", "-m", "a.lm", "t.txt"], "--threads"),
    ("lm-score", ["-m", "a.lm", "-m", "b.lm", "--lambda", "nan", "t.txt"], "[0, 1]"),
    ("lm-score", ["-m", "a.lm", "-m", "b.lm", "--lambda", "0.2,0.2,0.2", "t.txt"], "weights"),
    ("lm-score", ["--format", "xml", "-m", "a.lm", "t.txt"], "--format"),
    # lm-gen
    ("lm-gen", ["-m", "a.lm", "--temperature", "0"], "--temperature"),
    ("lm-gen", ["-m", "a.lm", "--temperature", "-1"], "--temperature"),
    ("lm-gen", ["-m", "a.lm", "--temperature", "nan"], "--temperature"),
    ("lm-gen", ["-m", "a.lm", "--temperature", "inf"], "--temperature"),
    ("lm-gen", ["-m", "a.lm", "--top-k", "0"], "--top-k"),
    ("lm-gen", ["-m", "a.lm", "--top-p", "0"], "--top-p"),
    ("lm-gen", ["-m", "a.lm", "--top-p", "1.5"], "--top-p"),
    ("lm-gen", ["-m", "a.lm", "--top-p", "nan"], "--top-p"),
    ("lm-gen", ["-m", "a.lm", "--max-len", "0"], "--max-len"),
    ("lm-gen", ["-m", "a.lm", "--max-len", "16777217"], "--max-len"),
    ("lm-gen", ["-m", "a.lm", "--seed", "99999999999999999999"], "too large"),
    ("lm-ppl", ["-m", "a.lm", "--threads", "99999999999999999999", "t.txt"], "too large"),
    ("lm-gen", ["-m", "a.lm", "-s", "-1"], "--sentences"),
    ("lm-gen", ["-m", "a.lm", "--top", "-1"], "--top"),
    ("lm-gen", ["-m", "a.lm", "--threads", "0"], "--threads"),
    ("lm-gen", ["-m", "a.lm", "--next", "a", "--prefix", "b"], "--next"),
    ("lm-gen", ["-m", "a.lm", "--prefix", "caf\udce9"], "UTF-8"),  # the bytes caf\xe9 as Python gets them
    ("lm-gen", ["-m", "a.lm", "--next", "\udcff\udcfe"], "UTF-8"),
    # options that the other options leave without effect are refused, not ignored
    ("lm-gen", ["-m", "a.lm", "--top", "5", "-s", "1"], "--top"),
    ("lm-gen", ["-m", "a.lm", "--greedy", "--temperature", "0.5"], "--temperature"),
    ("lm-gen", ["-m", "a.lm", "--greedy", "--top-p", "0.5"], "--top-p"),
    ("lm-gen", ["-m", "a.lm", "--next", "a", "--temperature", "2"], "--temperature"),
    ("lm-gen", ["-m", "a.lm", "--next", "a", "-s", "3"], "-s"),
    ("lm-train", ["--method", "kn", "-k", "0.5"], "-k"),
    ("lm-train", ["--method", "laplace", "-k", "0.5"], "-k"),
    ("lm-train", ["--method", "add-k", "--alpha", "0.3"], "--alpha"),
    ("lm-train", ["--method", "ffnn", "--classes", "5", "t.txt"], "--classes"),
    ("lm-train", ["--method", "ffnn", "--optimizer", "adam", "--momentum", "0.5", "t.txt"], "--momentum"),
    # lm-merge, lm-info
    ("lm-merge", [], "FILES"),
    ("lm-merge", ["-", "-"], "stdin"),
    ("lm-info", ["--no-such-option"], "--no-such-option"),
    ("lm-info", ["--json", "--list-vocab", "m.lm"], "--list-vocab"),
    ("lm-count", ["--vocab", "v.txt", "--min-count", "2"], "--min-count"),
    ("lm-count", ["--vocab", "v.txt", "--vocab-size", "10"], "--vocab-size"),
]


@pytest.mark.parametrize("prog,args,needle", BAD, ids=[f"{p} {' '.join(a)}" for p, a, _ in BAD])
def test_impossible_values_are_usage_errors(prog, args, needle):
    assert_usage_error(invoke(prog, args), prog, needle)


def _float_options(prog: str) -> list[click.Option]:
    return [p for p in _main(prog).params if isinstance(p, click.Option) and isinstance(p.type, click.types.FloatParamType)]


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_option_refuses_nan_and_inf(prog, value):
    """Whatever options are added later: a float option takes finite numbers only."""
    for opt in _float_options(prog):
        args = [opt.opts[-1], value]
        if prog == "lm-train" and opt.name in ("lr", "momentum", "l2", "dropout", "dropout_emb", "lr_decay",
                                                "min_improvement", "time_limit"):
            args = ["--method", "ffnn"] + args
        if prog in ("lm-ppl", "lm-score", "lm-gen"):
            args += ["-m", "a.lm"]
        assert_usage_error(invoke(prog, args), prog, opt.opts[-1])


def test_float_options_are_typed_finite():
    """Every float option of every program goes through common.Number (the finite check)."""
    seen = 0
    for prog in PROGRAMS:
        for opt in _float_options(prog):
            assert isinstance(opt.type, common.Number), f"{prog} {opt.opts[-1]}: use common.Number"
            seen += 1
    assert seen >= 12  # -k, --alpha, the FFNN rates, --temperature, --top-p


@pytest.mark.parametrize("prog,option", [("lm-train", "epochs"), ("lm-train", "patience"), ("lm-train", "vocab_size"),
                                         ("lm-count", "min_count"), ("lm-count", "vocab_size"), ("lm-gen", "top_k"),
                                         ("lm-gen", "top")])
def test_upper_limits_beyond_64_bits_mean_no_limit(prog, option):
    param = next(p for p in _main(prog).params if p.name == option)
    assert param.type.convert("99999999999999999999", param, None) == common.INT_MAX
    assert param.type.convert("7", param, None) == 7
    with pytest.raises(click.BadParameter):
        param.type.convert("-1", param, None)


def test_good_values_still_pass_the_checks():
    from lmtools.ngram.smoothing import check_options

    assert check_options("kn-modified", discount=[(0.0, 2.0, 3.0), 1.0]) == "kn-modified"
    assert check_options("kn", discount=[1.0]) == "kn"
    for bad in [(1.0, 2.0, 3.01), 1.01, (0.5, float("nan"), 1.0)]:
        with pytest.raises(Exception, match="discount"):
            check_options("kn-modified", discount=[bad])


@pytest.mark.parametrize("prog", ["lm-gen", "lm-train"])
def test_no_model_and_a_terminal_on_stdin_is_a_usage_error(prog, monkeypatch):
    monkeypatch.setattr(importlib.import_module(f"lmtools.cli.{PROGRAMS[prog]}"), "_stdin_is_terminal", lambda: True)
    assert_usage_error(invoke(prog, []), prog, "terminal")


def test_usage_error_is_checked_before_the_work(tmp_path):
    # the counts would be read from stdin after the checks: an impossible value never reads them
    out = tmp_path / "m.lm"
    r = invoke("lm-train", ["--discount", "5", "-o", out], input=b"not counts at all\n")
    assert_usage_error(r, "lm-train", "discount")
    assert not out.exists() and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# --lr too large: divergence, not an internal error


def _stream(seed=0, sentences=40, V=30):
    rng = np.random.default_rng(seed)
    ids = []
    for _ in range(sentences):
        ids += [1] + list(rng.integers(3, V, size=rng.integers(1, 8))) + [2]
    return np.array(ids, np.int32)


VOCAB = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(3, 30)]


@pytest.mark.parametrize("lr", [1e4, 1e38])
def test_huge_learning_rate_is_divergence(lr):
    from lmtools.nn.train import TrainConfig, TrainingDiverged, train

    cfg = TrainConfig(context=2, dim=8, hidden=10, epochs=2, batch=8, lr=lr)
    with pytest.raises(TrainingDiverged) as e:
        train(cfg, VOCAB, _stream())
    assert "diverged in epoch 1" in str(e.value)
    assert e.value.model is None  # no epoch was completed


def _diverge_from_epoch(monkeypatch, first_bad: int):
    """Make training lose its loss (NaN) from epoch ``first_bad`` on."""
    from lmtools.nn import train as train_mod

    state = {"epoch": 0}
    real_run = train_mod.Trainer.run

    def run(self, X, Yo, order, lo, hi, losses):
        nb = real_run(self, X, Yo, order, lo, hi, losses)
        if state["epoch"] >= first_bad:
            losses[:nb] = math.nan
        return nb

    real_train = train_mod.train

    def train(cfg, vocab, ids, valid=None, progress=None, **kw):
        def note(ev, info):
            if ev == "epoch_start":
                state["epoch"] = info["epoch"]
            if progress is not None:
                progress(ev, info)
        return real_train(cfg, vocab, ids, valid, note, **kw)

    monkeypatch.setattr(train_mod.Trainer, "run", run)
    return train


def test_divergence_keeps_the_last_completed_epoch(monkeypatch):
    from lmtools.nn.train import TrainConfig, TrainingDiverged, train

    cfg = TrainConfig(context=2, dim=8, hidden=10, epochs=3, batch=8, lr=0.1, seed=5)
    one_epoch = train(TrainConfig(context=2, dim=8, hidden=10, epochs=1, batch=8, lr=0.1, seed=5), VOCAB, _stream())
    diverging = _diverge_from_epoch(monkeypatch, 2)
    with pytest.raises(TrainingDiverged) as e:
        diverging(cfg, VOCAB, _stream())
    assert "diverged in epoch 2" in str(e.value) and e.value.epoch == 1
    kept = e.value.model
    for name, a in one_epoch.param_arrays().items():  # the model of epoch 1, exactly
        np.testing.assert_array_equal(kept.param_arrays()[name], a)
    assert kept.provenance["training"]["diverged_in_epoch"] == 2


def test_cli_writes_the_last_good_model(monkeypatch, tmp_path):
    import lmtools.nn.train as train_mod

    text = tmp_path / "t.txt"
    text.write_bytes(b"".join(SHAKESPEARE.read_bytes().splitlines(keepends=True)[:300]))

    monkeypatch.setattr(train_mod, "train", _diverge_from_epoch(monkeypatch, 2))
    out = tmp_path / "f.lm"
    r = invoke("lm-train", ["--method", "ffnn", "-q", "--epochs", "3", "--dim", "8", "--hidden", "8", "--context", "2",
                            text, "-o", out])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1, r.stderr
    assert "diverged in epoch 2" in lines[0] and f"(epoch 1) is written to {out}" in lines[0]
    from lmtools.io.models import load_model

    m = load_model(str(out))
    assert m.provenance["training"]["best_epoch"] == 1 and m.text == {"chars": False, "lower": False}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_cli_huge_lr_exits_1_without_a_model(tmp_path):
    text = tmp_path / "t.txt"
    text.write_bytes(b"".join(SHAKESPEARE.read_bytes().splitlines(keepends=True)[:300]))
    out = tmp_path / "f.lm"
    r = invoke("lm-train", ["--method", "ffnn", "-q", "--lr", "1e4", "--epochs", "2", "--dim", "8", "--hidden", "8",
                            text, "-o", out])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith("lm-train: error: training diverged in epoch 1") and "no model" in lines[0]
    assert "internal error" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


# ----------------------------------------------------------------------------------------------
# Property-based: the option parsers accept exactly the possible values


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=300, deadline=None)
@given(x=ANY_FLOAT, lo=st.sampled_from([None, 0.0, -1.0]), hi=st.sampled_from([None, 1.0, 5.0]),
       min_open=st.booleans(), max_open=st.booleans())
def test_number_accepts_exactly_finite_values_in_range(x, lo, hi, min_open, max_open):
    t = common.Number(lo, hi, min_open=min_open, max_open=max_open)
    inside = math.isfinite(x) and (lo is None or (x > lo if min_open else x >= lo)) and \
        (hi is None or (x < hi if max_open else x <= hi))
    try:
        got = t.convert(repr(x), None, None)
    except click.BadParameter:
        assert not inside
    else:
        assert inside and got == x


@settings(max_examples=300, deadline=None)
@given(vals=st.lists(ANY_FLOAT, min_size=1, max_size=3), method=st.sampled_from(["kn-modified", "kn", "abs"]))
def test_discounts_accepted_exactly_when_possible(vals, method):
    from lmtools.cli.train import _parse_discounts
    from lmtools.errors import LmError
    from lmtools.ngram.smoothing import check_options

    text = ",".join(repr(v) for v in vals)
    bounds = (1.0, 2.0, 3.0) if len(vals) == 3 else (1.0,)
    possible = (len(vals) in (1, 3) if method == "kn-modified" else len(vals) == 1) and \
        all(math.isfinite(v) and 0.0 <= v <= b for v, b in zip(vals, bounds))
    try:
        check_options(method, discount=_parse_discounts((text,)))
    except LmError:
        assert not possible
    else:
        assert possible


@settings(max_examples=300, deadline=None)
@given(weights=st.lists(ANY_FLOAT, max_size=4), k=st.integers(1, 4))
def test_mixture_weights_are_a_distribution(weights, k):
    from lmtools.errors import LmError
    from lmtools.mixture import check_lambdas

    in_range = all(math.isfinite(w) and 0.0 <= w <= 1.0 for w in weights)
    if k == 1:
        possible = in_range and (not weights or abs(sum(weights) - 1.0) <= 1e-6)
    else:
        possible = in_range and (not weights or (len(weights) == k - 1 and sum(weights) <= 1.0 + 1e-9)
                                 or (len(weights) == k and abs(sum(weights) - 1.0) <= 1e-6))
    try:
        out = check_lambdas(weights, k)
    except LmError:
        assert not possible
        return
    assert possible
    assert len(out) == k and all(0.0 <= w <= 1.0 for w in out) and abs(sum(out) - 1.0) < 1e-6
