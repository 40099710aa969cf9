"""The query engine: kernels against the plain-Python scorer, KenLM's own numbers, mixtures, the API."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from lmtools.errors import LmError
from lmtools.ngram import query as Q
from lmtools.ngram.model import NGramModel
from lmtools.mixture import Mixture, check_lambdas
from lmtools.ngram.query import QueryModel
from lmtools.ngram.scores import LineScores, PplStats, exact_add
from tests import naive_query as NQ
from tests.conftest import DATA, SHAKESPEARE

KENLM = DATA / "kenlm"
ARPA3 = KENLM / "tinyshakespeare-train.o3.arpa.xz"
# ../shared/reference/kenlm/README.md: KenLM query on the last 4000 lines with lmplz -o 3.
KENLM_O3_PPL, KENLM_O3_PPL_EXCL, KENLM_OOVS, KENLM_TOKENS = 504.02377775809015, 249.68199179833238, 2125, 21893


def _lines():
    return SHAKESPEARE.read_text(encoding="utf-8").split("\n")[:-1]


@pytest.fixture(scope="module")
def o3(kenlm_arpa3):
    return kenlm_arpa3


@pytest.fixture(scope="module")
def q3(o3):
    return QueryModel(o3, "o3")


@pytest.fixture(scope="module")
def test_text():
    return "\n".join(_lines()[-4000:]) + "\n"


@pytest.fixture(scope="module")
def scored(q3, test_text):
    return q3.score_text(test_text.encode(), fast=True)


@pytest.fixture(scope="module")
def own_counts5(kenlm_train_counts5):
    """Counts of orders 1..5 of the same training text as KenLM's models (head -n 36000)."""
    return kenlm_train_counts5


@pytest.fixture(scope="module")
def own_kn3(kenlm_train_kn3):
    """Our own modified Kneser-Ney trigram of KenLM's training text."""
    return kenlm_train_kn3


@pytest.fixture(scope="module")
def own_kn5(kenlm_train_kn5):
    return kenlm_train_kn5


# ---------------------------------------------------------------------------------------------
# KenLM's numbers from KenLM's ARPA


def _kenlm_words(order=3):
    rows, summary = [], {}
    for line in (KENLM / f"tinyshakespeare-test-head50.o{order}.words.txt").read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if not fields[-1].startswith("Total:"):
            summary[fields[0].rstrip(":")] = float(fields[1])
            continue
        sent = []
        for f in fields[:-1]:
            word_id, order, lp = f.rsplit(" ", 2)
            word, wid = word_id.rsplit("=", 1)
            sent.append((word, int(wid) == 0 and word != "</s>", int(order), float(lp)))
        rows.append(sent)
    return rows, summary


@pytest.mark.parametrize("which", ["kenlm-arpa-o3", "own-o3", "own-o5"])
def test_per_word_scores_match_kenlm(which, q3, own_kn3, own_kn5, test_text):
    order = 5 if which.endswith("o5") else 3
    q = {"kenlm-arpa-o3": q3, "own-o3": QueryModel(own_kn3), "own-o5": QueryModel(own_kn5)}[which]
    ref, summary = _kenlm_words(order)
    assert len(ref) == 50
    head = "\n".join(test_text.split("\n")[:50]) + "\n"
    s = q.score_text(head.encode(), fast=True)
    st = s.starts()
    assert st.size == 50
    for i, sent in enumerate(ref):
        lo = st[i] + 1
        hi = st[i + 1] if i + 1 < 50 else s.ids.size
        assert hi - lo == len(sent)
        for j, (word, oov, order, lp) in enumerate(sent):
            assert abs(s.logp[lo + j] - lp) < 1e-5, (i, word)
            assert s.order[lo + j] == order, (i, word)
            assert bool(s.oov[lo + j]) == oov, (i, word)
    st = PplStats()
    st.add(s.line_scores())
    f = st.figures()
    assert f["tokens"] == summary["Tokens"] and f["oovs"] == summary["OOVs"]
    assert f["ppl"] == pytest.approx(summary["Perplexity including OOVs"], rel=1e-7)
    assert f["ppl_excl_oov"] == pytest.approx(summary["Perplexity excluding OOVs"], rel=1e-7)


def _kenlm_totals(order=3):
    tot, oov = [], []
    for line in (KENLM / f"tinyshakespeare-test.o{order}.sentences.txt").read_text().splitlines():
        parts = line.split()
        tot.append(float(parts[1]))
        oov.append(int(parts[3]))
    return np.array(tot), np.array(oov)


def test_sentence_totals_and_perplexity_match_kenlm(scored):
    ref, ref_oov = _kenlm_totals()
    ls = scored.line_scores()
    lp, oovs, zeros = ls.lp, ls.oovs, ls.zeros
    assert lp.size == ref.size == 4000
    assert np.abs(lp - ref).max() < 1e-5
    assert np.array_equal(oovs, ref_oov)
    assert zeros.sum() == 0
    st = PplStats()
    st.add(scored.line_scores())
    f = st.figures()
    assert f["tokens"] == KENLM_TOKENS and f["oovs"] == KENLM_OOVS and f["sentences"] == 4000
    assert f["ppl"] == pytest.approx(KENLM_O3_PPL, rel=1e-7)
    assert f["ppl_excl_oov"] == pytest.approx(KENLM_O3_PPL_EXCL, rel=1e-7)
    assert 2 ** f["bits_per_token"] == pytest.approx(f["ppl"], rel=1e-12)
    assert f["ppl1"] == pytest.approx(10 ** (-f["logprob_excl_oov"] / (f["words"] - f["oovs"])), rel=1e-12)


@pytest.mark.parametrize("order", [3, 5])
def test_own_model_reproduces_kenlm_totals(order, own_kn3, own_kn5, test_text):
    model = own_kn3 if order == 3 else own_kn5
    s = QueryModel(model, "own").score_text(test_text.encode(), fast=True)
    ref, ref_oov = _kenlm_totals(order)
    ls = s.line_scores()
    lp, oovs = ls.lp, ls.oovs
    assert np.abs(lp - ref).max() < 1e-5
    assert np.array_equal(oovs, ref_oov)
    st = PplStats()
    st.add(ls)
    want = {3: (KENLM_O3_PPL, KENLM_O3_PPL_EXCL), 5: (502.95931803725637, 249.2072178094786)}[order]
    assert st.figures()["ppl"] == pytest.approx(want[0], rel=1e-6)
    assert st.figures()["ppl_excl_oov"] == pytest.approx(want[1], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Kernel == numpy path == plain Python


def test_fast_and_numpy_paths_are_identical(q3, test_text, scored):
    slow = q3.score_text(test_text.encode(), fast=False)
    for name in ("ids", "oov", "logp", "order", "zero"):
        assert np.array_equal(getattr(slow, name), getattr(scored, name)), name
    assert slow.n_lines == scored.n_lines == 4000


def test_kernel_matches_plain_python(o3, scored, test_text):
    table, order = NQ.tables_from_model(o3)
    lines = test_text.split("\n")[:-1]
    st = scored.starts()
    rng = random.Random(3)
    for i in rng.sample(range(len(lines)), 400):
        ref = NQ.score_line(table, order, lines[i])
        lo = st[i] + 1
        got = scored.logp[lo:lo + len(ref)]
        assert [r[2] for r in ref] == scored.order[lo:lo + len(ref)].tolist()
        assert [r[3] for r in ref] == scored.oov[lo:lo + len(ref)].tolist()
        assert np.abs(np.array([r[1] for r in ref]) - got).max() < 1e-9


def test_parallel_equals_serial(q3, test_text, scored, monkeypatch):
    monkeypatch.setattr(Q, "PARALLEL_MIN_TOKENS", 10)
    par = q3.score_text(test_text.encode(), threads=2, fast=True)
    assert np.array_equal(par.logp, scored.logp)
    assert np.array_equal(par.order, scored.order)


def _model(vocab, grams: dict, order: int) -> NGramModel:
    """An NGramModel from {word tuple: (lp, bo)} (rows sorted as the contract says)."""
    idx = {w: i for i, w in enumerate(vocab)}
    ngrams, lps, bos = [], [], []
    for n in range(1, order + 1):
        rows = sorted(tuple(idx[w] for w in g) for g in grams if len(g) == n)
        ngrams.append(np.array(rows, np.int32).reshape(len(rows), n))
        lps.append(np.array([grams[tuple(vocab[i] for i in r)][0] for r in rows], np.float32))
        bos.append(np.array([grams[tuple(vocab[i] for i in r)][1] for r in rows], np.float32))
    return NGramModel(vocab=list(vocab), ngrams=ngrams, logprob=lps, backoff=bos, method="test")


def test_missing_suffixes_get_placeholders():
    # "a b c" and "x a b c" without their suffix n-grams "b c" (order 2) and "a b c"'s suffixes:
    # the longest match must still be found, as the plain scorer finds it.
    vocab = ["<unk>", "<s>", "</s>", "a", "b", "c", "x"]
    grams = {("<unk>",): (-2.0, 0.0), ("<s>",): (-99.0, -0.3), ("</s>",): (-1.0, 0.0), ("a",): (-1.1, -0.2),
             ("b",): (-1.2, -0.25), ("c",): (-1.3, -0.1), ("x",): (-1.4, -0.15),
             ("<s>", "x"): (-0.5, -0.05), ("x", "a"): (-0.4, -0.07), ("a", "b"): (-0.3, -0.11),
             ("x", "a", "b"): (-0.2, -0.13), ("a", "b", "c"): (-0.15, -0.02),
             ("x", "a", "b", "c"): (-0.05, 0.0)}
    m = _model(vocab, grams, 4)
    qm = QueryModel(m, "holes")
    text = b"x a b c\na b c\nb c x a b c </s>\nc c c\n\nzz a b c\n"
    fast = qm.score_text(text, fast=True)
    slow = qm.score_text(text, fast=False)
    assert np.array_equal(fast.logp, slow.logp) and np.array_equal(fast.order, slow.order)
    table, order = NQ.tables_from_model(m)
    ref = []
    for line in text.decode().split("\n")[:-1]:
        ref += [None] + NQ.score_line(table, order, line)
    assert len(ref) == fast.ids.size
    for i, r in enumerate(ref):
        if r is not None:
            assert fast.logp[i] == pytest.approx(r[1], abs=1e-12)
            assert fast.order[i] == r[2]
    assert 4 in fast.order.tolist()  # "x a b c" matched through the missing "b c"


def test_repeated_ngrams_are_refused():
    vocab = ["<unk>", "<s>", "</s>", "a"]
    m = NGramModel(vocab=vocab, ngrams=[np.arange(4, dtype=np.int32).reshape(4, 1),
                                        np.array([[1, 3], [1, 3]], np.int32)],
                   logprob=[np.full(4, -1, np.float32), np.full(2, -0.5, np.float32)],
                   backoff=[np.zeros(4, np.float32), np.zeros(2, np.float32)])
    with pytest.raises(LmError, match="repeated"):
        QueryModel(m).tables()


def test_words_without_unigram_are_oov():
    vocab = ["<unk>", "<s>", "</s>", "a", "ghost"]
    m = NGramModel(vocab=vocab, ngrams=[np.array([[0], [1], [2], [3]], np.int32)],
                   logprob=[np.array([-2, -99, -1, -0.5], np.float32)], backoff=[np.zeros(4, np.float32)])
    qm = QueryModel(m)
    for fast in (True, False):
        s = qm.score_text(b"a ghost\n", fast=fast)
        assert s.oov.tolist() == [False, False, True, False]
        assert s.logp.tolist() == pytest.approx([0, -0.5, -2, -1])


def test_unigram_model_and_empty_input(q3):
    vocab = ["<unk>", "<s>", "</s>", "a"]
    m = NGramModel(vocab=vocab, ngrams=[np.arange(4, dtype=np.int32).reshape(4, 1)],
                   logprob=[np.array([-2, -99, -1, -0.5], np.float32)], backoff=[np.zeros(4, np.float32)])
    for fast in (True, False):
        s = QueryModel(m).score_text(b"a a b\n\n", fast=fast)
        assert s.logp.tolist() == pytest.approx([0, -0.5, -0.5, -2, -1, 0, -1])
        e = q3.score_text(b"", fast=fast)
        assert e.ids.size == 0 and e.n_lines == 0


def test_zero_probability_tokens_are_counted_and_left_out():
    vocab = ["<unk>", "<s>", "</s>", "a", "b"]
    m = NGramModel(vocab=vocab, ngrams=[np.arange(5, dtype=np.int32).reshape(5, 1)],
                   logprob=[np.array([-1, -99, -0.5, -0.3, -99], np.float32)], backoff=[np.zeros(5, np.float32)])
    s = QueryModel(m).score_text(b"a b c\n")
    assert s.zero.tolist() == [False, False, True, False, False]
    st = PplStats()
    st.add(s.line_scores())
    f = st.figures()
    assert f["zeroprobs"] == 1 and f["oovs"] == 1 and f["words"] == 3 and f["tokens"] == 4
    lp_all = float(np.float32(-0.3)) + float(np.float32(-1)) + float(np.float32(-0.5))
    assert f["logprob"] == pytest.approx(lp_all)
    assert f["ppl"] == pytest.approx(10 ** (-lp_all / 3))
    assert f["ppl_excl_oov"] == pytest.approx(10 ** (-(lp_all + 1) / 2))
    assert f["ppl1"] == pytest.approx(10 ** (-(lp_all + 1) / 1))


# ---------------------------------------------------------------------------------------------
# Mixtures


def test_mixture_is_log10_of_weighted_sum(o3, own_kn3, test_text):
    a, b = QueryModel(o3, "kenlm"), QueryModel(own_kn3, "own2")
    mix = Mixture([a, b], [0.3, 0.7])
    head = ("\n".join(test_text.split("\n")[:300]) + "\n").encode()
    got = mix.score_text(head)
    ta, oa = NQ.tables_from_model(o3)
    tb, ob = NQ.tables_from_model(own_kn3)
    k = 0
    for line in head.decode().split("\n")[:-1]:
        ra, rb = NQ.score_line(ta, oa, line), NQ.score_line(tb, ob, line)
        k += 1  # <s>
        for x, y in zip(ra, rb):
            assert got.logp[k] == pytest.approx(NQ.log10_mix([x[1], y[1]], [0.3, 0.7]), abs=1e-9)
            assert bool(got.oov[k]) == (x[3] and y[3])
            k += 1
    assert k == got.ids.size


def test_lambdas():
    assert check_lambdas([], 2) == [0.5, 0.5]
    assert check_lambdas([0.6], 2) == pytest.approx([0.6, 0.4])
    assert check_lambdas([0.2, 0.8], 2) == [0.2, 0.8]
    for bad, k in (([0.5, 0.6], 2), ([1.2], 2), ([0.1, 0.1, 0.1, 0.1], 3), ([-0.1], 2), ([0.5], 1)):
        with pytest.raises(LmError):
            check_lambdas(bad, k)


# ---------------------------------------------------------------------------------------------
# The kenlm-like API


def test_api_matches_plain_python(o3, tmp_path):
    from lmtools.api import Model

    model = Model(o3)
    assert model.order == 3
    table, order = NQ.tables_from_model(o3)
    for sent in ["First Citizen :", "the king is dead , long live the king", "", "zzyzx qqq the"]:
        for bos in (True, False):
            for eos in (True, False):
                ref = NQ.score_words(table, order, sent.split(), bos=bos, eos=eos)
                full = list(model.full_scores(sent, bos=bos, eos=eos))
                assert [(o, v) for _, o, v in full] == [(r[2], r[3]) for r in ref]
                assert [p for p, _, _ in full] == pytest.approx([r[1] for r in ref], abs=1e-9)
                assert model.score(sent, bos=bos, eos=eos) == pytest.approx(sum(r[1] for r in ref), abs=1e-9)
        assert model.perplexity(sent) == pytest.approx(
            10 ** (-model.score(sent) / (len(sent.split()) + 1)))
    totals = model.score_lines(["the king", "", "a b c"])
    assert totals.tolist() == pytest.approx([model.score("the king"), model.score(""), model.score("a b c")])
    assert "king" in model and "zzyzx" not in model


# ---------------------------------------------------------------------------------------------
# The one-pass kernel (tokenize + score, per-line results) against the per-token paths


def _line_fields(ls):
    return [ls.lp, ls.lp_nz, ls.lp_iv, ls.tokens, ls.oovs, ls.zeros]


@pytest.mark.parametrize("threads", [1, 2])
def test_one_pass_kernel_equals_per_token_paths(q3, test_text, monkeypatch, threads):
    monkeypatch.setattr(Q, "PARALLEL_MIN_BYTES", 100)
    rng = random.Random(7)
    lines = test_text.split("\n")[:-1][:1500]
    long_line = " ".join(rng.choice(lines[:50]).strip() or "x" for _ in range(5000))  # > one block of tokens
    extra = [long_line, "", "  ", "<s> the king </s> zzyzx", "\t", "last without newline"]
    text = ("\n".join(lines[:700] + extra[:5] + lines[700:]) + "\n" + extra[5]).encode()
    fused = q3.line_scores(text, threads=threads, fast=True)
    per_token = q3.score_text(text, fast=True).line_scores()
    small = q3.score_text(text, fast=False).line_scores()
    assert len(fused) == len(per_token) == len(small) == 1500 + 6
    for a, b, c in zip(_line_fields(fused), _line_fields(per_token), _line_fields(small)):
        assert np.array_equal(a, b) and np.array_equal(b, c)
    assert fused.n_dropped == per_token.n_dropped == small.n_dropped == 2
    # longer than the kernel's block arrays (2 * BLOCK tokens): the line is scored in arrays of its own
    assert fused.tokens[700] > 1 << 14 and len(long_line) // 2 > 2 << 14


def test_one_pass_kernel_remaps_words_without_unigram():
    vocab = ["<unk>", "<s>", "</s>", "a", "ghost"]
    m = NGramModel(vocab=vocab, ngrams=[np.array([[0], [1], [2], [3]], np.int32)],
                   logprob=[np.array([-2, -99, -1, -0.5], np.float32)], backoff=[np.zeros(4, np.float32)])
    ls = QueryModel(m).line_scores(b"a ghost\nghost\n", fast=True)
    assert ls.oovs.tolist() == [1, 1] and ls.lp.tolist() == pytest.approx([-3.5, -3.0])


def test_ppl_stats_are_the_same_on_every_path(q3, test_text):
    data = test_text.encode()
    a, b = PplStats(), PplStats()
    a.add(q3.line_scores(data, fast=True))
    b.add(q3.score_text(data, fast=False).line_scores())
    assert a.figures() == b.figures()


def test_ppl_totals_do_not_depend_on_how_the_lines_came(q3, test_text):
    """lm-ppl's totals are exact sums: chunks of any size (threads, --threads, files merged) agree."""
    ls = q3.line_scores(test_text.encode(), fast=True)
    whole = PplStats()
    whole.add(ls)
    assert whole.logprob == math.fsum(ls.lp_nz.tolist()) and whole.logprob_iv == math.fsum(ls.lp_iv.tolist())
    rng = np.random.default_rng(3)
    for k in (1, 7, 40):
        cuts = [0, *sorted(rng.choice(np.arange(1, len(ls)), size=k, replace=False).tolist()), len(ls)]
        chunked, merged = PplStats(), PplStats()
        for a, b in zip(cuts, cuts[1:]):
            part = LineScores(*(x[a:b] for x in (ls.lp, ls.lp_nz, ls.lp_iv, ls.tokens, ls.oovs, ls.zeros)))
            chunked.add(part)
            one = PplStats()
            one.add(part)
            merged.merge(one)
        assert chunked.figures() == whole.figures() == merged.figures()
    # where a running float sum would lose the 1.0
    parts: list[float] = []
    for v in ([1e16], [1.0], [-1e16], [0.5, 2.0**-60]):
        parts = exact_add(parts, v)
    assert parts[0] == 1.5 and math.fsum(parts) == 1.5 and exact_add(parts, [-1.5]) == [2.0**-60]


def _tiny_ffnn(vocab, seed=0):
    from lmtools.nn.model import FFNNModel

    rng = np.random.default_rng(seed)
    V, d, H, ctx = len(vocab), 4, 5, 2
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    return FFNNModel(vocab=list(vocab), context=ctx, E=f(V, d), W=f(H, ctx * d), b=f(H), U=f(V, H), c=f(V))


def test_ffnn_scores_and_mixes_with_an_ngram_model(o3):
    from lmtools.nn.score import FFNNScorer

    vocab = ["<unk>", "<s>", "</s>", "the", "king", "is", "dead"]
    ff = _tiny_ffnn(vocab)
    fs = FFNNScorer(ff, "ffnn")
    text = b"the king is dead\n\nthe queen is dead\n"
    s = fs.score_text(text)
    assert s.oov.tolist() == [False] * 6 + [False, False] + [False, False, True, False, False, False]
    assert np.array_equal(s.logp, ff.score_ids(s.ids))
    # mixture with KenLM's ARPA: log10(0.4 p_ngram + 0.6 p_ffnn), OOV only where both say so
    mix = Mixture([QueryModel(o3, "o3"), fs], [0.4, 0.6])
    m = mix.score_text(text)
    table, order = NQ.tables_from_model(o3)
    k = 0
    for line in text.decode().split("\n")[:-1]:
        ref = NQ.score_line(table, order, line)
        k += 1
        for r in ref:
            assert m.logp[k] == pytest.approx(NQ.log10_mix([r[1], s.logp[k]], [0.4, 0.6]), abs=1e-9)
            assert bool(m.oov[k]) == (r[3] and bool(s.oov[k]))
            k += 1
    assert k == m.ids.size


def test_model_without_prefix_closure():
    """An n-gram whose prefix is absent (possible in pruned ARPA files): the walk may not stop early."""
    vocab = ["<unk>", "<s>", "</s>", "a", "b", "c"]
    grams = {("<unk>",): (-2.0, 0.0), ("<s>",): (-99.0, -0.3), ("</s>",): (-1.0, 0.0), ("a",): (-1.1, -0.2),
             ("b",): (-1.2, -0.25), ("c",): (-1.3, -0.1), ("b", "c"): (-0.6, -0.3), ("c", "a"): (-0.7, -0.2),
             ("a", "b", "c"): (-0.15, -0.02), ("b", "c", "a"): (-0.2, 0.0)}  # no bigram "a b"
    m = _model(vocab, grams, 3)
    qm = QueryModel(m, "no-prefix")
    assert qm.tables()[-1] is False
    text = b"a b c a\nc a b c\n"
    fast, slow = qm.score_text(text, fast=True), qm.score_text(text, fast=False)
    assert np.array_equal(fast.logp, slow.logp) and np.array_equal(fast.order, slow.order)
    table, order = NQ.tables_from_model(m)
    ref = []
    for line in text.decode().split("\n")[:-1]:
        ref += [None] + NQ.score_line(table, order, line)
    assert [r[2] for r in ref if r] == [o for o, r in zip(fast.order.tolist(), ref) if r]
    assert 3 in fast.order.tolist()
    assert QueryModel(m).line_scores(text, fast=True).lp.tolist() == pytest.approx(
        [sum(r[1] for r in NQ.score_line(table, order, x)) for x in text.decode().split("\n")[:-1]], abs=1e-12)
