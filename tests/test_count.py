"""The counting kernel and both counting paths against the plain-Python reference."""

import random

import numpy as np
import pytest

from lmtools.io.text import TextOptions
from lmtools.ngram import counting
from lmtools.ngram.counting import VocabOptions, count_text
from tests import naive
from tests.conftest import SHAKESPEARE


def _as_words(c, n):
    return {tuple(c.vocab[i] for i in k): v for k, v in c.as_dict(n).items()}


def _check_contract(c):
    V = len(c.vocab)
    assert c.vocab[:3] == ["<unk>", "<s>", "</s>"]
    assert (c.ngrams[0][:, 0] == np.arange(V)).all()
    for n, (g, k) in enumerate(zip(c.ngrams, c.counts), start=1):
        assert g.dtype == np.int32 and g.shape[1] == n and k.shape == (g.shape[0],)
        if len(g) > 1:  # strictly increasing rows: sorted and unique
            order = np.lexsort(g.T[::-1])
            assert (order == np.arange(len(g))).all()
            assert (np.diff(g, axis=0) != 0).any(axis=1).all()
        if n > 1:
            assert (k > 0).all()


def _write(tmp_path, text, name="t.txt"):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8"))
    return str(p)


@pytest.fixture(params=["fast", "small"])
def path_kind(request, monkeypatch):
    # Force one counting path: the numba kernels or the plain-Python small-input path.
    monkeypatch.setattr(counting, "SMALL_INPUT_BYTES", -1 if request.param == "fast" else 1 << 30)
    return request.param


def test_random_text_matches_counter(tmp_path, path_kind):
    rng = random.Random(7)
    words = ["a", "b", "c", "d", "<s>", "</s>", "<unk>", "x\u00a0y", "é", "日本"]
    for trial in range(25):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 9))) for _ in range(rng.randint(0, 30))]
        text = rng.choice(["\n", " \t", "\r\n"]).join(lines) + rng.choice(["", "\n", "\n\n"])
        order = rng.randint(1, 7)
        c = count_text([_write(tmp_path, text)], order)
        _check_contract(c)
        ref = naive.count_ngrams(naive.sentences(text), order)
        for n in range(1, order + 1):
            got = {k: v for k, v in _as_words(c, n).items() if v > 0 or k == ("<unk>",)}
            want = {k: v for k, v in ref[n - 1].items()}
            want.setdefault(("<s>",), 0)
            want.setdefault(("</s>",), 0)
            got.setdefault(("<s>",), 0)
            got.setdefault(("</s>",), 0)
            assert got == want, (text, n)
        assert c.sentences == len(naive.sentences(text))
        assert c.tokens == sum(len(s) + 1 for s in naive.sentences(text))


def test_real_text_order_10(path_kind):
    text = SHAKESPEARE.read_text()[:200_000]
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(text)
        f.flush()
        c = count_text([f.name], 10)
    _check_contract(c)
    ref = naive.count_ngrams(naive.sentences(text), 10)
    for n in (1, 2, 5, 10):
        assert _as_words(c, n) == dict(ref[n - 1])


def test_paths_agree_with_vocab_options(tmp_path, monkeypatch):
    text = SHAKESPEARE.read_text()[:30_000]
    p = _write(tmp_path, text)
    closed = ["the", "and", "I", "zzz-never-seen"]
    for vo in [VocabOptions(min_count=3), VocabOptions(vocab_size=50), VocabOptions(closed=closed),
               VocabOptions(min_count=2, vocab_size=20)]:
        results = []
        for small in (-1, 1 << 30):
            monkeypatch.setattr(counting, "SMALL_INPUT_BYTES", small)
            results.append(count_text([p], 4, vocab_opts=vo))
        a, b = results
        _check_contract(a)
        assert a.vocab == b.vocab
        for x, y in zip(a.ngrams + a.counts, b.ngrams + b.counts):
            assert np.array_equal(x, y)


def test_vocab_restriction_maps_to_unk(tmp_path, path_kind):
    text = "a a a b b c\nc d a\n"
    c = count_text([_write(tmp_path, text)], 3, vocab_opts=VocabOptions(min_count=2))
    # b and c occur 2 and 2 times... d once: d -> <unk>
    assert "d" not in c.vocab and "a" in c.vocab and "b" in c.vocab
    words = _as_words(c, 2)
    assert words[("c", "<unk>")] == 1 and words[("<unk>", "a")] == 1
    sents = [["a", "a", "a", "b", "b", "c"], ["c", "<unk>", "a"]]
    ref = naive.count_ngrams(sents, 3)
    for n in (1, 2, 3):
        assert _as_words(c, n) == dict(ref[n - 1])
    top = count_text([_write(tmp_path, text)], 2, vocab_opts=VocabOptions(vocab_size=1))
    assert top.vocab == ["<unk>", "<s>", "</s>", "a"]
    closed = count_text([_write(tmp_path, text)], 2, vocab_opts=VocabOptions(closed=["c", "zz"]))
    assert closed.vocab == ["<unk>", "<s>", "</s>", "c", "zz"]
    assert _as_words(closed, 1)[("zz",)] == 0
    assert _as_words(closed, 1)[("<unk>",)] == 7


def test_lower_and_chars(tmp_path, path_kind):
    c = count_text([_write(tmp_path, "The THE the\n")], 1, text_opts=TextOptions(lower=True))
    assert _as_words(c, 1)[("the",)] == 3
    c = count_text([_write(tmp_path, "ab  c\n")], 2, text_opts=TextOptions(chars=True))
    assert _as_words(c, 2) == {("<s>", "a"): 1, ("a", "b"): 1, ("b", "<sp>"): 1, ("<sp>", "c"): 1,
                               ("c", "</s>"): 1}


def test_several_files_and_compression(tmp_path):
    import bz2
    import gzip
    import lzma

    a = "x y\nz\n"
    (tmp_path / "a.gz").write_bytes(gzip.compress(a.encode()))
    (tmp_path / "b.bz2").write_bytes(bz2.compress(b"y z"))  # no final newline
    (tmp_path / "c.xz").write_bytes(lzma.compress(b"\n"))
    c = count_text([str(tmp_path / n) for n in ("a.gz", "b.bz2", "c.xz")], 2)
    ref = naive.count_ngrams([["x", "y"], ["z"], ["y", "z"], []], 2)
    assert _as_words(c, 2) == dict(ref[1])
    assert c.sentences == 4


def test_counter_chunks_are_independent():
    """Counting a stream in several chunks gives the same tables as one chunk (sentence-aligned)."""
    from lmtools.io.text import TokenTable

    text = SHAKESPEARE.read_bytes()[:50_000]
    text = text[: text.rfind(b"\n") + 1]
    table = TokenTable()
    ids = table.encode(text, True)[0]
    one = counting.NgramCounter(4)
    one.add(ids)
    many = counting.NgramCounter(4)
    starts = np.flatnonzero(ids == 1)
    for lo, hi in zip(starts[::97], list(starts[97::97]) + [len(ids)]):
        many.add(ids[lo:hi])
    a, b = one.result(table.words()), many.result(table.words())
    for x, y in zip(a.ngrams + a.counts, b.ngrams + b.counts):
        assert np.array_equal(x, y)


def test_file_bytes_identical_between_paths(tmp_path, monkeypatch):
    """lm-count writes first-occurrence order: both paths, and any chunking, give the same bytes."""
    import io

    from lmtools.io.models import save_model

    text = SHAKESPEARE.read_text()[:40_000]
    p = _write(tmp_path, text)
    outs = []
    for small, chunk in ((-1, 1 << 20), (1 << 30, 1 << 20), (-1, 997)):
        monkeypatch.setattr(counting, "SMALL_INPUT_BYTES", small)
        import lmtools.io.text as text_mod

        monkeypatch.setattr(text_mod, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(text_mod.iter_text_chunks, "__defaults__", (None, chunk, False))
        for vo in (None, VocabOptions(min_count=2)):
            lv = counting.count_levels([p], 4, vocab_opts=vo)
            buf = io.BytesIO()
            save_model(lv, buf)
            outs.append(buf.getvalue())
    assert outs[0] == outs[2] == outs[4] and outs[1] == outs[3] == outs[5]


@pytest.mark.parametrize("m,bound", [(1, 1), (2, 5), (1000, 10**6), (100_000, 2**40), (50_000, 2**62)])
def test_sorted_keys_and_order_are_sort_and_argsort(m, bound):
    """Packed into one int64 with its index where both fit in 63 bits (the first four), else argsort."""
    from lmtools.kernels.small import sorted_keys_and_order

    rng = np.random.default_rng(m)
    key = np.unique(rng.integers(0, bound, size=m, dtype=np.int64))
    rng.shuffle(key)
    skey, order = sorted_keys_and_order(key.copy(), bound)
    assert np.array_equal(order, np.argsort(key)) and np.array_equal(skey, np.sort(key))
