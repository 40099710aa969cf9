"""Text reading: whitespace, markers, UTF-8 errors, binary input, compression, the tokenizer kernel."""

import numpy as np
import pytest

from lmtools.errors import LmError
from lmtools.io.text import TextOptions, encode_text, iter_text_chunks, read_sentences
from tests import naive


def _w(tmp_path, data: bytes, name="t.txt"):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_ascii_whitespace_only(tmp_path):
    line = "a\u00a0b c\u3000d\te\x0bf\x0cg\rh \u0085i\x1cj"
    sents = list(read_sentences([_w(tmp_path, line.encode())]))
    assert sents == [naive.split_ascii(line)]
    assert sents == [["a\u00a0b", "c\u3000d", "e", "f", "g", "h", "\u0085i\x1cj"]]
    enc, table = encode_text([_w(tmp_path, line.encode())])
    words = table.words()
    assert [words[i] for i in enc.ids] == ["<s>"] + sents[0] + ["</s>"]


def test_markers_and_empty_lines(tmp_path):
    enc, table = encode_text([_w(tmp_path, b"\n<s> a </s>\n  \nb")])
    words = table.words()
    assert [words[i] for i in enc.ids] == ["<s>", "</s>", "<s>", "a", "</s>", "<s>", "</s>", "<s>", "b", "</s>"]
    assert enc.n_lines == 4 and enc.n_dropped == 2


def test_fixed_vocabulary_marks_oov(tmp_path):
    enc, table = encode_text([_w(tmp_path, b"a <unk> zz a\n")], ["a", "b"])
    assert enc.ids.tolist() == [1, 3, 0, 0, 3, 2]
    assert enc.oov.tolist() == [False, False, False, True, False, False]  # literal <unk> is not an OOV
    assert enc.n_oov == 1 and len(table) == 5


def test_table_grows_past_initial_capacity(tmp_path):
    words = [f"w{i}" for i in range(200_000)]
    enc, table = encode_text([_w(tmp_path, (" ".join(words) + "\n" + " ".join(reversed(words))).encode())])
    assert table.words()[3:] == words
    ids = enc.ids
    assert ids[1:200_001].tolist() == list(range(3, 200_003))
    assert ids[200_003:-1].tolist() == list(range(200_002, 2, -1))


def test_invalid_utf8_names_file_and_line(tmp_path):
    p = _w(tmp_path, b"ok\nfine\nbad \xff here\n")
    with pytest.raises(LmError) as e:
        list(iter_text_chunks([p]))
    assert f"{p}:3: invalid UTF-8" in str(e.value) and "--encoding-errors=replace" in str(e.value)
    chunks = list(iter_text_chunks([p], TextOptions(encoding_errors="replace")))
    assert chunks[0].replaced_lines == 1
    assert "\ufffd" in chunks[0].data.decode()


def test_binary_garbage_refused(tmp_path):
    p = _w(tmp_path, b"text\n\x00\x01\x02\xfe")
    with pytest.raises(LmError, match=r":2: binary data"):
        list(iter_text_chunks([p]))


def test_missing_file(tmp_path):
    with pytest.raises(LmError, match="no such file"):
        list(iter_text_chunks([str(tmp_path / "nope.txt")]))


def test_long_line_across_chunks(tmp_path):
    line = b"x " * 100_000
    p = _w(tmp_path, line + b"\nshort\n")
    chunks = list(iter_text_chunks([p], chunk_bytes=1000))
    data = b"".join(c.data for c in chunks)
    assert data == line + b"\nshort\n"
    assert [c.first_line for c in chunks][:2] == [1, 2] or chunks[0].data.count(b"\n") == 2


def test_compressed_stdin_detected_by_magic(tmp_path):
    import gzip

    from lmtools.io.text import open_binary

    p = _w(tmp_path, gzip.compress(b"a b\n"), name="noext")
    assert open_binary(p).read() == b"a b\n"


# ----------------------------------------------------------------------------------------------
# The text rule: io.text.line_words (Python) and kernels.tokenize.next_token (numba) agree

# ASCII whitespace splits; \x1c-\x1f, U+0085, U+00A0 and U+3000 are whitespace to Python's str.split()
# but part of a token here; literal <s> and </s> are dropped, <s>x and <unk> are words.
_PIECES = [b"a", b"bb", b"<s>", b"</s>", b"<s>x", b"<unk>", b" ", b" ", b"\t", b"\r", b"\x0b", b"\x0c",
           b"\n", b"\x1c", b"\x1d", b"\x1e", b"\x1f", b"\x00", "\u0085".encode(), "\u00a0".encode(),
           "\u3000".encode(), "\u00e9".encode()]


def _random_texts(n=300, seed=7):
    import random

    r = random.Random(seed)
    return [b"".join(r.choice(_PIECES) for _ in range(r.randrange(0, 40))) for _ in range(n)]


def _rule_sentences(data: bytes):
    from lmtools.io.text import line_words

    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    pairs = [line_words(line) for line in lines]
    return [[w.decode() for w in words] for words, _ in pairs], sum(d for _, d in pairs)


def test_python_and_numba_text_rules_agree():
    from lmtools.io.text import TokenTable, line_words

    for data in _random_texts():
        want, dropped = _rule_sentences(data)
        # the str form of the rule splits the decoded text the same way
        assert [line_words(line)[0] for line in data.decode().split("\n")][:len(want)] == want
        table = TokenTable()
        ids, _, n_lines, n_dropped, _ = table.encode(data, grow=True)
        words = table.words()
        got, cur = [], None
        for i in ids.tolist():
            if i == 1:
                cur = []
            elif i == 2:
                got.append(cur)
            else:
                cur.append(words[i])
        assert (got, n_dropped, n_lines) == (want, dropped, len(want)), data


def test_tokens_hashed_in_their_scan_equal_the_rule_and_fnv1a():
    # next_token_hashed (the scoring and counting kernels' scan) = next_token, then fnv1a of the token
    from numba import njit

    from lmtools.kernels.tokenize import fnv1a, next_token, next_token_hashed

    @njit
    def both(buf):
        out = []
        i = 0
        n = buf.shape[0]
        while i < n:
            a, b = next_token(buf, i, n)
            c, d, h = next_token_hashed(buf, i, n)
            out.append((a, b, c, d, fnv1a(buf, a, b) if b > a else np.uint64(0), h if b > a else np.uint64(0)))
            i = b + 1 if a == b else b
        return out

    for data in _random_texts():
        if data:
            for a, b, c, d, want, h in both(np.frombuffer(data, np.uint8)):
                assert (a, b, want) == (c, d, h), data


def test_one_whitespace_set():
    from lmtools.constants import ASCII_WHITESPACE
    from lmtools.kernels.tokenize import is_space

    want = set(ASCII_WHITESPACE.encode())
    assert want == {9, 10, 11, 12, 13, 32} == {b for b in range(256) if bytes([b]).isspace()}
    assert {b for b in range(256) if is_space(np.uint8(b))} == want


def test_rule_splits_at_ascii_whitespace_only():
    from lmtools.io.text import line_words, split_ascii

    odd = "x\u00a0y\x1cz\x1d\x1e\x1fw\u3000v\u0085u"
    assert split_ascii(f" {odd}\t<s>\x0b\x0c\r</s>\nb ") == [odd, "<s>", "</s>", "b"]
    assert line_words(f" {odd}\t<s>\x0b\x0c\r</s> b ") == ([odd, "b"], 2)
    assert line_words(f"{odd} <s>x".encode()) == ([odd.encode(), b"<s>x"], 0)


def test_scoring_kernel_tokenizes_as_the_python_rule():
    # the scorer's fused tokenize-and-score kernel (kernels.query) against its Python path
    import io

    from lmtools.io.models import load_model, save_model
    from lmtools.io.text import Chunk
    from lmtools.ngram.counting import count_small
    from lmtools.kinds import scorer_for

    train = b"a bb a\n\x1c a \xc2\xa0 bb\n\xe3\x80\x80 a \xc3\xa9\n" * 3
    buf = io.BytesIO()
    save_model(count_small([Chunk(train, 1, "t")], 3, None, None), buf)
    counts = load_model(io.BufferedReader(io.BytesIO(buf.getvalue())))
    s = scorer_for(counts, "t", warn=lambda m: None)
    data = b"".join(t + b"\n" for t in _random_texts(200, seed=11))
    fast, slow = s.line_scores(data, fast=True), s.line_scores(data, fast=False)
    for field in ("tokens", "oovs", "zeros"):
        assert getattr(fast, field).tolist() == getattr(slow, field).tolist(), field
    assert np.allclose(fast.lp, slow.lp, rtol=1e-9, atol=1e-9)
    assert fast.n_dropped == slow.n_dropped == _rule_sentences(data)[1]


@pytest.mark.parametrize("bad, message", [(b"bad \xe9 line\n", "invalid UTF-8"), (b"bad \x00 line\n", "NUL byte"),
                                          (b"x" * 50 + b"\n", "line longer than 40 bytes")])
def test_lines_before_a_bad_line_are_passed_on_first(bad, message):
    # lm-score writes one output line for every input line before the one it cannot read.
    import io

    from lmtools.io.text import iter_line_chunks

    good = b"".join(b"line %d\n" % i for i in range(7))
    seen = []
    with pytest.raises(LmError, match=message) as err:
        for chunk in iter_line_chunks(io.BytesIO(good + bad + b"after\n"), "t.txt", opts=TextOptions(max_line=40)):
            seen.append(chunk.data)
    assert b"".join(seen) == good
    assert "t.txt:8:" in str(err.value)
