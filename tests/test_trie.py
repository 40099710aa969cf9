"""The compact trie form (lm-train --trie, lmtools-model(5) "The compact trie form"): unquantized it
scores as the full model, bit for bit; quantized, every stored value moves by at most its bin's width
and the perplexity a little; a plain-Python walk of the file's arrays (tests/naive_trie.py) scores as
the kernel; damaged files give one line."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest

from lmtools.errors import LmError
from lmtools.io.modelfile import read_model
from lmtools.io.modelwrite import write_model
from lmtools.io.models import load_model, save_model
from lmtools.kinds import scorer_for
from lmtools.ngram.model import NGramModel
from lmtools.ngram.trie import TrieModel
from tests import naive_query as NQ
from tests import naive_trie as NT
from tests.conftest import error_line, shakespeare_lines
from tests.inprocess import invoke, keep_signal_handlers, ok  # noqa: F401 (an autouse fixture)

LINES = shakespeare_lines()
TRAIN = 2000
TEST = ("\n".join(LINES[-1000:]) + "\nzzqx unseenword the\n").encode()


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("trie")
    (d / "train.txt").write_text("\n".join(LINES[:TRAIN]) + "\n", encoding="utf-8")
    (d / "test.txt").write_bytes(TEST)
    ok(invoke("lm-train", "-q", "-n", "4", "-o", d / "kn4.lm", d / "train.txt"))
    ok(invoke("lm-train", "-q", "--trie", "--quantize", "32,32", "-o", d / "t32.lm", d / "kn4.lm"))
    ok(invoke("lm-train", "-q", "--trie", "-o", d / "t8.lm", d / "kn4.lm"))
    return d


_TABLES: dict = {}


def _tables(path):
    """tests/naive_trie.trie_tables of a file (bit by bit in Python: made once per file)."""
    if path not in _TABLES:
        _TABLES[path] = NT.trie_tables(load_model(str(path)))
    return _TABLES[path]


def _scored(path, data=TEST):
    return scorer_for(load_model(str(path)), str(path)).score_text(data, fast=True)


@pytest.mark.slow  # one of the slowest of make test (first compiles of its kernels): in the slow set CI runs
def test_unquantized_trie_scores_as_the_full_model(d):
    assert isinstance(load_model(str(d / "t32.lm")), TrieModel)
    for prog in ("lm-score", "lm-ppl"):
        full = ok(invoke(prog, "-m", d / "kn4.lm", d / "test.txt"))
        trie = ok(invoke(prog, "-m", d / "t32.lm", d / "test.txt"))
        assert trie.stdout == full.stdout and trie.stdout
    a, b = _scored(d / "kn4.lm"), _scored(d / "t32.lm")
    assert np.array_equal(a.logp, b.logp) and np.array_equal(a.order, b.order)


def test_the_trie_walked_in_python_holds_the_model(d):
    full, order = NQ.tables_from_model(load_model(str(d / "kn4.lm")))
    t32, order32 = _tables(d / "t32.lm")
    assert order == order32 and t32 == full


def test_quantized_values_move_within_their_bins(d):
    model = load_model(str(d / "kn4.lm"))
    t8, _ = _tables(d / "t8.lm")
    exact = NQ.tables_from_model(model)[0]
    assert t8.keys() == exact.keys()
    for n in range(2, model.order + 1):
        words = [tuple(model.vocab[i] for i in row) for row in model.ngrams[n - 1].tolist()]
        lp, bo = model.logprob[n - 1].tolist(), model.backoff[n - 1].tolist()
        width = NT.bin_widths(lp, 256)
        assert max(width) > 0  # quantized: more distinct values than codes
        assert all(abs(t8[g][0] - v) <= w + 1e-6 for g, v, w in zip(words, lp, width))
        if n < model.order:
            nz = [i for i, v in enumerate(bo) if v != 0]
            wnz = NT.bin_widths([bo[i] for i in nz], 255)
            assert all(abs(t8[words[i]][1] - bo[i]) <= w + 1e-6 for i, w in zip(nz, wnz))
            assert all(t8[words[i]][1] == 0.0 for i, v in enumerate(bo) if v == 0)  # exactly 0 kept
    for w in model.vocab[:3]:  # unigrams exact (log10 p of <s> too)
        assert t8[(w,)] == exact[(w,)]


def test_quantized_scores_and_perplexity_change_a_little(d):
    a, b = _scored(d / "kn4.lm"), _scored(d / "t8.lm")
    assert np.array_equal(a.order, b.order)
    diff = np.abs(a.logp - b.logp)
    assert 0 < diff.max() < 0.5
    full = ok(invoke("lm-ppl", "--json", "-m", d / "kn4.lm", d / "test.txt"))
    trie = ok(invoke("lm-ppl", "--json", "-m", d / "t8.lm", d / "test.txt"))
    import json

    p0, p1 = json.loads(full.stdout)["total"]["ppl"], json.loads(trie.stdout)["total"]["ppl"]
    assert p0 != p1 and abs(p1 - p0) / p0 < 0.01


@pytest.mark.parametrize("name", ["t32.lm", "t8.lm"])
def test_the_kernel_agrees_with_the_python_walk_on_random_ngrams(d, name):
    model = load_model(str(d / name))
    table, order = _tables(d / name)
    rng = random.Random(7)
    words = model.vocab[3:]
    seen = [line.split() for line in LINES[:TRAIN] if line.split()]
    lines = []
    for i in range(400):
        if i % 2:  # runs of training text: long matches
            s = rng.choice(seen)
            lines.append(s[rng.randrange(len(s)):] + [rng.choice(words)])
        else:  # random words, unseen words: short matches and back-off
            lines.append([rng.choice(words) if rng.random() < 0.9 else f"unseen{i}" for _ in range(rng.randint(0, 9))])
    data = "".join(" ".join(s) + "\n" for s in lines).encode()
    got = scorer_for(model, name).score_text(data, fast=True)
    want = [lp for s in lines for lp in [0.0] + [r[1] for r in NQ.score_words(table, order, s)]]
    assert got.logp.tolist() == want
    small = scorer_for(model, name).score_text(data, fast=False)  # walked from Python, no kernel
    assert small.logp.tolist() == want and np.array_equal(small.order, got.order)


def test_info_gen_and_usage(d):
    info = ok(invoke("lm-info", d / "t8.lm")).stdout
    assert "trie\ttrue\n" in info and "trie_quantize\t8 8\n" in info and "sizes\t" in info
    r = invoke("lm-gen", "-m", d / "t8.lm", "-s", "1")
    assert "trie" in error_line(r, "lm-gen", 1)
    r = invoke("lm-prune", "--threshold", "1e-8", "-o", d / "never.lm", d / "t8.lm")
    assert "trie" in error_line(r, "lm-prune", 1)
    for args in (["--arpa"], ["--trie"], []):
        r = invoke("lm-train", *args, "-o", d / "never.lm", d / "t8.lm")
        assert "compact trie form" in error_line(r, "lm-train", 1)
    for args, needle in [(["--quantize", "8,8"], "--trie"), (["--trie", "--quantize", "8"], "Q,B"),
                         (["--trie", "--quantize", "1,8"], "bits"), (["--trie", "--quantize", "8,33"], "bits"),
                         (["--trie", "--arpa"], "--arpa")]:
        r = invoke("lm-train", *args, "-o", d / "never.lm", d / "kn4.lm")
        assert needle in error_line(r, "lm-train", 2)
    assert not (d / "never.lm").exists()


def test_a_model_without_prefixes_is_refused():
    v = ["<unk>", "<s>", "</s>", "a", "b"]
    m = NGramModel(v, [np.arange(5, dtype=np.int32).reshape(5, 1), np.array([[1, 3]], np.int32),
                       np.array([[3, 3, 4]], np.int32)],
                   [np.full(5, -1, np.float32), np.full(1, -0.5, np.float32), np.full(1, -0.2, np.float32)],
                   [np.zeros(5, np.float32), np.zeros(1, np.float32), np.zeros(1, np.float32)])
    with pytest.raises(LmError, match="first 2 words"):
        save_model(m, io.BytesIO(), trie=(8, 8))


def _rewrite(src, dst, change):
    with open(src, "rb") as f:
        h, a = read_model(f, "x")
    a = dict(a)
    change(h, a)
    kind = h.pop("kind")
    for k in ("arrays", "format"):
        h.pop(k, None)
    with open(dst, "wb") as f:
        write_model(f, kind, h, a)


def test_damaged_trie_files_give_one_line(d, tmp_path):
    data = (d / "t8.lm").read_bytes()
    (tmp_path / "short.lm").write_bytes(data[: len(data) - 5000])
    r = invoke("lm-ppl", "-m", tmp_path / "short.lm", d / "test.txt")
    error_line(r, "lm-ppl", 1)
    with open(d / "t8.lm", "rb") as f:
        h, a = read_model(f, "x")
    packed_at = data.find(np.ascontiguousarray(a["trie.packed"][:64]).tobytes())
    assert packed_at > 0
    flipped = bytearray(data)
    flipped[packed_at + 1000] ^= 0x10
    (tmp_path / "flip.lm").write_bytes(bytes(flipped))
    for prog in ("lm-ppl", "lm-score"):  # its checksum, when first scored with
        assert "checksum" in error_line(invoke(prog, "-m", tmp_path / "flip.lm", d / "test.txt"), prog, 1)

    def shorter(h, a):
        a["trie.packed"] = a["trie.packed"][:-1].copy()

    def offsets(h, a):
        a["trie.packed"] = a["trie.packed"].copy()
        a["trie.packed"][0] ^= np.uint64(1)  # order 1's first offset: not 0

    def header(h, a):
        h["trie"] = {"layout": 1, "q": 8, "b": 99, "closed": True}

    def missing(h, a):
        del a["trie.centers"]

    for change, needle in [(shorter, "do not fit"), (offsets, "offsets"), (header, "field trie"),
                           (missing, "trie.centers")]:
        _rewrite(d / "t8.lm", tmp_path / "bad.lm", change)
        assert needle in error_line(invoke("lm-score", "-m", tmp_path / "bad.lm", d / "test.txt"), "lm-score", 1)


@pytest.mark.parametrize("name", ["t32.lm", "t8.lm"])
def test_the_api_word_at_a_time_scores_as_the_kernel(d, name):
    from lmtools.api import Model, State

    api = Model(str(d / name))
    lines = [line.split() + ["zzqx", "the"] for line in LINES[-200:]]
    data = "".join(" ".join(s) + "\n" for s in lines).encode()
    want = _scored(d / name, data).logp.tolist()
    got = []
    for s in lines:
        state, out = State(), State()
        api.BeginSentenceWrite(state)
        got.append(0.0)
        for w in s + ["</s>"]:
            got.append(api.BaseScore(state, w, out))
            state, out = out, State()
    assert got == want


def test_a_model_without_some_suffixes_scores_as_the_hash_tables(tmp_path):
    # <s> a b is in the model, a b is not: the walk must not stop at the missing bigram
    v = ["<unk>", "<s>", "</s>", "a", "b"]
    m = NGramModel(v, [np.arange(5, dtype=np.int32).reshape(5, 1), np.array([[1, 3], [3, 2]], np.int32),
                       np.array([[1, 3, 4]], np.int32)],
                   [np.array([-2, 0, -1, -0.7, -0.9], np.float32), np.array([-0.3, -0.4], np.float32),
                    np.array([-0.1], np.float32)],
                   [np.array([0, -0.5, 0, -0.2, -0.25], np.float32), np.array([-0.15, 0], np.float32),
                    np.zeros(1, np.float32)])
    with open(tmp_path / "t.lm", "wb") as f:
        save_model(m, f, trie=(32, 32))
    t = load_model(str(tmp_path / "t.lm"))
    assert t.closed is False
    data = b"a b a b\nb a\na\n" * 3000  # the kernel's path (above the small-input size)
    want = scorer_for(m, "full").score_text(data, fast=True)
    got = scorer_for(t, "trie").score_text(data, fast=True)
    small = scorer_for(t, "trie").score_text(data[:28], fast=False)  # two copies
    assert np.array_equal(got.logp, want.logp) and np.array_equal(got.order, want.order)
    assert np.array_equal(small.logp, want.logp[:small.logp.size]) and got.order.max() == 3


def test_an_entropy_pruned_model_converts_exactly(d, tmp_path):
    # entropy pruning keeps prefixes but drops suffixes: the trie's walk then looks past a miss
    ok(invoke("lm-prune", "-q", "--threshold", "1e-6", "-o", tmp_path / "p.lm", d / "kn4.lm"))
    ok(invoke("lm-train", "-q", "--trie", "--quantize", "32,32", "-o", tmp_path / "pt.lm", tmp_path / "p.lm"))
    assert load_model(str(tmp_path / "pt.lm")).closed is False
    a, b = _scored(tmp_path / "p.lm"), _scored(tmp_path / "pt.lm")
    assert np.array_equal(a.logp, b.logp) and np.array_equal(a.order, b.order)


@pytest.mark.parametrize("order", [1, 2])
def test_low_orders_convert_exactly(d, tmp_path, order):
    ok(invoke("lm-train", "-q", "-n", str(order), "-o", tmp_path / "m.lm", d / "train.txt"))
    ok(invoke("lm-train", "-q", "--trie", "--quantize", "32,32", "-o", tmp_path / "t.lm", tmp_path / "m.lm"))
    a, b = _scored(tmp_path / "m.lm"), _scored(tmp_path / "t.lm")
    assert np.array_equal(a.logp, b.logp) and np.array_equal(a.order, b.order)
    small = scorer_for(load_model(str(tmp_path / "t.lm")), "t").score_text(TEST, fast=False)
    assert np.array_equal(small.logp, a.logp)


def test_a_test_set_is_scored_without_numba(d):
    # below a few MB the trie is searched with numpy (the kernel's numbers, tests above): no numba import
    import subprocess
    import sys

    code = ("import sys; from lmtools.io.models import load_model; from lmtools.kinds import scorer_for; "
            f"s = scorer_for(load_model({str(d / 't8.lm')!r}), 't'); "
            f"ls = s.line_scores(open({str(d / 'test.txt')!r}, 'rb').read()); "
            "print(len(ls), 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(TEST.count(b"\n")), "False"]
