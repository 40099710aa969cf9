"""Zero-probability tokens: p = 0 is judged on a token's final log10 p (backoff weights included),
counted, and left out of the perplexity (SRILM's zeroprobs), on every scoring path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lmtools.ngram.model import NGramModel
from lmtools.constants import LOG_ZERO
from lmtools.ngram.query import QueryModel
from lmtools.ngram.scores import PplStats
from lmtools.ngram.smoothing import smooth
from tests import naive_query as NQ
from tests.conftest import SHAKESPEARE


def _lines():
    return SHAKESPEARE.read_text(encoding="utf-8").split("\n")[:-1]


@pytest.fixture(scope="module")
def counts3(tmp_path_factory):
    from lmtools.ngram.counting import count_text

    path = tmp_path_factory.mktemp("zp") / "train.txt"
    path.write_text("\n".join(_lines()[:3000]) + "\n", encoding="utf-8")
    return count_text([str(path)], 3)


@pytest.fixture(scope="module")
def test_lines():
    return _lines()[3000:3400]


def _naive(model, lines):
    """(zero-probability in-vocabulary tokens, log10 p of the others, tokens) by the plain scorer."""
    table, order = NQ.tables_from_model(model)
    zeros, lp, tokens = 0, [], 0
    for line in lines:
        for _, total, _, oov in NQ.score_line(table, order, line):
            tokens += 1
            if not oov and total <= LOG_ZERO:
                zeros += 1
            else:
                lp.append(total)
    return zeros, math.fsum(lp), tokens


def _figures(qm, text: bytes, fast: bool):
    st = PplStats()
    st.add(qm.score_text(text, fast=fast).line_scores())
    one = PplStats()
    one.add(qm.line_scores(text, fast=fast))  # the one-pass numba path when fast
    assert one.figures() == st.figures()
    return st.figures()


def test_mle_zero_probabilities_follow_the_backoff_weight(counts3, test_lines):
    """An MLE trigram: a word unseen after a seen context has p = 0 through the context's backoff
    weight log10 0, although its lower-order entry has p > 0. Every such token is counted."""
    model = smooth(counts3, "mle")
    qm = QueryModel(model)
    text = ("\n".join(test_lines) + "\n").encode()
    zeros, lp, tokens = _naive(model, test_lines)
    assert zeros > 500  # most test tokens: an unsmoothed model
    for fast in (False, True):
        f = _figures(qm, text, fast)
        assert f["zeroprobs"] == zeros
        assert f["tokens"] == tokens
        assert f["logprob"] == pytest.approx(lp, rel=1e-9)
        assert f["ppl"] == pytest.approx(10 ** (-lp / (tokens - zeros)), rel=1e-9)
        assert math.isfinite(f["ppl"])


def test_smoothed_models_have_no_zero_probabilities(counts3, test_lines):
    """Katz (with its mass reserved in every context) and Kneser-Ney give every token p > 0."""
    text = ("\n".join(test_lines) + "\n").encode()
    for method in ("katz", "kn-modified"):
        model = smooth(counts3, method, warn=lambda m: None)
        qm = QueryModel(model)
        zeros, lp, tokens = _naive(model, test_lines)
        assert zeros == 0
        for fast in (False, True):
            f = _figures(qm, text, fast)
            assert f["zeroprobs"] == 0 and f["logprob"] == pytest.approx(lp, rel=1e-9)


def _bigram(lp_a_b: float, bo_a: float, lp_b: float, bo_b: float = 0.0):
    vocab = ["<unk>", "<s>", "</s>", "a", "b"]
    uni = np.arange(5, dtype=np.int32).reshape(5, 1)
    bi = np.array([[1, 3], [3, 2], [3, 4], [4, 2]], np.int32)
    return NGramModel(vocab=vocab, ngrams=[uni, bi],
                      logprob=[np.array([-1, 0, -0.5, -0.6, lp_b], np.float32),
                               np.array([-0.1, -0.5, lp_a_b, -0.2], np.float32)],
                      backoff=[np.array([0, 0, 0, bo_a, bo_b], np.float32), np.zeros(4, np.float32)])


@pytest.mark.parametrize("fast", [False, True])
def test_each_rule_of_zero(fast):
    # "b b": b unseen after b; context b has backoff log10 0 -> p = 0 (the matched unigram is fine)
    m = QueryModel(_bigram(-0.3, 0.0, -0.7, bo_b=-99.0))
    s = m.score_text(b"a b b\n", fast=fast)
    assert s.zero.tolist() == [False, False, False, True, False]
    # a matched entry of log10 0 stays p = 0 even with a positive backoff weight before it
    m = QueryModel(_bigram(-0.3, 0.5, -99.0))
    s = m.score_text(b"b a b\n", fast=fast)  # b after <s>: unigram -99 + bo(<s>) 0
    assert s.zero.tolist()[1] is True
    # a small but non-zero probability is not zero
    m = QueryModel(_bigram(-0.3, -40.0, -50.0, bo_b=-40.0))
    s = m.score_text(b"a b b\n", fast=fast)
    assert not s.zero.any() and s.logp[3] == pytest.approx(-90.0)


def test_lm_ppl_reports_them(prog, tmp_path, counts3, test_lines):
    from lmtools.io.models import save_model

    model = smooth(counts3, "mle")
    path = tmp_path / "mle.lm"
    with open(path, "wb") as f:
        save_model(model, f)
    text = tmp_path / "test.txt"
    text.write_text("\n".join(test_lines[:200]) + "\n", encoding="utf-8")
    zeros, lp, tokens = _naive(model, test_lines[:200])
    r = prog("lm-ppl", "-m", path, "--json", text)
    assert r.returncode == 0, r.stderr
    total = json.loads(r.stdout)["total"]
    assert total["zeroprobs"] == zeros and total["logprob"] == pytest.approx(lp, rel=1e-9)
    r = prog("lm-ppl", "-m", path, text)
    first = r.stdout.decode().splitlines()[0]
    assert f"{zeros} zero-probability tokens (p = 0: left out of log10 prob and perplexity)" in first
