"""Counts as text ('w1 .. wn<TAB>count', SRILM's count format): lm-count --text writes them, lm-train
and lm-merge read them (files, stdin, compressed), against the plain-Python reference in
tests/naive_text_counts.py and against the counts model they came from.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
from collections import Counter

import numpy as np
import pytest

from lmtools.io import countstext
from lmtools.io.countstext import read_text_counts, write_text_counts
from tests import naive, naive_text_counts
from tests.conftest import SHAKESPEARE, error_line
from tests.inprocess import invoke, keep_signal_handlers, ok  # noqa: F401 (an autouse fixture)

LINES = SHAKESPEARE.read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("textcounts")
    (d / "train.txt").write_bytes(b"".join(LINES[:3000]))
    return d


def as_tables(counts) -> dict[int, Counter]:
    """A counts model's n-grams as word tuples, per order (zero-count unigrams included)."""
    out = {}
    for n in range(1, counts.order + 1):
        out[n] = Counter({tuple(counts.vocab[w] for w in row): int(c)
                          for row, c in zip(counts.ngrams[n - 1].tolist(), counts.counts[n - 1].tolist())})
    return out


def parse(data: bytes, name: str = "x"):
    return read_text_counts(io.BufferedReader(io.BytesIO(data)), name).to_counts()


def counted(d, order: int, *args) -> bytes:
    return ok(invoke("lm-count", "-q", "-n", order, "--text", *args, d / "train.txt")).stdout_bytes


# ----------------------------------------------------------------------------------------------
# The reader and the writer against the reference


@pytest.mark.parametrize("order", [1, 2, 4])
def test_lm_count_text_is_the_reference_count_written_by_the_reference_writer(d, order):
    text = (d / "train.txt").read_text(encoding="utf-8")
    tables = naive.count_ngrams(naive.sentences(text), order)
    vocab = ["<unk>", "<s>", "</s>"]
    for sent in naive.sentences(text):
        for w in sent:
            if w not in vocab:
                vocab.append(w)
    want = naive_text_counts.write({n + 1: t for n, t in enumerate(tables)}, vocab)
    assert counted(d, order) == want


@pytest.mark.slow
def test_reader_equals_the_reference_reader(d):
    data = counted(d, 4)
    tables, vocab, tokens, sentences = naive_text_counts.read(data)
    c = parse(data)
    assert c.vocab == vocab
    assert as_tables(c) == tables
    assert (c.tokens, c.sentences) == (tokens, sentences)


@pytest.mark.slow
def test_shuffled_split_and_crlf_lines_read_as_the_same_counts(d):
    """Lines in any order, orders interleaved, one n-gram's count split over repeated lines (summed),
    CRLF line ends and extra blanks around the count and between words."""
    data = counted(d, 3)
    rng = random.Random(7)
    lines = data.decode().splitlines()
    messy = []
    for line in lines:
        gram, count = line.split("\t")
        c = int(count)
        if c >= 2 and rng.random() < 0.5:
            a = rng.randint(1, c - 1)
            messy += [f"{gram}\t{a}", f"{gram.replace(' ', '  ')}\t {c - a} "]
        else:
            messy.append(line)
    rng.shuffle(messy)
    shuffled = ("\r\n".join(messy) + "\r\n").encode()
    want = parse(data)
    got = parse(shuffled)
    assert as_tables(got) == as_tables(want)
    assert (got.tokens, got.sentences) == (want.tokens, want.sentences)
    ref = naive_text_counts.read(shuffled)
    assert as_tables(got) == ref[0] and got.vocab == ref[1]


def test_srilm_trie_order_with_a_last_line_without_newline():
    """SRILM writes a word, then its extensions, depth first; the last line may lack its newline."""
    text = "<s> a b </s>\n<s> b a </s>\n<s> a a </s>\n"
    tables = naive.count_ngrams(naive.sentences(text), 3)
    by_first: dict[str, list] = {}
    for t in tables:
        for g in t:
            by_first.setdefault(g[0], []).append(g)
    out = []
    for w in sorted(by_first):
        for g in sorted(by_first[w], key=lambda g: (g, len(g))):
            out.append(" ".join(g) + "\t" + str(tables[len(g) - 1][g]))
    data = "\n".join(out).encode()  # no final newline
    c = parse(data)
    assert as_tables(c) == {n + 1: t for n, t in enumerate(tables)}
    assert (c.sentences, c.tokens) == (3, 9)


@pytest.mark.parametrize("small", [True, False])
def test_writer_equals_the_reference_writer(d, monkeypatch, small):
    """Both ways of writing (plain Python for small counts, the kernel beyond) give the reference's bytes."""
    monkeypatch.setattr(countstext, "SMALL_WRITE", 10**9 if small else 0)
    monkeypatch.setattr(countstext, "WRITE_BLOCK", 1000)  # several blocks per order
    c = parse(counted(d, 3, "--lower"))
    buf = io.BytesIO()
    write_text_counts(c, buf)
    assert buf.getvalue() == naive_text_counts.write(as_tables(c), c.vocab)


# ----------------------------------------------------------------------------------------------
# Round trips through the programs


@pytest.fixture(scope="module")
def rt(d):
    ok(invoke("lm-count", "-q", "-n", "4", "-o", d / "c4.lm", d / "train.txt"))
    (d / "c4.txt").write_bytes(counted(d, 4))
    return d


def test_lm_merge_text_turns_the_counts_model_into_lm_count_text(rt):
    assert ok(invoke("lm-merge", "--text", rt / "c4.lm")).stdout_bytes == (rt / "c4.txt").read_bytes()


@pytest.mark.parametrize("method", ["kn-modified", "wb", "katz", "add-k"])
def test_lm_train_from_text_counts_equals_from_the_counts_model(rt, method, tmp_path):
    a = ok(invoke("lm-train", "-q", "--method", method, "--arpa", rt / "c4.lm")).stdout_bytes
    b = ok(invoke("lm-train", "-q", "--method", method, "--arpa", rt / "c4.txt")).stdout_bytes
    assert a == b
    from lmtools.io.models import load_model

    ok(invoke("lm-train", "-q", "--method", method, "-o", tmp_path / "a.lm", rt / "c4.lm"))
    ok(invoke("lm-train", "-q", "--method", method, "-o", tmp_path / "b.lm", rt / "c4.txt"))
    ma, mb = load_model(str(tmp_path / "a.lm")), load_model(str(tmp_path / "b.lm"))
    assert ma.vocab == mb.vocab
    for n in range(ma.order):  # the same arrays; the provenance differs (text counts carry none)
        assert np.array_equal(ma.ngrams[n], mb.ngrams[n])
        assert ma.logprob[n].tobytes() == mb.logprob[n].tobytes()
        assert ma.backoff[n].tobytes() == mb.backoff[n].tobytes()


def test_shuffled_and_split_text_counts_give_the_same_model(rt):
    """Only the numbering of the words follows the lines (their first appearance): the ARPA holds the
    same lines, probabilities to the last digit."""
    lines = (rt / "c4.txt").read_text().splitlines()
    extra = []
    for i, line in enumerate(lines):
        gram, c = line.split("\t")
        if int(c) >= 2 and i % 3 == 0:
            lines[i] = f"{gram}\t1"
            extra.append(f"{gram}\t{int(c) - 1}")
    lines += extra
    random.Random(3).shuffle(lines)
    messy = ("\n".join(lines) + "\n").encode()
    a = ok(invoke("lm-train", "-q", "--arpa", rt / "c4.txt")).stdout_bytes
    b = ok(invoke("lm-train", "-q", "--arpa", "-", input=messy)).stdout_bytes
    assert a != b  # (another word order: the test would pass vacuously otherwise)
    assert sorted(a.splitlines()) == sorted(b.splitlines())


def test_closed_vocabulary_round_trips_through_zero_count_unigrams(d, tmp_path):
    """Words of --vocab never seen have unigrams of count 0: written and read back as such."""
    (tmp_path / "v.txt").write_text("the and zzunseen qqnever\n")
    ok(invoke("lm-count", "-q", "-n", "3", "--vocab", tmp_path / "v.txt", "-o", tmp_path / "c.lm", d / "train.txt"))
    text = ok(invoke("lm-merge", "--text", tmp_path / "c.lm")).stdout_bytes
    assert b"zzunseen\t0\n" in text and b"qqnever\t0\n" in text
    a = ok(invoke("lm-train", "-q", "--arpa", tmp_path / "c.lm")).stdout_bytes
    b = ok(invoke("lm-train", "-q", "--arpa", "-", input=text)).stdout_bytes
    assert a == b


@pytest.mark.slow
@pytest.mark.parametrize("pack", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_text_counts_files_and_stdin(rt, tmp_path, pack):
    packed = pack((rt / "c4.txt").read_bytes())
    (tmp_path / "c.txt.z").write_bytes(packed)
    want = ok(invoke("lm-train", "-q", "--arpa", rt / "c4.lm")).stdout_bytes
    assert ok(invoke("lm-train", "-q", "--arpa", tmp_path / "c.txt.z")).stdout_bytes == want
    assert ok(invoke("lm-train", "-q", "--arpa", input=packed)).stdout_bytes == want
    assert ok(invoke("lm-merge", "--text", tmp_path / "c.txt.z")).stdout_bytes == (rt / "c4.txt").read_bytes()


def test_awk_made_counts_of_whole_lines():
    """Counts made by another tool: every order of '<s> w .. </s>' per line, by a plain script."""
    text = "a b a\nb b\n\na\n"
    tables = naive.count_ngrams(naive.sentences(text), 2)
    lines = [f"{' '.join(g)}\t{c}" for t in tables for g, c in t.items() if c]
    data = ("\n".join(reversed(lines)) + "\n").encode()
    want = ok(invoke("lm-train", "-q", "--arpa", "-n", "2", "-", input=text.encode())).stdout_bytes
    got = ok(invoke("lm-train", "-q", "--arpa", "-", input=data)).stdout_bytes
    assert sorted(got.splitlines()) == sorted(want.splitlines())


@pytest.mark.slow
def test_lm_merge_sums_text_and_model_counts(rt, tmp_path):
    """A text shard and a model shard sum as two model shards do."""
    a = ok(invoke("lm-merge", "--text", rt / "c4.lm", rt / "c4.lm")).stdout_bytes
    b = ok(invoke("lm-merge", "--text", rt / "c4.txt", rt / "c4.lm")).stdout_bytes
    assert a == b
    tables = naive_text_counts.read(a)[0]
    single = naive_text_counts.read((rt / "c4.txt").read_bytes())[0]
    assert tables == {n: Counter({g: 2 * c for g, c in t.items()}) for n, t in single.items()}


# ----------------------------------------------------------------------------------------------
# Bad input: one line naming FILE:LINE, exit 1


GOOD = "<s>\t2\n</s>\t2\na\t3\nb\t1\n<s> a\t2\na b\t1\na </s>\t1\nb </s>\t1\na a\t1\n"
BAD = {
    "not-integer": GOOD + "a b\t1.5\n",
    "not-integer-word": "a\tthree\n",
    "negative": GOOD + "a b\t-2\n",
    "zero": GOOD + "a b\t0\n",
    "too-large": GOOD + "a\t99999999999999999999\n",
    "empty": GOOD + "\t4\n",
    "no-tab": GOOD + "a b 4\n",
    "blank-line": GOOD + "\n" + GOOD,
    "bos": GOOD + "a <s>\t1\n",
    "eos": GOOD + "</s> a\t1\n",
    "gap": "<s>\t1\na\t1\n</s>\t1\n<s> a </s>\t1\n",
    "prefix": GOOD + "a b\t1\nc a\t1\n",
    "suffix": GOOD + "<s> a b\t1\nb c\t1\n",
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("prog", ["lm-train", "lm-merge"])
def test_bad_line_is_one_error_naming_file_and_line(case, prog, tmp_path):
    data = BAD[case].encode()
    with pytest.raises(naive_text_counts.Bad) as want:
        naive_text_counts.read(data)
    (tmp_path / "bad.txt").write_bytes(data)
    line = error_line(invoke(prog, "-o", tmp_path / "out", tmp_path / "bad.txt"), prog, 1)
    assert f"{tmp_path / 'bad.txt'}:{want.value.line}: " in line, (want.value.why, line)
    assert not (tmp_path / "out").exists()


def test_invalid_utf8_names_its_line(tmp_path):
    data = GOOD.encode() + b"\xff\xfe x\t1\n"
    with pytest.raises(naive_text_counts.Bad) as want:
        naive_text_counts.read(data)
    assert want.value.why == "utf8"
    line = error_line(invoke("lm-train", "-", input=data), "lm-train", 1)
    assert f"<stdin>:{want.value.line}: invalid UTF-8" in line and "--encoding-errors" not in line


def test_a_bad_line_after_many_chunks(tmp_path):
    """The line number counts the lines of earlier chunks (the reader reads 8 MB at a time)."""
    good = "".join(f"w{i}\t{i + 1}\n" for i in range(700_000))
    data = (good + "w1 w2\tx\n").encode()
    assert len(data) > 8 << 20
    (tmp_path / "big.txt").write_bytes(data)
    line = error_line(invoke("lm-merge", tmp_path / "big.txt"), "lm-merge", 1)
    assert "big.txt:700001: count 'x' is not an integer" in line


def test_a_corpus_whose_first_line_has_a_tab_is_refused_with_the_way_out(d, tmp_path):
    """The rule is the first line: a TAB there makes text counts. A corpus with one is an error at its
    first line that is not 'n-gram TAB count' (never counted as something else), and the hint's tr
    gives the same corpus (TAB is whitespace to the text reader)."""
    (tmp_path / "tabs.txt").write_bytes(b"first\tline of text\n" + b"".join(LINES[:50]))
    line = error_line(invoke("lm-train", tmp_path / "tabs.txt"), "lm-train", 1)
    assert "tabs.txt:1: count 'line of text' is not an integer" in line
    line = error_line(invoke("lm-train", "-", input=b"a b\t3\n" + b"".join(LINES[:50])), "lm-train", 1)
    assert "<stdin>:2: " in line and "tr '\\t' ' '" in line
    fixed = b"first line of text\n" + b"".join(LINES[:50])
    (tmp_path / "spaces.txt").write_bytes(fixed)
    a = ok(invoke("lm-train", "-q", "--arpa", "-n", "2", tmp_path / "spaces.txt")).stdout_bytes
    b = ok(invoke("lm-count", "-q", "-n", "2", input=(tmp_path / "tabs.txt").read_bytes()))
    assert ok(invoke("lm-train", "-q", "--arpa", input=b.stdout_bytes)).stdout_bytes == a


def test_lm_merge_refuses_a_corpus(d):
    line = error_line(invoke("lm-merge", d / "train.txt"), "lm-merge", 1)
    assert "neither a counts model nor text counts" in line


def test_the_readme_awk_counts_give_lm_trains_bigram_model(d, tmp_path):
    """README's example: bigram counts made by awk (unordered, <s> and </s> added by hand) give the
    model lm-train makes from the text itself (the same ARPA lines; words numbered otherwise)."""
    import re
    import subprocess

    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    cmd = re.search(r"(awk '\{ w\[0\].*?)\| lm-train -o kn2\.lm", readme, re.S).group(1)
    cmd = cmd.replace("corpus.txt", str(d / "train.txt"))
    counts = subprocess.run(["sh", "-c", cmd], capture_output=True, check=True).stdout
    assert counts.count(b"\n") > 10000
    got = ok(invoke("lm-train", "-q", "--arpa", input=counts)).stdout_bytes
    want = ok(invoke("lm-train", "-q", "-n", "2", "--arpa", d / "train.txt")).stdout_bytes
    assert sorted(got.splitlines()) == sorted(want.splitlines())
