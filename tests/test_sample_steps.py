"""The plain-Python draw of a few sentences (lmtools/ngram/sample_steps.py) against the kernels: the
same sentences, bit for bit, for every seed, prefix and first sentence; the same next-word
distributions and word scores; and a batch whose step needs the explicit way goes to the kernels."""

import numpy as np
import pytest

from lmtools.kernels.backoff_distribution import dense_distribution, word_logprobs
from lmtools.ngram import sample_steps
from lmtools.ngram.sample import NGramSampler, check_options
from lmtools.vocab import BOS_ID
from tests.conftest import SHAKESPEARE


def _model(order, lines, vocab_size=0):
    import tempfile
    from pathlib import Path

    from lmtools.ngram.counting import VocabOptions, count_levels
    from lmtools.ngram.smoothing import smooth

    text = SHAKESPEARE.read_bytes().split(b"\n")[:lines]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.txt"
        p.write_bytes(b"\n".join(text) + b"\n")
        return smooth(count_levels([str(p)], order, vocab_opts=VocabOptions(vocab_size=vocab_size)).to_counts({}))


@pytest.fixture(scope="module", params=[(2, 3000, 0), (4, 6000, 0), (5, 4000, 200)], ids=["kn2", "kn4", "kn5-v200"])
def samplers(request):
    """(plain Python for few sentences, kernels always) over one model."""
    m = _model(*request.param)
    py, kern = NGramSampler(m), NGramSampler(m)
    kern.python_sentences = 0
    assert py.normalized
    return py, kern


def _same(a, b):
    assert a.tokens.tolist() == b.tokens.tolist()
    assert a.lengths.tolist() == b.lengths.tolist() and a.ended.tolist() == b.ended.tolist()
    assert a.log10.tobytes() == b.log10.tobytes()  # the same float64 bits
    assert a.failed == b.failed


@pytest.mark.parametrize("max_len", [1, 3, 40])
def test_the_same_sentences_as_the_kernels(samplers, max_len):
    py, kern = samplers
    opts = check_options(max_len=max_len)
    rng = np.random.default_rng(max_len)
    prefixes = [np.zeros(0, np.int32), np.array([3], np.int32),
                rng.integers(3, len(py.vocab), 6).astype(np.int32)]  # random words: contexts the model lacks
    for seed in (0, 1, 2**64 - 1, -5, 123456789):
        for first in (0, 7, 2**40):
            for pre in prefixes:
                assert py.python_draws(16, opts)
                _same(py.sample_batch(16, seed, first, pre, opts), kern.sample_batch(16, seed, first, pre, opts))


def test_options_that_need_the_explicit_way_go_to_the_kernels(samplers):
    py, _ = samplers
    for kw in (dict(temperature=0.5), dict(top_k=3), dict(top_p=0.9), dict(greedy=True)):
        assert not py.python_draws(2, check_options(**kw))
    assert py.python_draws(py.python_sentences, check_options())
    assert not py.python_draws(py.python_sentences + 1, check_options())
    assert py.python_draws(2, check_options(allow_unk=True))


def test_a_step_the_nested_way_cannot_finish_goes_to_the_kernels(samplers, monkeypatch):
    py, kern = samplers
    opts = check_options(max_len=20)
    pre = np.zeros(0, np.int32)
    monkeypatch.setattr(sample_steps, "MAX_NESTED_DRAWS", 0)  # every Python step gives up at once
    assert py.steps.sample([BOS_ID], sample_steps.init_states(3, 0, 2), 20, False) is None
    _same(py.sample_batch(5, 3, 0, pre, opts), kern.sample_batch(5, 3, 0, pre, opts))


def test_distributions_and_word_scores_equal_the_kernels(samplers):
    py, _ = samplers
    F, N = py.F, py.order
    rng = np.random.default_rng(0)
    V = len(py.vocab)
    hists = [[BOS_ID], [BOS_ID, 5], rng.integers(3, V, 9).tolist()]
    for n in range(2, N + 1):  # seen contexts of every order
        base = int(F.id_base[n])
        for r in rng.integers(0, int(F.n_rows[n]), 5).tolist():
            hists.append(F.ids[base + r * n: base + (r + 1) * n].tolist())
    for h in hists:
        want = dense_distribution(F, N, np.array(h, np.int32))
        assert py.steps.dense_distribution(h).tobytes() == want.tobytes()
        full = [BOS_ID] + [w for w in h if w != BOS_ID]
        assert py.steps.word_logprobs(full, 1).tobytes() == word_logprobs(F, N, np.array(full, np.int32), 1).tobytes()
