"""Entropy-based pruning (lmtools.ngram.prune) against the plain-Python reference tests/naive_prune.py,
on Kneser-Ney and other models of Tiny Shakespeare (words and characters)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from lmtools.errors import LmError
from lmtools.ngram.prune import entropy_criteria, prune_entropy
from tests import naive_prune as ref
from tests.conftest import SHAKESPEARE

LINES = 3000
# Criteria of ~1e-14 and below are differences of terms ~1e-3 (p(w|h) times logs): the two ways of
# writing the formula (log1p here, plain logs in the reference) differ there by rounding alone.
ATOL = 1e-17


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    d = tmp_path_factory.mktemp("prune")
    lines = SHAKESPEARE.read_text(encoding="utf-8").splitlines(True)
    words = d / "words.txt"
    words.write_text("".join(lines[:LINES]), encoding="utf-8")
    chars = d / "chars.txt"
    chars.write_text("".join(lines[:400]), encoding="utf-8")
    return {"words": words, "chars": chars}


_MODELS: dict = {}


@pytest.fixture(scope="module")
def model(texts):
    def make(order: int, method: str = "kn-modified", kind: str = "words"):
        key = (order, method, kind)
        if key not in _MODELS:
            from lmtools.io.text import TextOptions
            from lmtools.ngram.counting import count_text
            from lmtools.ngram.smoothing import smooth

            counts = count_text([str(texts[kind])], order, text_opts=TextOptions(chars=kind == "chars"))
            _MODELS[key] = smooth(counts, method, warn=lambda s: None)
        return _MODELS[key]
    return make


def _by_ngram(model, values_per_order) -> dict:
    out = {}
    for n in range(2, model.order + 1):
        for row, v in zip(model.ngrams[n - 1].tolist(), values_per_order[n - 1].tolist()):
            out[tuple(row)] = v
    return out


def _threshold_between(crit: dict, quantile: float) -> float:
    """A threshold near the quantile of the criterion values, in a gap between two of them wide
    enough that last-bit differences cannot put an n-gram on the other side."""
    values = sorted(set(crit.values()))
    i = int(quantile * (len(values) - 1))
    while values[i + 1] <= values[i] * (1 + 1e-6):
        i += 1
    return math.sqrt(values[i] * values[i + 1])


def _assert_same_model(got, want: dict):
    """An NGramModel equal to a reference dict: the same n-grams, the same log10 p (bit for bit: they
    are never changed), backoffs within float32 rounding."""
    have = ref.table(got)
    assert set(have) == set(want)
    assert all(have[g][0] == want[g][0] for g in want)
    diff = max(abs(have[g][1] - want[g][1]) for g in want)
    assert diff <= 1e-6, diff


@pytest.mark.parametrize("order", [2, 3, 4])
def test_criteria_equal_reference(model, order):
    m = model(order)
    got = _by_ngram(m, entropy_criteria(m))
    want = ref.criteria(ref.table(m))
    assert set(got) == set(want)
    keys = sorted(want)
    a = np.array([got[k] for k in keys])
    b = np.array([want[k] for k in keys])
    assert (b > 0).all() and np.isfinite(b).all()
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=ATOL)


@pytest.mark.parametrize("method", ["wb", "katz", "abs"])
def test_criteria_equal_reference_other_methods(model, method):
    m = model(3, method)
    got = _by_ngram(m, entropy_criteria(m))
    want = ref.criteria(ref.table(m))
    keys = sorted(want)
    np.testing.assert_allclose([got[k] for k in keys], [want[k] for k in keys], rtol=1e-8, atol=ATOL)


def test_closed_form_is_the_divergence(model):
    """The paper's closed form (the reference) equals the relative entropy summed over the whole
    vocabulary, on an exactly normalized copy of a character model."""
    m = model(3, kind="chars")
    V = len(m.vocab)
    t = ref.normalized(ref.table(m), V)
    crit = ref.criteria(t)
    sample = random.Random(7).sample(sorted(crit), 150)
    for g in sample:
        D = math.log1p(crit[g])
        brute = ref.brute_force_divergence(t, g, V)
        assert D == pytest.approx(brute, rel=1e-6, abs=1e-15), g


@pytest.mark.parametrize("order,quantile", [(2, 0.5), (3, 0.3), (3, 0.8), (4, 0.5), (4, 0.95)])
def test_pruned_equals_reference(model, order, quantile):
    m = model(order)
    t = ref.table(m)
    crit = ref.criteria(t)
    T = _threshold_between(crit, quantile)
    got = prune_entropy(m, threshold=T)
    want = ref.prune(t, T, crit)
    assert sum(got.sizes()) < sum(m.sizes())
    _assert_same_model(got, want)
    assert got.info["entropy_prune"] == {"threshold": T}


@pytest.mark.slow
def test_pruning_a_pruned_model(model):
    """A pruned model lacks suffixes of some kept n-grams (p(w|h') backs off more than once): pruning
    it again still equals the reference."""
    m = model(4)
    T1 = _threshold_between(ref.criteria(ref.table(m)), 0.4)
    once = prune_entropy(m, threshold=T1)
    t = ref.table(once)
    missing = [g for g in t if len(g) >= 3 and g[1:] not in t]
    assert missing, "the test needs a model that is not suffix-closed"
    crit = ref.criteria(t)
    got = _by_ngram(once, entropy_criteria(once))
    np.testing.assert_allclose([got[k] for k in sorted(crit)], [crit[k] for k in sorted(crit)], rtol=1e-8, atol=ATOL)
    T2 = _threshold_between(crit, 0.5)
    _assert_same_model(prune_entropy(once, threshold=T2), ref.prune(t, T2, crit))


@pytest.mark.parametrize("order", [3, 4])
def test_every_context_sums_to_one(model, order):
    """After pruning, p(. | h) sums to one over the vocabulary (all words but <s>) for every context h
    in the model, as before it (character models: the whole vocabulary is cheap to sum)."""
    m = model(order, kind="chars")
    V = len(m.vocab)
    crit = ref.criteria(ref.table(m))
    before = ref.context_sums(ref.table(m), V)
    for quantile in (0.5, 0.9):
        pruned = prune_entropy(m, threshold=_threshold_between(crit, quantile))
        t = ref.table(pruned)
        assert len(t) < len(ref.table(m))
        sums = ref.context_sums(t, V)
        worst = max(abs(s - 1) for s in sums.values())
        assert worst < 1e-5, worst
        assert worst < 10 * max(abs(s - 1) for s in before.values()) + 1e-6


def test_word_contexts_sum_to_one(model):
    """The same on a word model, for a sample of contexts (every word of the vocabulary summed)."""
    m = model(3)
    V = len(m.vocab)
    pruned = prune_entropy(m, threshold=_threshold_between(ref.criteria(ref.table(m)), 0.6))
    t = ref.table(pruned)
    N = ref.order_of(t)
    contexts = random.Random(3).sample(sorted(h for h in t if len(h) < N), 60)
    for h in contexts:
        s = sum(10.0 ** ref.logp(t, h, w, N) for w in range(V) if w != ref.BOS)
        assert abs(s - 1) < 1e-5, (h, s)


def test_threshold_zero_removes_nothing(model):
    m = model(4)
    got = prune_entropy(m, threshold=0)
    for n in range(m.order):
        assert np.array_equal(got.ngrams[n], m.ngrams[n])
        assert np.array_equal(got.logprob[n], m.logprob[n])
        assert np.array_equal(got.backoff[n], m.backoff[n])


def test_huge_threshold_leaves_the_unigrams(model):
    m = model(4)
    got = prune_entropy(m, threshold=1e300)
    assert got.sizes() == [m.sizes()[0], 0, 0, 0]
    assert np.array_equal(got.logprob[0], m.logprob[0])
    assert not got.backoff[0].any()  # no unigram is a context any more: every weight is 1
    _assert_same_model(got, ref.prune(ref.table(m), 1e300))


def test_kept_contexts_are_kept(model):
    """The model stays prefix-closed: the context of every kept n-gram is kept, even below the
    threshold (and such contexts exist at this threshold)."""
    m = model(4)
    crit = ref.criteria(ref.table(m))
    T = _threshold_between(crit, 0.7)
    t = ref.table(prune_entropy(m, threshold=T))
    assert all(g[:-1] in t for g in t if len(g) >= 2)
    assert any(crit[g] < T for g in t if len(g) >= 2)


@pytest.mark.slow
@pytest.mark.parametrize("order", [2, 3])
def test_size_targeted(model, order):
    m = model(order)
    total, U = sum(m.sizes()), m.sizes()[0]
    t = ref.table(m)
    crit = ref.criteria(t)
    for size in (U, U + 10, (U + total) // 2, total - 1, total + 5):
        got = prune_entropy(m, size=size)
        assert sum(got.sizes()) <= size
        _assert_same_model(got, ref.prune_to_size(t, size, crit))
        if size >= total:
            assert got.sizes() == m.sizes()
        # the threshold it reports prunes to the same model
        again = prune_entropy(m, threshold=got.info["entropy_prune"]["threshold"])
        assert again.sizes() == got.sizes()


def test_size_below_the_unigrams_is_refused(model):
    m = model(3)
    with pytest.raises(LmError, match="unigrams"):
        prune_entropy(m, size=m.sizes()[0] - 1)


def test_stupid_backoff_is_refused(model):
    with pytest.raises(LmError, match="not probabilities"):
        prune_entropy(model(3, "stupid"), threshold=1e-6)


def test_not_prefix_closed_is_refused(model):
    from lmtools.ngram.model import NGramModel

    m = model(3)
    # drop the bigram that is the context of the first trigram
    ctx = m.ngrams[2][0, :2]
    keep = ~(m.ngrams[1] == ctx).all(axis=1)
    bad = NGramModel(m.vocab, [m.ngrams[0], m.ngrams[1][keep], m.ngrams[2]],
                     [m.logprob[0], m.logprob[1][keep], m.logprob[2]],
                     [m.backoff[0], m.backoff[1][keep], m.backoff[2]])
    with pytest.raises(LmError, match="first 2 words are not a 2-gram"):
        prune_entropy(bad, threshold=1e-6)
