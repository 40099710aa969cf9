"""Sampling: exact next-word distributions against the plain-Python reference, and samples that
follow the model (chi-square goodness of fit at fixed seeds, MLE re-estimation)."""

import math

import numpy as np
import pytest

from lmtools.errors import LmError
from lmtools.kernels.backoff_distribution import dense_distribution
from lmtools.ngram.model import NGramModel
from lmtools.kinds import next_word_distribution, sample, sampler_for
from lmtools.ngram.sample import NGramSampler, check_options
from lmtools.nn.sample import FFNNSampler
from tests import naive_sample as ref
from tests.conftest import SHAKESPEARE

stats = pytest.importorskip("scipy.stats")


# ----------------------------------------------------------------------------------------------
# Models


def _counts(order, lines=4000, vocab_size=0):
    from lmtools.ngram.counting import VocabOptions, count_levels

    text = SHAKESPEARE.read_bytes().split(b"\n")[:lines]
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.txt"
        p.write_bytes(b"\n".join(text) + b"\n")
        return count_levels([str(p)], order, vocab_opts=VocabOptions(vocab_size=vocab_size)).to_counts({})


@pytest.fixture(scope="module")
def kn3():
    from lmtools.ngram.smoothing import smooth

    return smooth(_counts(3))


@pytest.fixture(scope="module")
def small_bigram():
    """KN bigram over the 150 most frequent words: many frequent bigrams."""
    from lmtools.ngram.smoothing import smooth

    return smooth(_counts(2, lines=6000, vocab_size=150))


@pytest.fixture(scope="module")
def small_trigram():
    from lmtools.ngram.smoothing import smooth

    return smooth(_counts(3, lines=6000, vocab_size=60))


def handmade():
    """A back-off trigram whose contexts are not all in the model (a pruned-looking ARPA)."""
    vocab = ["<unk>", "<s>", "</s>", "a", "b", "c"]
    g1 = np.arange(6, dtype=np.int32)[:, None]
    lp1 = np.log10([0.05, 1.0, 0.25, 0.3, 0.25, 0.15]).astype(np.float32)
    lp1[1] = 0.0
    bo1 = np.log10([1.0, 0.6, 1.0, 0.5, 0.7, 1.0]).astype(np.float32)
    g2 = np.array([[1, 3], [1, 4], [3, 3], [3, 5], [4, 2]], np.int32)
    lp2 = np.log10([0.2, 0.2, 0.25, 0.35, 0.4]).astype(np.float32)
    bo2 = np.log10([0.5, 1.0, 0.8, 1.0, 1.0]).astype(np.float32)
    g3 = np.array([[1, 3, 4], [1, 3, 5], [3, 3, 2]], np.int32)
    lp3 = np.log10([0.3, 0.2, 0.5]).astype(np.float32)
    return NGramModel(vocab, [g1, g2, g3], [lp1, lp2, lp3], [bo1, bo2, np.zeros(3, np.float32)], method="test")


# ----------------------------------------------------------------------------------------------
# Exact distributions


def test_distribution_matches_reference_and_sums_to_one(kn3):
    rng = np.random.default_rng(3)
    s = sampler_for(kn3)
    V = len(kn3.vocab)
    lp, bo = ref.tables(kn3)
    seen = kn3.ngrams[2][rng.integers(0, len(kn3.ngrams[2]), 6), :2]  # contexts with successors
    contexts = [[], [0], [2 + 1]] + [r.tolist() for r in seen] + \
               [rng.integers(3, V, size=rng.integers(1, 5)).tolist() for _ in range(6)]
    for h in contexts:
        h = [w for w in h if w not in (1, 2)]
        got = s.distribution(np.array(h, np.int32))
        want = np.array([0.0 if w == 1 else 10.0 ** ref.cond_log10(lp, bo, 3, [1] + h, w) for w in range(V)])
        assert got.shape == (V,)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
        assert abs(got.sum() - 1.0) < 1e-5, (h, got.sum())
        assert got[1] == 0.0


def test_distribution_of_handmade_backoff_model():
    m = handmade()
    s = sampler_for(m)
    for h in ([], [3], [4], [5], [3, 3], [4, 4], [5, 3], [0, 3]):
        got = s.distribution(np.array(h, np.int32))
        np.testing.assert_allclose(got, ref.distribution(m, [1] + h), rtol=1e-6, atol=1e-12)


@pytest.mark.slow  # one of the slowest of make test (first compiles of its kernels): in the slow set CI runs
def test_word_logprobs_agree_with_the_query_engine(kn3):
    from lmtools import api

    s = sampler_for(kn3)
    model = api.Model(kn3)
    for sent in sample(s, 20, seed=5, max_len=30):
        words = [kn3.vocab[i] for i in sent]
        ours = s.prefix_log10(np.array(sent + [2], np.int32))
        assert ours == pytest.approx(model.score(" ".join(words)), abs=1e-4)


def test_sentence_scores_are_model_log10_probs(kn3):
    s = sampler_for(kn3)
    opts = check_options(max_len=40)
    pre = np.array([kn3.vocab.index("I")], np.int32)
    b = s.sample_batch(50, 11, 0, pre, opts)
    lp, bo = ref.tables(kn3)
    for i in range(10):
        toks = [1] + pre.tolist() + b.tokens[i, : b.lengths[i]].tolist() + ([2] if b.ended[i] else [])
        want = sum(ref.cond_log10(lp, bo, 3, toks[:t], toks[t]) for t in range(1, len(toks)))
        assert b.log10[i] == pytest.approx(want, abs=1e-6)


def test_next_word_distribution_api(kn3):
    p = next_word_distribution(kn3, "I pray")
    q = next_word_distribution(kn3, [kn3.vocab.index("I"), kn3.vocab.index("pray")])
    np.testing.assert_array_equal(p, q)
    assert abs(p.sum() - 1) < 1e-5
    with pytest.raises(LmError):
        next_word_distribution(kn3, "a </s> b")


# ----------------------------------------------------------------------------------------------
# Samples follow the model


def _chisquare(observed: np.ndarray, expected_p: np.ndarray, min_expected: float = 5.0) -> float:
    """p-value of Pearson's chi-square, rare categories pooled into one."""
    n = observed.sum()
    exp = expected_p / expected_p.sum() * n
    big = exp >= min_expected
    assert observed[expected_p == 0].sum() == 0, "drew a word of probability 0"
    o = np.append(observed[big], observed[~big].sum())
    e = np.append(exp[big], exp[~big].sum())
    if e[-1] < min_expected:  # fold a small pooled cell into the smallest big one
        o, e = o[:-1], e[:-1]
        o[np.argmin(e)] += observed[~big].sum()
        e[np.argmin(e)] += exp[~big].sum()
    if len(o) == 1:  # a single possible outcome: nothing to test beyond the zeros above
        return 1.0
    return float(stats.chisquare(o, e).pvalue)


def _first_words(s, n, seed, **kw):
    b = s.sample_batch(n, seed, 0, np.zeros(0, np.int32), check_options(max_len=1, **kw))
    V = len(s.vocab)
    first = np.where(b.lengths > 0, b.tokens[:, 0], 2)  # an empty sentence drew </s> first
    return np.bincount(first, minlength=V)


@pytest.mark.parametrize("explicit", [False, True])
def test_first_word_chi_square(small_trigram, explicit):
    s = NGramSampler(small_trigram)
    assert s.normalized
    s.force_explicit = explicit
    p = s.distribution(np.zeros(0, np.int32))
    q = np.array(ref.truncated(p.tolist()))  # <unk> excluded, renormalized
    obs = _first_words(s, 40000, seed=2024)
    assert obs[0] == 0 and obs[1] == 0
    assert _chisquare(obs, q) > 1e-3


@pytest.mark.parametrize("kw", [dict(temperature=0.6), dict(temperature=1.7), dict(top_k=7), dict(top_p=0.6),
                                dict(top_k=20, top_p=0.8, temperature=1.3), dict(allow_unk=True)])
def test_truncated_sampling_chi_square(small_trigram, kw):
    s = NGramSampler(small_trigram)
    h = [small_trigram.vocab.index("the")] if "the" in small_trigram.vocab else [5]
    p = s.distribution(np.array(h, np.int32))
    q = np.array(ref.truncated(p.tolist(), kw.get("temperature", 1.0), kw.get("top_k", 0), kw.get("top_p", 1.0),
                               kw.get("allow_unk", False)))
    b = s.sample_batch(30000, 99, 0, np.array(h, np.int32), check_options(max_len=1, **kw))
    nxt = np.where(b.lengths > 0, b.tokens[:, 0], 2)
    obs = np.bincount(nxt, minlength=len(p))
    assert obs[q == 0].sum() == 0
    assert _chisquare(obs, q) > 1e-3


@pytest.mark.parametrize("kw", [dict(top_p=0.8), dict(top_p=0.5, temperature=0.7), dict(top_k=30),
                                dict(top_k=200, temperature=1.4)])
@pytest.mark.parametrize("context", [[], ["I"], ["the"]])
def test_truncated_sampling_large_vocabulary(kn3, kw, context):
    # thousands of explicit successors: the top-k preselection and the top-p threshold at work
    s = NGramSampler(kn3)
    h = [kn3.vocab.index(w) for w in context]
    p = s.distribution(np.array(h, np.int32))
    q = np.array(ref.truncated(p.tolist(), kw.get("temperature", 1.0), kw.get("top_k", 0), kw.get("top_p", 1.0)))
    b = s.sample_batch(20000, 5, 0, np.array(h, np.int32), check_options(max_len=1, **kw))
    nxt = np.where(b.lengths > 0, b.tokens[:, 0], 2)
    obs = np.bincount(nxt, minlength=len(p))
    assert obs[q == 0].sum() == 0
    assert _chisquare(obs, q) > 1e-3


def test_next_words_after_frequent_contexts_chi_square(small_trigram):
    s = NGramSampler(small_trigram)
    b = s.sample_batch(30000, 7, 0, np.zeros(0, np.int32), check_options(max_len=60))
    V = len(s.vocab)
    # (u, v) -> next, over all positions of all sentences (</s> included, <s> padded)
    seqs = [np.concatenate([[1, 1], b.tokens[i, : b.lengths[i]], [2] if b.ended[i] else []]).astype(np.int64)
            for i in range(len(b))]
    tri = np.concatenate([np.stack([q[:-2], q[1:-1], q[2:]], 1) for q in seqs if len(q) >= 3])
    tri = tri[tri[:, 1] != 1]  # the <s> <s> context is only the sentence start
    key = tri[:, 0] * V + tri[:, 1]
    uniq, cnt = np.unique(key, return_counts=True)
    tested = 0
    for k in uniq[np.argsort(-cnt)][:4]:
        u, v = divmod(int(k), V)
        nxt = tri[key == k, 2]
        p = dense_distribution(s.F, s.order, np.array([u, v], np.int32))  # p(. | u v), u may be <s>
        q = np.array(ref.truncated(p.tolist()))
        assert _chisquare(np.bincount(nxt, minlength=V), q) > 1e-3
        tested += 1
    assert tested == 4


def test_mle_bigram_from_200k_sampled_tokens(small_bigram):
    s = NGramSampler(small_bigram)
    V = len(s.vocab)
    b = s.sample_batch(45000, 31, 0, np.zeros(0, np.int32), check_options(max_len=200))
    seqs = [np.concatenate([[1], b.tokens[i, : b.lengths[i]], [2] if b.ended[i] else []]).astype(np.int64)
            for i in range(len(b))]
    tokens = sum(len(q) - 1 for q in seqs)
    assert tokens >= 200_000, tokens
    pairs = np.concatenate([np.stack([q[:-1], q[1:]], 1) for q in seqs])
    c2 = np.zeros((V, V))
    np.add.at(c2, (pairs[:, 0], pairs[:, 1]), 1)
    c1 = c2.sum(1)
    checked = 0
    for u in np.flatnonzero(c1 >= 3000):
        p = np.array(ref.truncated(dense_distribution(s.F, s.order, np.array([u], np.int32)).tolist()))
        for v in np.flatnonzero(p >= 0.02):
            mle = c2[u, v] / c1[u]
            sd = math.sqrt(p[v] * (1 - p[v]) / c1[u])
            assert abs(mle - p[v]) < 5 * sd, (s.vocab[u], s.vocab[v], mle, p[v])
            checked += 1
    assert checked >= 30


# ----------------------------------------------------------------------------------------------
# Reproducibility and options


def test_same_seed_same_sentences_whatever_the_split(kn3):
    s = sampler_for(kn3)
    opts = check_options(max_len=50)
    pre = np.zeros(0, np.int32)
    whole = s.sample_batch(300, 42, 0, pre, opts)
    parts = list(s.sample_all(300, 42, pre, opts, chunk=7))
    assert sum(len(p) for p in parts) == 300
    assert np.concatenate([p.tokens for p in parts]).tolist() == whole.tokens.tolist()
    np.testing.assert_array_equal(np.concatenate([p.log10 for p in parts]), whole.log10)
    assert sample(kn3, 20, seed=1) == sample(kn3, 20, seed=1)
    assert sample(kn3, 20, seed=1) != sample(kn3, 20, seed=2)
    assert s.sample_batch(300, 42, 0, pre, opts, threads=1).tokens.tolist() == whole.tokens.tolist()


def test_a_mapped_model_is_sampled_from_its_file(kn3, tmp_path):
    """A model opened by path gives the sampler its rows of every order as one view of the file
    (whatever lies between them), a model read from a stream or built in memory copies them
    together: the same arrays, the same sentences, one compiled kernel."""
    import io
    import mmap

    from lmtools.io.modelwrite import write_model
    from lmtools.io.models import load_model, ngram_to_parts, save_model
    from lmtools.kernels.sample_sentences import sample_ngram
    from lmtools.ngram.sample import _buffer_of

    path = tmp_path / "kn3.lm"
    with open(path, "wb") as f:
        save_model(kn3, f)
    header, arrays = ngram_to_parts(kn3)
    old = tmp_path / "rows-first.lm"  # the arrays in another order: every order's rows first
    with open(old, "wb") as f:
        write_model(f, "ngram", header, {k: arrays[k] for k in sorted(arrays, key=lambda k: not k.startswith("ngrams_"))})
    mapped, other = NGramSampler(load_model(str(path))), NGramSampler(load_model(str(old)))
    assert isinstance(_buffer_of(mapped.F.ids), mmap.mmap) and isinstance(_buffer_of(other.F.ids), mmap.mmap)
    assert mapped.F.ids.size > other.F.ids.size  # the first spans the values of orders 2..N-1 too
    streamed = NGramSampler(load_model(io.BytesIO(path.read_bytes())))
    built = NGramSampler(kn3)
    assert streamed.F.ids.flags.owndata and built.F.ids.flags.owndata
    opts = check_options(max_len=30)
    pre = np.zeros(0, np.int32)
    want = built.sample_batch(200, 5, 0, pre, opts)
    for s in (mapped, other, streamed):
        for n in range(2, 4):
            a, b = int(s.F.id_base[n]), int(built.F.id_base[n])
            m = int(built.F.n_rows[n]) * n
            assert np.array_equal(s.F.ids[a:a + m], built.F.ids[b:b + m])
        for f in ("pr", "bof", "cum", "row_base", "n_rows", "uni", "uni_bo", "ucum"):
            assert np.array_equal(getattr(s.F, f), getattr(built.F, f)), f
        got = s.sample_batch(200, 5, 0, pre, opts)
        assert got.tokens.tolist() == want.tokens.tolist()
        np.testing.assert_array_equal(got.log10, want.log10)
    assert len(sample_ngram.signatures) == 1, sample_ngram.signatures


def test_one_compiled_sampler_for_every_option(kn3):
    """The sampling kernel takes the model, options and outputs as named tuples whose field types are
    fixed where they are built (lmtools/ngram/sample.py): every combination of options runs the same
    compiled kernel instead of compiling another (about 30 s) for a temperature or a top-k."""
    from lmtools.kernels.sample_sentences import sample_ngram

    s = sampler_for(kn3)
    pre = np.zeros(0, np.int32)
    for kw in ({}, dict(temperature=0.7), dict(top_k=5), dict(top_p=0.9, allow_unk=True), dict(greedy=True),
               dict(temperature=2, top_k=3, top_p=0.5)):
        b = s.sample_batch(4, 1, 0, pre, check_options(max_len=10, **kw))
        assert len(b) == 4 and b.failed == 0
    s.sample_batch(4, 1, 0, np.array([3, 4], np.int32), check_options(max_len=10))
    assert len(sample_ngram.signatures) == 1, sample_ngram.signatures


def test_greedy_and_prefix(kn3):
    i = kn3.vocab.index
    out = sample(kn3, 3, seed=0, prefix="I pray you", greedy=True, max_len=12)
    assert out[0] == out[1] == out[2]
    assert out[0][:3] == [i("I"), i("pray"), i("you")]
    s = sampler_for(kn3)
    h = list(out[0][:3])
    for w in out[0][3:]:  # each word is the most likely (ignoring <unk>)
        p = s.distribution(np.array(h, np.int32))
        p[0] = 0
        assert w == int(np.argmax(p))
        h.append(w)
    pre = sample(kn3, 2, seed=0, prefix=["zzzz-unseen", "the"], max_len=5)
    assert pre[0][:2] == [0, i("the")]


def test_unk_only_when_allowed():
    m = handmade()
    s = sampler_for(m)
    draws = np.concatenate([np.array(r[:1] or [2]) for r in sample(s, 3000, seed=1, max_len=1)])
    assert 0 not in draws
    draws = np.concatenate([np.array(r[:1] or [2]) for r in sample(s, 3000, seed=1, max_len=1, allow_unk=True)])
    assert 0 in draws


def test_bad_options():
    for kw in (dict(temperature=0), dict(temperature=-1), dict(top_k=0), dict(top_p=0), dict(top_p=1.5),
               dict(max_len=0), dict(temperature=float("nan"))):
        with pytest.raises(LmError):
            check_options(**kw)


def test_empty_counts_and_order_one():
    from lmtools.ngram.counts import Counts

    empty = Counts(["<unk>", "<s>", "</s>"], [np.arange(3, dtype=np.int32)[:, None]], [np.zeros(3, np.int64)])
    with pytest.raises(LmError, match="no text"):
        sampler_for(empty)
    from lmtools.ngram.smoothing import smooth

    uni = smooth(_counts(1, lines=500))
    s = sampler_for(uni)
    p = s.distribution(np.array([5, 6], np.int32))
    np.testing.assert_allclose(p, s.distribution(np.zeros(0, np.int32)))
    assert len(sample(uni, 5, seed=3)) == 5


def test_stupid_backoff_is_sampled_normalized():
    from lmtools.ngram.smoothing import smooth

    m = smooth(_counts(3, lines=2000), "stupid")
    s = sampler_for(m)
    assert s.scores_only and not s.normalized
    out = sample(s, 50, seed=4, max_len=20)
    assert len(out) == 50 and all(0 not in r for r in out)


# ----------------------------------------------------------------------------------------------
# FFNN


def _ffnn(layer="softmax", V=12, ctx=2, seed=0):
    from lmtools.nn.model import FFNNModel

    r = np.random.default_rng(seed)
    d, H = 5, 7
    vocab = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(V - 3)]
    kw = {}
    if layer == "class":
        kw = dict(word_class=(np.arange(V) % 3).astype(np.int32), Uc=r.normal(size=(3, H)), cc=r.normal(size=3))
    return FFNNModel(vocab=vocab, context=ctx, E=r.normal(size=(V, d)), W=r.normal(size=(H, ctx * d)),
                     b=r.normal(size=H), U=r.normal(size=(V, H)) * 1.5, c=r.normal(size=V), **kw)


@pytest.mark.slow  # one of the slowest of make test (first compiles of its kernels): in the slow set CI runs
@pytest.mark.parametrize("layer", ["softmax", "class"])
def test_ffnn_distribution_and_samples(layer):
    m = _ffnn(layer)
    s = sampler_for(m)
    assert isinstance(s, FFNNSampler)
    p = s.distribution(np.array([4], np.int32))
    want = 10 ** m.next_log10_probs(np.array([[1, 4]], np.int32))[0]
    np.testing.assert_allclose(p, want, rtol=1e-9)
    assert abs(p.sum() - 1) < 1e-9
    b = s.sample_batch(20000, 5, 0, np.array([4], np.int32), check_options(max_len=1))
    obs = np.bincount(np.where(b.lengths > 0, b.tokens[:, 0], 2), minlength=len(p))
    assert _chisquare(obs, np.array(ref.truncated(p.tolist()))) > 1e-3
    # scores: the model's log10 p of each sentence (prefix, words, </s>)
    b = s.sample_batch(20, 6, 0, np.array([4, 5], np.int32), check_options(max_len=8))
    for i in range(20):
        toks = np.array([1, 4, 5] + b.tokens[i, : b.lengths[i]].tolist() + ([2] if b.ended[i] else []), np.int32)
        lp = m.score_ids(toks) if b.ended[i] else None
        if lp is not None:
            assert b.log10[i] == pytest.approx(lp[1:].sum(), abs=1e-9)
    a = s.sample_batch(40, 6, 0, np.zeros(0, np.int32), check_options(max_len=8, top_k=3, temperature=0.7))
    c = s.sample_batch(40, 6, 0, np.zeros(0, np.int32), check_options(max_len=8, top_k=3, temperature=0.7))
    assert a.rows() == c.rows() and a.lengths.sum() > 40


def exact_products_ffnn(layer="softmax"):
    """A float32 FFNN whose matrix products are exact: parameters on a grid of 1/4, relu. BLAS
    rounds a product's sums in an order that depends on the shape of the whole batch (OpenBLAS
    sgemm: the same row gives other last bits among 7 rows than among 512), so only with exact
    products does a row's result not depend on the rows scored beside it; everything after the
    products (the softmax, its normalizer, the sums over a sentence) is what the check is about."""
    m = _ffnn(layer, V=40, ctx=3)
    for k in ("E", "W", "b", "U", "c", "Uc", "cc"):
        if getattr(m, k) is not None:
            setattr(m, k, (np.round(getattr(m, k) * 4) / 4).astype(np.float32))
    m.activation = "relu"
    m.c[2] += 6.0  # </s> likely enough that most sentences end
    if m.cc is not None:
        m.cc[m.word_class[2]] += 6.0
    return m


@pytest.mark.parametrize("layer", ["softmax", "class"])
def test_ffnn_sample_scores_equal_the_scorer_bit_for_bit(layer):
    # one forward pass: a drawn sentence's log10 p (prefix, words, </s>) is the scorer's line sum,
    # ==, not approx; a batch whose live rows shrink to one as sentences end
    from lmtools.kinds import scorer_for

    m = exact_products_ffnn(layer)
    s, sc = sampler_for(m), scorer_for(m)
    for prefix in ([], [5, 7]):
        b = s.sample_batch(200, 3, 0, np.array(prefix, np.int32), check_options(max_len=12, temperature=1.3))
        text = "".join(" ".join(m.vocab[w] for w in prefix + b.tokens[i, : b.lengths[i]].tolist()) + "\n"
                       for i in range(len(b)))
        lp = sc.line_scores(text.encode()).lp
        assert b.ended.sum() > 20
        assert lp[b.ended].tolist() == b.log10[b.ended].tolist()


def test_kenlm_reference_arpa_is_sampled_exactly():
    from lmtools.io.models import load_model
    from tests.conftest import KENLM_O3

    m = load_model(str(KENLM_O3))
    s = sampler_for(m)
    assert s.normalized
    lp, bo = ref.tables(m)
    rng = np.random.default_rng(0)
    rows = m.ngrams[2][rng.integers(0, len(m.ngrams[2]), 3)]
    for h in [[]] + [r[1:].tolist() for r in rows]:
        h = [w for w in h if w != 1]
        p = s.distribution(np.array(h, np.int32))
        assert abs(p.sum() - 1) < 1e-4
        for w in rng.integers(0, len(m.vocab), 20).tolist():
            want = 0.0 if w == 1 else 10 ** ref.cond_log10(lp, bo, 3, [1] + h, w)
            assert p[w] == pytest.approx(want, rel=1e-9, abs=1e-300)
    assert len(sample(s, 10, seed=1)) == 10
