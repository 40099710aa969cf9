"""lmtools.api word by word: kenlm's State / BaseScore interface and nltk.lm's score / logscore.

The word-at-a-time numbers are checked against lm-score (the JSON of --words: every word's log10 p
and matched n-gram length, every sentence's total, to the bit), against the plain-Python reference
scorer (tests/naive_query.py), and by normalization (p(w | h) sums to 1 over the vocabulary).
Models: an lmtools 4-gram of a Tiny Shakespeare slice opened from its file (stored query tables,
mapped), KenLM's own trigram (ARPA, tables built at load), a 5-gram that lacks some suffixes and
prefixes of its n-grams (placeholders; not prefix-closed), a small neural model and a mixture.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

import lmtools.api as lm
from lmtools.errors import LmError
from tests import naive_query as NQ
from tests.conftest import shakespeare_lines
from tests.inprocess import invoke, keep_signal_handlers, ok  # noqa: F401

TRAIN_LINES = 4000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("api-incremental")
    lines = shakespeare_lines()
    (d / "train.txt").write_text("\n".join(lines[:TRAIN_LINES]) + "\n", encoding="utf-8")
    ok(invoke("lm-train", "-q", "-n", "4", d / "train.txt", "-o", d / "kn4.lm"))
    ok(invoke("lm-train", "-q", "-n", "2", "--method", "wb", d / "train.txt", "-o", d / "wb2.lm"))
    return d


@pytest.fixture(scope="module")
def kn4(files):
    return lm.Model(str(files / "kn4.lm"))


@pytest.fixture(scope="module")
def sentences():
    """Random held-out sentences (with OOVs), a few made-up ones, an empty one."""
    rng = random.Random(13)
    lines = shakespeare_lines()
    picked = rng.sample(lines[TRAIN_LINES:], 60)
    return picked + ["", "zzyzx qqq the", "the the the the the the the", "First Citizen : First Citizen :"]


def walk(model, sentence: str, bos: bool = True, eos: bool = True):
    """[(log10 p, length, oov)] of BaseFullScore along the sentence, and their sum in order from 0.0."""
    state, out = lm.State(), lm.State()
    (model.BeginSentenceWrite if bos else model.NullContextWrite)(state)
    rows, total = [], 0.0
    for w in sentence.split() + (["</s>"] if eos else []):
        r = model.BaseFullScore(state, w, out)
        rows.append((r.log_prob, r.ngram_length, r.oov))
        total += r.log_prob
        state, out = out, state
    return rows, total


def test_base_score_is_lm_score_to_the_bit(files, kn4, sentences):
    # lm-score --words --json: every word's log10 p and matched order, and the sentence's total
    text = ("\n".join(sentences) + "\n").encode()
    out = ok(invoke("lm-score", "-m", files / "kn4.lm", "--words", "--json", input=text)).stdout
    got = [json.loads(line) for line in out.splitlines()]
    assert len(got) == len(sentences)
    for sent, ref in zip(sentences, got):
        rows, total = walk(kn4, sent)
        assert [(w["logprob"], w["order"], w["oov"]) for w in ref["words"]] == rows
        assert total == ref["logprob"]
        # the kernel behind Model.score / full_scores matched the same n-grams
        assert list(kn4.full_scores(sent)) == rows
        assert kn4.score(sent) == total


def test_base_score_against_the_plain_python_reference(files, sentences):
    from lmtools.io.models import load_model

    table, order = NQ.tables_from_model(load_model(str(files / "kn4.lm")))
    model = lm.Model(str(files / "kn4.lm"))
    for sent in sentences[:20]:
        for bos in (True, False):
            ref = NQ.score_words(table, order, sent.split(), bos=bos)
            rows, _ = walk(model, sent, bos=bos)
            assert [(o, v) for _, o, v in rows] == [(r[2], r[3]) for r in ref]
            assert [p for p, _, _ in rows] == pytest.approx([r[1] for r in ref], abs=1e-9)
            # a null context is the kernel's bos=False
            assert rows == list(model.full_scores(sent, bos=bos))


def test_kenlm_trigram_against_kenlm_query(kenlm_arpa3):
    """KenLM's own trigram (its ARPA; tables built at load): per word (log10 p, matched length, OOV)
    of the first 50 test sentences and every sentence's total, against KenLM query's output."""
    from tests.conftest import DATA

    model = lm.Model(kenlm_arpa3)
    lines = shakespeare_lines()[-4000:]
    words_ref = (DATA / "kenlm" / "tinyshakespeare-test-head50.o3.words.txt").read_text(encoding="utf-8")
    for line, ref in zip(lines, words_ref.splitlines()[:50]):  # then its perplexity summary
        rows, _ = walk(model, line)
        want = []
        for f in ref.split("\t")[:-1]:  # word=id order log10p ..., then the Total
            word_id, order, lp = f.rsplit(" ", 2)
            want.append((float(lp), int(order), word_id.rsplit("=", 1)[1] == "0"))
        assert [(o, v) for _, o, v in rows] == [(o, v) for _, o, v in want], line
        assert [p for p, _, _ in rows] == pytest.approx([p for p, _, _ in want], abs=1e-5)
    totals = (DATA / "kenlm" / "tinyshakespeare-test.o3.sentences.txt").read_text(encoding="utf-8").splitlines()
    assert len(totals) == len(lines) == 4000
    for line, ref in zip(lines, totals):
        assert walk(model, line)[1] == pytest.approx(float(ref.split()[1]), abs=2e-5)
    assert model.score(lines[0]) == walk(model, lines[0])[1]
    assert model._engine().closed


@pytest.fixture(scope="module")
def holes(files):
    """The 4-gram less a third of its bigrams and trigrams: n-grams whose suffixes (placeholders in
    the tables) or prefixes are missing, as in some pruned ARPA files; not prefix-closed."""
    from lmtools.io.models import load_model
    from lmtools.ngram.model import NGramModel

    src = load_model(str(files / "kn4.lm"))
    rng = np.random.default_rng(3)
    ngrams, lps, bos = [], [], []
    for n in range(1, 5):
        rows, lp, bo = np.asarray(src.ngrams[n - 1]), np.asarray(src.logprob[n - 1]), np.asarray(src.backoff[n - 1])
        keep = rng.random(rows.shape[0]) > (0.33 if n in (2, 3) else 0.0)
        ngrams.append(rows[keep].copy())
        lps.append(lp[keep].copy())
        bos.append(bo[keep].copy())
    return NGramModel(vocab=list(src.vocab), ngrams=ngrams, logprob=lps, backoff=bos, method="arpa")


def test_a_model_with_missing_suffixes_and_prefixes(holes, sentences):
    model = lm.Model(holes)
    assert not model._engine().closed
    table, order = NQ.tables_from_model(holes)
    for sent in sentences[:30]:
        rows, total = walk(model, sent)
        assert rows == list(model.full_scores(sent))
        assert total == model.score(sent)
        ref = NQ.score_words(table, order, sent.split())
        assert [(o, v) for _, o, v in rows] == [(r[2], r[3]) for r in ref]
        assert [p for p, _, _ in rows] == pytest.approx([r[1] for r in ref], abs=1e-9)
    # not prefix-closed: the state keeps the last N-1 words (a longer n-gram may follow any of them)
    state = model.begin_sentence_state()
    for w in "the king is dead , long live the king".split():
        out = lm.State()
        model.BaseScore(state, w, out)
        state = out
    assert len(state) == order - 1


def test_states_recombine(kn4):
    """Equal states score every continuation alike; a state is no longer than the model needs."""
    a, b, out = lm.State(), lm.State(), lm.State()
    kn4.BeginSentenceWrite(a)
    for w in "I pray you , the king".split():
        kn4.BaseScore(a, w, out)
        a, out = out, a
    kn4.NullContextWrite(b)
    for w in "and so , the king".split():
        kn4.BaseScore(b, w, out)
        b, out = out, b
    assert len(a) <= 3 and a == b and hash(a) == hash(b)
    for w in ["is", "of", "zzyzx", "</s>"]:
        assert kn4.base_score(a, w) == kn4.base_score(b, w)
    # the state is the longest n-gram found ending at the last word (prefix-closed model)
    s = kn4.begin_sentence_state()
    r = kn4.BaseFullScore(s, "the", out)
    assert len(out) >= 1 and out.words[0] == kn4.vocab.index("the")
    assert s != out and s == kn4.begin_sentence_state() and s.copy() == s
    assert kn4.null_context_state() == lm.State() and len(lm.State()) == 0
    assert r.ngram_length == 2  # <s> the


def test_special_words(kn4):
    s, out = kn4.begin_sentence_state(), lm.State()
    # a literal <s> is dropped as lm-score drops it: nothing scored, the state kept
    assert kn4.BaseFullScore(s, "<s>", out) == (0.0, 0, False) and out == s
    r = kn4.BaseFullScore(s, "qqqzzz", out)
    assert r.oov and r.log_prob == kn4.BaseScore(s, "<unk>", lm.State())
    assert not kn4.BaseFullScore(s, "<unk>", lm.State()).oov
    # out_state may be in_state itself
    t = kn4.begin_sentence_state()
    after = lm.State()
    want = kn4.BaseScore(kn4.begin_sentence_state(), "the", after)
    assert kn4.BaseScore(t, "the", t) == want and t == after and t.words[0] == kn4.vocab.index("the")


def _contexts(vocab_words, rng):
    lines = shakespeare_lines()
    out = [None, ["<s>"]]
    for _ in range(2):
        line = rng.choice(lines[TRAIN_LINES:TRAIN_LINES + 2000]).split()
        k = rng.randrange(len(line) + 1)
        out.append(["<s>"] + line[:k])
        out.append(line[:k])  # mid-sentence
    out.append([rng.choice(vocab_words) for _ in range(3)])  # random words
    out.append(["qqqzzz", "the"])  # an OOV in the context
    return out


def test_nltk_score_sums_to_one(kn4):
    rng = random.Random(5)
    vocab = kn4.vocab
    nl = kn4.nltk
    for ctx in _contexts(vocab[3:], rng):
        ps = [nl.score(w, ctx) for w in vocab]
        assert ps[1] == 0.0  # <s> is never predicted
        assert math.fsum(ps) == pytest.approx(1.0, abs=1e-5), ctx


def test_nltk_score_is_base_score(kn4, files):
    from lmtools.io.models import load_model

    table, order = NQ.tables_from_model(load_model(str(files / "kn4.lm")))
    nl = kn4.nltk
    rng = random.Random(7)
    for ctx in _contexts(kn4.vocab[3:], rng):
        for w in ["the", "king", "</s>", "qqqzzz", rng.choice(kn4.vocab[3:])]:
            p = nl.score(w, ctx)
            assert nl.logscore(w, ctx) == pytest.approx(math.log2(p), abs=1e-12)
            words = [] if ctx is None else list(ctx)
            bos = "<s>" in words
            if bos:
                words = words[len(words) - words[::-1].index("<s>"):]
            if w == "</s>":  # the reference scores </s> as the end of the sentence (eos)
                ref = NQ.score_words(table, order, words, bos=bos, eos=True)[-1][1]
            else:
                ref = NQ.score_words(table, order, words + [w], bos=bos, eos=False)[-1][1]
            assert math.log10(p) == pytest.approx(ref, abs=1e-9)
    # no context: the unigram probability; <s> has p = 0 and logscore -inf
    uni = load_model(str(files / "kn4.lm"))
    i = uni.vocab.index("lord")
    k = int(np.flatnonzero(uni.ngrams[0][:, 0] == i)[0])
    assert nl.score("lord") == pytest.approx(10.0 ** float(uni.logprob[0][k]), rel=1e-12)
    assert nl.score("<s>", ["the"]) == 0.0 and nl.logscore("<s>") == -math.inf
    # the sentence's words, one at a time with their contexts, make the sentence's score
    sent = "Now , my lord , what say you ?".split()
    total = sum(math.log10(nl.score(w, ["<s>"] + sent[:i])) for i, w in enumerate(sent + ["</s>"]))
    assert total == pytest.approx(kn4.score(" ".join(sent)), abs=1e-9)


def test_perplexity_of_sentences(kn4, files, sentences):
    some = sentences[:25]
    (files / "some.txt").write_text("\n".join(some) + "\n", encoding="utf-8")
    want = kn4.perplexity_of_file(str(files / "some.txt"))["ppl"]  # lm-ppl's figure (no zero-p tokens here)
    assert kn4.perplexity(some) == pytest.approx(want, rel=1e-12)
    assert kn4.nltk.perplexity(some) == pytest.approx(want, rel=1e-12)
    assert kn4.nltk.entropy(some) == pytest.approx(math.log2(want), rel=1e-12)
    assert kn4.perplexity([some[0]]) == pytest.approx(kn4.perplexity(some[0]), rel=1e-12)


def test_lower_cased_model(tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(shakespeare_lines()[:2000]) + "\n", encoding="utf-8")
    ok(invoke("lm-count", "-n", "3", "--lower", tmp_path / "t.txt", "-o", tmp_path / "c.lm"))
    ok(invoke("lm-train", "-q", tmp_path / "c.lm", "-o", tmp_path / "m.lm"))
    m = lm.Model(str(tmp_path / "m.lm"))
    sent = "First Citizen : Before WE proceed"
    assert walk(m, sent)[0] == list(m.full_scores(sent)) == walk(m, sent.lower())[0]
    assert m.nltk.score("CITIZEN", ["<s>", "FIRST"]) == m.nltk.score("citizen", ["<s>", "first"])


@pytest.fixture(scope="module")
def ffnn():
    from lmtools.nn.train import TrainConfig, train

    lines = [line.split() for line in shakespeare_lines()[:300]]
    vocab = ["<unk>", "<s>", "</s>"] + sorted({w for s in lines for w in s})
    ix = {w: i for i, w in enumerate(vocab)}
    ids = np.array([t for s in lines for t in [1] + [ix[w] for w in s] + [2]], np.int32)
    cfg = TrainConfig(context=2, dim=8, hidden=8, epochs=1, batch=32, seed=3)
    return train(cfg, vocab, ids)


def test_ffnn(ffnn, sentences):
    model = lm.Model(ffnn)
    for sent in sentences[:10] + ["First Citizen : zzyzx"]:
        rows, total = walk(model, sent)
        assert rows == list(model.full_scores(sent))
        assert total == model.score(sent)
    with pytest.raises(LmError):
        model.NullContextWrite(lm.State())
    ps = [model.nltk.score(w, ["First", "Citizen"]) for w in model.vocab]
    assert ps[1] == 0.0 and math.fsum(ps) == pytest.approx(1.0, abs=1e-5)  # float32 arithmetic
    # a context shorter than the model's is a sentence start
    assert model.nltk.score("Citizen", ["First"]) == model.nltk.score("Citizen", ["<s>", "First"])
    s = model.begin_sentence_state()
    assert model.nltk.logscore("First") == pytest.approx(model.base_score(s, "First") * math.log2(10), abs=1e-12)


def test_mixture(files, sentences):
    model = lm.Model([str(files / "kn4.lm"), str(files / "wb2.lm")], lambdas=[0.3, 0.7])
    for sent in sentences[:15]:
        rows, total = walk(model, sent)
        full = list(model.full_scores(sent))
        assert [(o, v) for _, o, v in rows] == [(o, v) for _, o, v in full]
        assert [p for p, _, _ in rows] == pytest.approx([p for p, _, _ in full], abs=1e-9)
        assert total == pytest.approx(model.score(sent), abs=1e-9)
    a, b = lm.Model(str(files / "kn4.lm")).nltk, lm.Model(str(files / "wb2.lm")).nltk
    for ctx in (["<s>", "the"], ["I", "pray", "you"], None):
        for w in ("king", "the", "</s>", "qqqzzz"):
            mixed = 0.3 * a.score(w, ctx) + 0.7 * b.score(w, ctx)
            assert model.nltk.score(w, ctx) == pytest.approx(mixed, rel=1e-12)


def test_few_lines_walk_the_stored_tables(files, sentences, monkeypatch):
    """A few lines are scored from Python over a model file's stored tables (no numba, no n-gram
    array read whole), chunk after chunk: the kernel's numbers, a sentence without <s> (NO_CONTEXT)
    included."""
    import lmtools.kernels.query as kq
    from lmtools.io.models import load_model
    from lmtools.ngram.query import QueryModel
    from lmtools.ngram.scores import NO_CONTEXT

    qm = QueryModel(load_model(str(files / "kn4.lm")))
    assert qm.stored is not None
    with monkeypatch.context() as mp:
        def no_kernel(*args):
            raise AssertionError("a few lines loaded the scoring kernels")

        for name in ("score_ids", "score_lines", "line_sums"):
            mp.setattr(kq, name, no_kernel)
        first = qm.line_scores(("\n".join(sentences[:5]) + "\n").encode())
        again = qm.line_scores(("\n".join(sentences[:5]) + "\n").encode())
        assert first.lp.tolist() == again.lp.tolist()
    enc = qm.vocabulary.encode(("\n".join(sentences) + "\n").encode(), False)
    ids = enc.ids.copy()
    ids[0] = NO_CONTEXT
    walked, kernel = qm.score_ids(ids, fast=False), qm.score_ids(ids, fast=True)
    for a, b in zip(walked, kernel):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert walked[1].max() == 4 and walked[1][0] == 0
