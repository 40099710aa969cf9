"""ARPA reading and writing: round trips, KenLM's files, and every kind of bad input."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from lmtools.errors import LmError
from lmtools.io.arpa import read_arpa, write_arpa
from lmtools.ngram.model import NGramModel

HERE = Path(__file__).parent
KENLM_O3 = HERE / "data" / "kenlm" / "tinyshakespeare-train.o3.arpa.xz"

SMALL = """\\data\\
ngram 1=5
ngram 2=4
ngram 3=2

\\1-grams:
-1.5\t<unk>\t0
0\t<s>\t-0.5
-0.7\t</s>\t0
-0.9\tb\t-0.25
-0.8\ta\t-0.3

\\2-grams:
-0.4\tb a\t-0.1
-0.2\t<s> a\t-0.2
-0.3\ta b\t0
-0.6\ta </s>\t0

\\3-grams:
-0.05\t<s> a b
-0.1\ta b a

\\end\\
"""


def read_text(text: str, **kw) -> NGramModel:
    return read_arpa(io.BytesIO(text.encode("utf-8")), **kw)


def test_small_file_ids_and_sorting():
    warnings = []
    m = read_text(SMALL, warn=warnings.append)
    assert warnings == []
    assert m.vocab == ["<unk>", "<s>", "</s>", "b", "a"]  # first appearance after the specials
    assert m.sizes() == [5, 4, 2]
    assert m.ngrams[1].tolist() == [[1, 4], [3, 4], [4, 2], [4, 3]]  # sorted by ids
    np.testing.assert_allclose(m.logprob[1], [-0.2, -0.4, -0.6, -0.3], rtol=1e-6)
    np.testing.assert_allclose(m.backoff[1], [-0.2, -0.1, 0, 0], rtol=1e-6)
    assert m.ngrams[2].tolist() == [[1, 4, 3], [4, 3, 4]]
    assert np.all(m.backoff[2] == 0)
    assert m.method == "arpa"
    for arrs in (m.logprob, m.backoff):
        assert all(a.dtype == np.float32 for a in arrs)
    assert all(g.dtype == np.int32 for g in m.ngrams)


def test_round_trip_is_exact():
    m = read_text(SMALL)
    out = io.StringIO()
    write_arpa(m, out)
    text = out.getvalue()
    assert "\n0\t<s>\t-0.5\n" in text  # integers without '.0'
    assert text.startswith("\\data\\\nngram 1=5\nngram 2=4\nngram 3=2\n")
    assert text.rstrip().endswith("\\end\\")
    m2 = read_text(text)
    assert m2.vocab == m.vocab
    for a, b in zip(m.ngrams + m.logprob + m.backoff, m2.ngrams + m2.logprob + m2.backoff):
        assert np.array_equal(a, b)
    out2 = io.StringIO()
    write_arpa(m2, out2)
    assert out2.getvalue() == text


def test_random_floats_round_trip_through_text():
    rng = np.random.default_rng(1)
    vals = np.concatenate([-rng.exponential(2, 2000), -10 ** rng.uniform(-9, 1.5, 2000), [0, -99, -1, -1e-7]])
    vals = vals.astype(np.float32)
    V = len(vals)
    words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(V - 3)]
    m = NGramModel(vocab=words, ngrams=[np.arange(V, dtype=np.int32).reshape(V, 1)], logprob=[vals],
                   backoff=[np.zeros(V, np.float32)])
    out = io.StringIO()
    write_arpa(m, out)
    m2 = read_text(out.getvalue())
    assert np.array_equal(m2.logprob[0], vals)
    # the shortest form that reads back: the same digits as numpy's repr of a float32
    lines = out.getvalue().split("\\1-grams:\n")[1].split("\n\n")[0].split("\n")
    for line, v in zip(lines, vals):
        want = "0" if v == 0 else str(v)
        want = want[:-2] if want.endswith(".0") else want
        assert line.split("\t")[0] == want


def test_number_forms_and_whitespace():
    text = ("\\data\\\r\nngram  1 = 4\r\nngram 2=1\r\n\r\n\\1-grams:\r\n"
            "-1.5e-05 <unk>\r\n-inf <s> -2.5E+00\r\n  -.5\t\t</s>\r\n-0.25e0 x +0\r\n\r\n"
            "\\2-grams:\r\n-3 <s> x\r\n\r\n\\end\\\r\n")
    m = read_text(text)
    np.testing.assert_allclose(m.logprob[0][[0, 2, 3]], [-1.5e-05, -0.5, -0.25], rtol=1e-6)
    assert np.isneginf(m.logprob[0][1])
    assert m.backoff[0][1] == -2.5
    assert m.backoff[0][0] == 0  # a missing backoff is 0
    assert m.logprob[1][0] == -3


def test_kernel_number_parser_matches_python():
    from lmtools.kernels.arpa import parse_number

    rng = random.Random(5)
    for _ in range(3000):
        x = rng.choice([rng.uniform(-10, 0), -10 ** rng.uniform(-30, 2), rng.uniform(-1e-3, 0)])
        s = rng.choice([repr(x), f"{x:.7g}", f"{x:.3e}", f"{x:.9f}", repr(float(np.float32(x)))])
        ok, v = parse_number(np.frombuffer(s.encode(), np.uint8), 0, len(s))
        assert ok
        assert np.float32(v) == np.float32(float(s)), s
    for bad in ["", "-", "1.2.3", "e5", "1e", "abc", "1x", "--1", "."]:
        ok, _ = parse_number(np.frombuffer(bad.encode(), np.uint8), 0, len(bad))
        assert not ok, bad


def test_byte_order_mark_is_skipped():
    assert read_arpa(io.BytesIO(b"\xef\xbb\xbf" + SMALL.encode())).sizes() == [5, 4, 2]


def test_compressed_inputs(tmp_path):
    for name, data in [("m.arpa.gz", gzip.compress(SMALL.encode())), ("m.arpa.bz2", bz2.compress(SMALL.encode())),
                       ("m.arpa.xz", lzma.compress(SMALL.encode())), ("m.arpa", SMALL.encode())]:
        p = tmp_path / name
        p.write_bytes(data)
        assert read_arpa(str(p)).sizes() == [5, 4, 2]
        assert read_arpa(io.BytesIO(data)).sizes() == [5, 4, 2]


def test_kenlm_reference_file():
    if not KENLM_O3.exists():
        pytest.skip("vendored KenLM ARPA absent")
    m = read_arpa(str(KENLM_O3))
    assert m.sizes() == [24032, 110183, 156550]
    assert m.vocab[:6] == ["<unk>", "<s>", "</s>", "First", "Citizen:", "Before"]
    assert abs(m.logprob[0][0] - -5.088886) < 1e-7
    assert m.logprob[0][1] == 0 and abs(m.backoff[0][1] - -1.0082072) < 1e-7
    # "-0.729431 <s> </s> 0" is the bigram (1, 2)
    row = np.flatnonzero((m.ngrams[1][:, 0] == 1) & (m.ngrams[1][:, 1] == 2))
    assert row.size == 1 and abs(m.logprob[1][row[0]] - -0.729431) < 1e-7
    for g in m.ngrams[1:]:
        assert (np.diff(g[:, 0].astype(np.int64)) >= 0).all()


def _error(text: str) -> str:
    with pytest.raises(LmError) as e:
        read_text(text)
    return str(e.value)


@pytest.mark.parametrize("old,new,line,what", [
    ("-0.4\tb a\t-0.1", "-0.4\tb", 14, "too few words"),
    ("-0.4\tb a\t-0.1", "x\tb a\t-0.1", 14, "not a number"),
    ("-0.4\tb a\t-0.1", "-0.4\tb a\t-0.1 7", 14, "too many fields"),
    ("-0.4\tb a\t-0.1", "-0.4\tb zz\t-0.1", 14, "not in the unigram section"),
    ("-0.4\tb a\t-0.1", "-0.4\tb a\tnan?", 14, "backoff is not a number"),
    ("-0.1\ta b a", "-0.1\ta b", 21, "too few words"),
    ("-0.9\tb\t-0.25", "-0.9", 10, "too few words"),
    ("-0.9\tb\t-0.25", "q\tb\t-0.25", 10, "not a number"),
    ("-0.9\tb\t-0.25", "-0.9\tb\t-0.25\t1", 10, "too many fields"),
    ("ngram 2=4", "ngram two=4", 3, "ngram N=COUNT"),
    ("\\2-grams:", "\\4-grams:", 13, "section"),
    # values no probability can have, in the Python (unigram) and the kernel (n-gram) paths alike
    ("-0.9\tb\t-0.25", "nan\tb\t-0.25", 10, "not a number"),
    ("-0.9\tb\t-0.25", "NaN\tb\t-0.25", 10, "not a number"),
    ("-0.9\tb\t-0.25", "inf\tb\t-0.25", 10, "above 0"),
    ("-0.9\tb\t-0.25", "0.5\tb\t-0.25", 10, "above 0"),
    ("-0.9\tb\t-0.25", "1_0\tb\t-0.25", 10, "not a number"),
    ("-0.9\tb\t-0.25", "-infinity\tb\t-0.25", 10, "not a number"),
    ("-0.9\tb\t-0.25", "-0.9\tb\tnan", 10, "backoff is not a number"),
    ("-0.9\tb\t-0.25", "-0.9\tb\t-inf", 10, "backoff is infinite"),
    ("-0.9\tb\t-0.25", "-0.9\tb\t1e39", 10, "backoff is infinite"),
    ("-0.4\tb a\t-0.1", "nan\tb a\t-0.1", 14, "not a number"),
    ("-0.4\tb a\t-0.1", "+inf\tb a\t-0.1", 14, "above 0"),
    ("-0.4\tb a\t-0.1", "0.01\tb a\t-0.1", 14, "above 0"),
    ("-0.4\tb a\t-0.1", "1e400\tb a\t-0.1", 14, "above 0"),
    ("-0.4\tb a\t-0.1", "-0.4\tb a\tinf", 14, "backoff is infinite"),
    ("-0.4\tb a\t-0.1", "-0.4\tb a\t-1e39", 14, "backoff is infinite"),
    ("ngram 2=4", "ngram 2=" + "9" * 5000, 3, "ngram N=COUNT"),
    ("ngram 2=4", "ngram 2=4\nngram 2=4", 4, "a second 'ngram 2=' line"),
])
def test_malformed_line_names_line_number(old, new, line, what):
    assert old in SMALL
    msg = _error(SMALL.replace(old, new))
    assert f":{line}:" in msg and what in msg, msg


def test_legal_values_tolerated():
    # positive backoffs are legal, log10 p = -inf is log 0, a rounding error above 0 is tolerated
    m = read_text(SMALL.replace("-0.4\tb a\t-0.1", "-inf\tb a\t2.5").replace("-0.9\tb\t-0.25", "5e-05\tb\t0.7"))
    assert np.isneginf(m.logprob[1][1]) and m.backoff[1][1] == np.float32(2.5)
    assert m.backoff[0][3] == np.float32(0.7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning on stderr either
        m = read_text(SMALL.replace("-0.9\tb\t-0.25", "-1e39\tb\t-0.25").replace("-0.4\tb a", "-1e39\tb a"))
    assert np.isneginf(m.logprob[0][3]) and np.isneginf(m.logprob[1][1])


def test_python_and_kernel_share_the_value_limits():
    from lmtools.io import arpa as io_arpa
    from lmtools.kernels import arpa as k_arpa

    assert io_arpa.LOGPROB_TOLERANCE == k_arpa.LOGPROB_TOLERANCE and io_arpa.FLOAT32_MAX == k_arpa.FLOAT32_MAX
    assert float(np.finfo(np.float32).max) == k_arpa.FLOAT32_MAX


def test_structural_errors():
    assert "not an ARPA file" in _error("hello\n")
    assert "truncated" in _error(SMALL.replace("\\end\\\n", ""))
    assert "truncated" in _error(SMALL.split("\\3-grams:")[0])
    assert "duplicate" in _error(SMALL.replace("-0.3\ta b\t0", "-0.3\ta b\t0\n-0.4\ta b\t0"))
    assert "duplicate unigram" in _error(SMALL.replace("-0.8\ta\t-0.3", "-0.8\ta\t-0.3\n-0.8\ta\t-0.3"))
    assert "text after" in _error(SMALL + "junk\n")
    bad_utf8 = SMALL.encode().replace(b"\tb\t", b"\t\xff\t")
    with pytest.raises(LmError, match="UTF-8"):
        read_arpa(io.BytesIO(bad_utf8))
    with pytest.raises(LmError, match="damaged gzip data"):
        read_arpa(io.BytesIO(gzip.compress(SMALL.encode())[:40]))


def test_header_count_mismatch_is_an_error_naming_the_header_line():
    for old, new, line in (("ngram 2=4", "ngram 2=7", 3), ("ngram 1=5", "ngram 1=6", 2), ("ngram 3=2", "ngram 3=1", 4)):
        msg = _error(SMALL.replace(old, new))
        assert msg.startswith(f"<stream>:{line}: the ARPA header announces {new[-1]} {new[6]}-grams"), msg


def test_missing_unk_is_added_with_minus_100():
    warnings = []
    text = SMALL.replace("ngram 1=5", "ngram 1=4").replace("-1.5\t<unk>\t0\n", "")
    m = read_text(text, warn=warnings.append)
    assert m.vocab[0] == "<unk>" and m.logprob[0][0] == -100 and m.backoff[0][0] == 0
    assert m.sizes() == [5, 4, 2]
    assert any("no <unk>" in w for w in warnings)


def test_backoff_on_highest_order_is_ignored_with_warning():
    warnings = []
    m = read_text(SMALL.replace("-0.05\t<s> a b", "-0.05\t<s> a b\t-0.5"), warn=warnings.append)
    assert np.all(m.backoff[2] == 0)
    assert any("highest order" in w for w in warnings)


def test_write_log_zero_as_minus_99():
    m = read_text(SMALL)
    m.logprob[0][0] = -np.inf
    out = io.StringIO()
    write_arpa(m, out)
    assert "\n-99\t<unk>\t0\n" in out.getvalue()


def test_unigram_only_model():
    text = "\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<unk>\n-99\t<s>\n-0.1\t</s>\n\n\\end\\\n"
    m = read_text(text)
    assert m.order == 1 and m.sizes() == [3]
    out = io.StringIO()
    write_arpa(m, out)
    assert "-0.1\t</s>\n" in out.getvalue()  # highest order: no backoff column


def test_from_smoothed_model_round_trip():
    from lmtools.ngram.smoothing import smooth
    from tests.test_smoothing import counts_from_sentences

    counts = counts_from_sentences([["a", "b", "c"], ["b", "a"], ["c", "c", "a", "b"]] * 2, 3)
    for method in ("kn-modified", "mle", "stupid"):
        m = smooth(counts, method, warn=lambda s: None)
        out = io.StringIO()
        write_arpa(m, out)
        back = read_text(out.getvalue())
        idx = {w: i for i, w in enumerate(m.vocab)}
        remap = np.array([idx[w] for w in back.vocab])
        for n in range(1, 4):
            g = remap[back.ngrams[n - 1]]
            perm = np.lexsort(g.T[::-1])
            assert np.array_equal(g[perm], m.ngrams[n - 1])
            assert np.array_equal(back.logprob[n - 1][perm], m.logprob[n - 1])
            assert np.array_equal(back.backoff[n - 1][perm], m.backoff[n - 1])


# ----------------------------------------------------------------------------------------------
# Round trip through KenLM's own loader (the kenlm Python module; skipped when it is absent)


@pytest.mark.parametrize("method", ["kn-modified", "wb", "katz", "add-k"])
def test_kenlm_module_scores_our_arpa_like_we_do(tmp_path, method):
    kenlm = pytest.importorskip("kenlm")
    from lmtools.ngram.smoothing import smooth
    from tests import naive_smoothing as ns
    from tests.test_smoothing import counts_from_sentences, shakespeare_lines

    lines = shakespeare_lines(1500)
    counts = counts_from_sentences([ln.split() for ln in lines[:1300]], 4)
    model = smooth(counts, method, warn=lambda s: None)
    path = tmp_path / "m.arpa"
    with open(path, "w", encoding="utf-8") as f:
        write_arpa(model, f)
    ken = kenlm.Model(str(path))
    assert ken.order == 4
    test = [ln for ln in lines[1300:] if ln.strip()]
    ids, _ = ns.encode(model, test)
    lp = ns.score_ids(model, ids)
    ends = np.flatnonzero(ids == 2)
    starts = np.flatnonzero(ids == 1)
    for line, s, e in zip(test, starts, ends):
        ours = float(np.sum(lp[s + 1:e + 1]))
        assert abs(ken.score(line, bos=True, eos=True) - ours) < 1e-4 * max(1, abs(ours) / 10), line


def test_kenlm_reference_arpa_scores_like_kenlm():
    from tests import naive_smoothing as ns
    from tests.test_smoothing import shakespeare_lines

    ref = HERE / "data" / "kenlm" / "tinyshakespeare-test.o3.sentences.txt"
    if not ref.exists():
        ref = HERE.parent.parent / "shared" / "reference" / "kenlm" / ref.name
    if not (KENLM_O3.exists() and ref.exists()):
        pytest.skip("KenLM reference files absent")
    model = read_arpa(str(KENLM_O3))
    test = shakespeare_lines(last=4000)
    want = [float(line.split("Total: ")[1].split()[0]) for line in ref.read_text().splitlines()
            if "Total: " in line]
    want_oov = [int(line.split("OOV: ")[1]) for line in ref.read_text().splitlines() if "OOV: " in line]
    assert len(want) == len(test)
    ids, oov = ns.encode(model, test)
    lp = ns.score_ids(model, ids)
    ends = np.flatnonzero(ids == 2)
    starts = np.flatnonzero(ids == 1)
    got = np.array([np.sum(lp[s + 1:e + 1]) for s, e in zip(starts, ends)])
    got_oov = np.array([int(oov[s:e].sum()) for s, e in zip(starts, ends)])
    assert np.array_equal(got_oov, want_oov)
    assert np.abs(got - np.array(want)).max() < 1e-4
