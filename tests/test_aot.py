"""The scoring kernel compiled ahead of time (lmtools/kernels/aot.py): built by `make install`, used
by line_scores in one thread, the same numbers as numba's run-time kernel and the plain path, bit for
bit; never used when stale or disabled; its arguments checked before the unchecked module sees them;
lm-ppl with it does not import numba."""

from __future__ import annotations

import io
import random
import subprocess
import sys

import numpy as np
import pytest

from lmtools.io.models import load_model, save_model
from lmtools.kernels import aot
from lmtools.kernels.records import BLOCK, block_arrays, line_capacity
from lmtools.ngram.model import NGramModel
from lmtools.ngram.query import QueryModel
from tests.conftest import shakespeare_lines
from tests.test_query_tables import _holes_model, _rebuilt

LINES = shakespeare_lines()
TRAIN = "\n".join(LINES[:5000]) + "\n"
FIELDS = ("lp", "lp_nz", "lp_iv", "tokens", "oovs", "zeros")


def _text() -> bytes:
    rng = random.Random(3)
    long_line = " ".join(rng.choice(LINES[:50]).strip() or "x" for _ in range(5000))  # > 2 * BLOCK tokens
    extra = [long_line, "", "  ", "<s> the king </s> zzyzx", "\tcaf\u00e9 \r", "a b c x a b c", "ghost a ghost"]
    body = LINES[-1500:] + LINES[200:500]
    return ("\n".join(body[:700] + extra + body[700:] + [long_line]) + "\n" + "last without newline").encode()


TEXT = _text()


@pytest.fixture(scope="module")
def counts5(tmp_path_factory):
    from lmtools.ngram.counting import count_text

    p = tmp_path_factory.mktemp("aot") / "train.txt"
    p.write_text(TRAIN, encoding="utf-8")
    return count_text([str(p)], 5)


def _roundtrip(model) -> NGramModel:
    buf = io.BytesIO()
    save_model(model, buf, True)
    buf.seek(0)
    return load_model(buf)


def _ghost_model() -> NGramModel:
    """A word of the vocabulary without a unigram ("ghost"): scored as <unk> through remap."""
    vocab = ["<unk>", "<s>", "</s>", "a", "ghost"]
    return NGramModel(vocab=vocab, ngrams=[np.array([[0], [1], [2], [3]], np.int32)],
                      logprob=[np.array([-2, -99, -1, -0.5], np.float32)], backoff=[np.zeros(4, np.float32)])


def _models(counts5):
    from lmtools.ngram.smoothing import smooth

    def sm(method, order):
        return smooth(counts5, method, order=order, warn=lambda m: None)

    kn5 = _roundtrip(sm("kn-modified", 5))
    return {"kn5 stored": kn5, "kn5 built": _rebuilt(kn5), "wb3 stored": _roundtrip(sm("wb", 3)),
            "stupid2 built": sm("stupid", 2), "kn1 stored": _roundtrip(sm("kn-modified", 1)),
            "placeholders": _roundtrip(_holes_model()), "remap": _ghost_model()}


def test_the_module_is_built_and_fresh():
    assert aot.load() is not None, ("the ahead-of-time scoring kernel is not built or stale: "
                                    "`make install` (python -m lmtools.kernels.aot; needs a C compiler)")


def test_compiled_runtime_and_plain_paths_agree_bit_for_bit(counts5, monkeypatch):
    calls = []
    real = aot.score_lines
    monkeypatch.setattr(aot, "score_lines", lambda *a: calls.append(a[4]) or real(*a))
    for name, model in _models(counts5).items():
        calls.clear()
        compiled = QueryModel(model, name).line_scores(TEXT, 1, fast=True)
        assert len(calls) >= 3, name  # the compiled kernel ran: before, at and after the long lines
        with monkeypatch.context() as m:
            m.setattr(aot, "load", lambda: None)
            runtime = QueryModel(model, name).line_scores(TEXT, 1, fast=True)
        plain = QueryModel(model, name).score_text(TEXT, fast=False).line_scores()
        assert len(compiled) == len(runtime) == len(plain) == TEXT.count(b"\n") + 1
        for f in FIELDS:
            assert np.array_equal(getattr(compiled, f), getattr(runtime, f)), (name, f)
            assert np.array_equal(getattr(compiled, f), getattr(plain, f)), (name, f)
        assert compiled.n_dropped == runtime.n_dropped == plain.n_dropped == 2
    # the long line needs more than the block arrays hold (a token per two bytes): scored in arrays of its own
    long_line = TEXT.split(b"\n")[700]
    assert line_capacity(len(long_line)) > 2 * BLOCK and compiled.tokens[700] > BLOCK


def test_per_token_scores_compiled_runtime_and_plain_agree(counts5, monkeypatch):
    calls = []
    for name, fn in (("score_tokens", aot.score_tokens), ("line_sums", aot.line_sums)):
        monkeypatch.setattr(aot, name, lambda *a, _fn=fn, _name=name: calls.append(_name) or _fn(*a))
    fields = ("ids", "oov", "logp", "order", "zero", "n_lines", "n_dropped")
    for name, model in _models(counts5).items():
        calls.clear()
        compiled = QueryModel(model, name).score_text(TEXT, 1, fast=True)
        compiled_lines = compiled.line_scores()
        assert calls == ["score_tokens", "line_sums"], (name, calls)
        with monkeypatch.context() as m:
            m.setattr(aot, "load", lambda: None)
            runtime = QueryModel(model, name).score_text(TEXT, 1, fast=True)
        plain = QueryModel(model, name).score_text(TEXT, fast=False)
        for f in fields:
            assert np.array_equal(getattr(compiled, f), getattr(runtime, f)), (name, f)
            assert np.array_equal(getattr(compiled, f), getattr(plain, f)), (name, f)
        lines = QueryModel(model, name).line_scores(TEXT, 1, fast=True)
        for f in FIELDS:
            assert np.array_equal(getattr(compiled_lines, f), getattr(lines, f)), (name, f)
    empty = QueryModel(_models(counts5)["kn5 stored"]).score_text(b"", 1, fast=True)
    assert empty.ids.size == 0 and empty.n_lines == 0


def test_small_inputs_and_chunks_reuse_the_block_arrays(counts5):
    qm = QueryModel(_models(counts5)["kn5 stored"])
    one = qm.line_scores(b"the king\n", 1)  # a stored model takes the compiled kernel at any size
    assert qm._blocks is not None and one.tokens.tolist() == [3]
    again = qm.line_scores(b"the king\n", 1)
    assert np.array_equal(one.lp, again.lp)
    assert qm.line_scores(b"", 1).lp.size == 0


def test_a_stale_or_disabled_module_is_not_used(monkeypatch):
    monkeypatch.setattr(aot, "_loaded", None)
    monkeypatch.setattr(aot, "source_key", lambda: 12345)
    assert aot.load() is None
    monkeypatch.undo()
    monkeypatch.setattr(aot, "_loaded", None)
    monkeypatch.setenv("LMTOOLS_AOT", "0")
    assert aot.load() is None
    monkeypatch.setattr(aot, "_loaded", None)
    monkeypatch.delenv("LMTOOLS_AOT")
    assert aot.load() is not None


def test_the_source_key_follows_the_sources_and_numba():
    assert aot.source_key(b"0.1") != aot.source_key(b"0.2")
    assert aot.source_key() == aot.load().source_key()


def test_arguments_are_checked_before_the_module_sees_them(counts5):
    qm = QueryModel(_models(counts5)["kn5 stored"])
    mod = aot.load()
    M, words, remap = qm.hashed_model(), qm.vocabulary.word_table(), qm._remap()
    data = b"the king\n"
    buf = np.frombuffer(data, np.uint8)
    from lmtools.ngram.scores import LineScores

    out = LineScores.empty(1).kernel_view()
    A, state = block_arrays(64, qm.order), np.zeros(3, np.int64)
    assert aot.score_lines(mod, buf, 0, len(data), 0, words, remap, M, out, A, state) == len(data)
    bad = [
        ((buf.astype(np.int64), 0, len(data), 0, words, remap, M, out, A, state), TypeError),
        ((buf, 0, len(data), 0, words, remap.astype(np.int64), M, out, A, state), TypeError),
        ((buf, 0, len(data), 0, words, remap, M._replace(tab=M.tab[::2]), out, A, state), TypeError),
        ((buf, 0, len(data), 0, words, remap, M, out, block_arrays(64, qm.order - 1), state), ValueError),
        ((buf, 0, len(data) + 1, 0, words, remap, M, out, A, state), ValueError),
        ((buf, 0, len(data), 2, words, remap, M, out, A, state), ValueError),
    ]
    for args, err in bad:
        with pytest.raises(err):
            aot.score_lines(mod, *args)
    with pytest.raises(ValueError):  # an output that aliases another argument
        aot.score_lines(mod, buf, 0, len(data), 0, words, remap, M, out, A._replace(order=A.ids), state)
    with pytest.raises(ValueError):
        aot.score_lines(mod, buf, 0, len(data), 0, words, remap, M, out._replace(lp_iv=out.lp), A, state)
    ro = np.zeros(3, np.int64)
    ro.flags.writeable = False
    with pytest.raises(TypeError):
        aot.score_lines(mod, buf, 0, len(data), 0, words, remap, M, out, A, ro)
    with pytest.raises(ValueError):
        aot.score_lines(mod, buf, 0, len(data), 0, words, remap, M, out, A, state[:2].copy())
    # the per-token kernel and the line sums: the same checks
    assert aot.score_tokens(mod, buf, 0, len(data), words, remap, M, A, state) == 4  # <s> the king </s>
    with pytest.raises(TypeError):
        aot.score_tokens(mod, buf, 0, len(data), words, remap.astype(np.int64), M, A, state)
    with pytest.raises(ValueError):
        aot.score_tokens(mod, buf, 0, len(data) + 1, words, remap, M, A, state)
    ids, oov, lp, zero = A.ids[:4].copy(), A.oov[:4].copy(), A.lp[:4].copy(), A.zero[:4].copy()
    assert aot.line_sums(mod, ids, oov, lp, zero, out, 0) == 1
    with pytest.raises(ValueError):  # two lines into one entry
        aot.line_sums(mod, np.concatenate([ids, ids]), np.concatenate([oov, oov]), np.concatenate([lp, lp]),
                      np.concatenate([zero, zero]), out, 0)
    with pytest.raises(ValueError):  # not the start of a line
        aot.line_sums(mod, ids[1:].copy(), oov[1:].copy(), lp[1:].copy(), zero[1:].copy(), out, 0)
    with pytest.raises(TypeError):
        aot.line_sums(mod, ids, oov, lp.astype(np.float32), zero, out, 0)


def test_lm_ppl_scores_without_numba(counts5, tmp_path):
    model = tmp_path / "kn5.lm"
    with open(model, "wb") as f:
        save_model(_models(counts5)["kn5 stored"], f, True)
    text = tmp_path / "test.txt"
    text.write_bytes(TEXT * 8)  # above every small-input threshold (2 MB with stored tables)
    code = ("import sys\nfrom lmtools.cli.ppl import main\nsys.argv = ['lm-ppl', '-m', sys.argv[1], sys.argv[2]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('numba imported:', 'numba' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code, str(model), str(text)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "numba imported: False" in r.stdout and "perplexity:" in r.stdout
    r2 = subprocess.run([sys.executable, "-c", code, str(model), str(text)], capture_output=True, text=True,
                        env={**__import__("os").environ, "LMTOOLS_AOT": "0"})
    assert "numba imported: True" in r2.stdout
    assert r.stdout.replace("False", "") == r2.stdout.replace("True", "")  # the same report
