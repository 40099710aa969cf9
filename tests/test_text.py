"""Text reading: whitespace, markers, UTF-8 errors, binary input, compression, the tokenizer kernel."""

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
