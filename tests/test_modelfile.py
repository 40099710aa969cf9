"""The model file: round trips, and refusal of truncated, corrupt, foreign and future files."""

import io

import msgpack
import numpy as np
import pytest

from lmtools.errors import LmError
from lmtools.io.modelfile import FORMAT_VERSION, MAGIC, read_model
from lmtools.io.models import load_model, save_model
from lmtools.ngram.counts import Counts
from lmtools.ngram.model import NGramModel


def _counts():
    vocab = ["<unk>", "<s>", "</s>", "a"]
    return Counts(vocab=vocab, ngrams=[np.arange(4, dtype=np.int32).reshape(4, 1), np.array([[1, 3], [3, 2]], np.int32)],
                  counts=[np.array([0, 1, 1, 1]), np.array([1, 1])], tokens=2, sentences=1,
                  provenance={"program": "test"})


def _bytes(obj):
    buf = io.BytesIO()
    save_model(obj, buf)
    return buf.getvalue()


def _load(data: bytes):
    return load_model(io.BufferedReader(io.BytesIO(data)))


def test_counts_round_trip_exact_integers():
    c = _counts()
    c.counts[1] = np.array([2**40, 1])  # beyond uint32: stored as int64, never float
    back = _load(_bytes(c))
    assert isinstance(back, Counts) and back.vocab == c.vocab and back.tokens == 2
    for a, b in zip(c.ngrams + c.counts, back.ngrams + back.counts):
        assert np.array_equal(a, b)
    assert back.counts[1].dtype == np.int64 and back.counts[1][0] == 2**40


def test_ngram_round_trip():
    m = NGramModel(vocab=["<unk>", "<s>", "</s>"], ngrams=[np.arange(3, dtype=np.int32).reshape(3, 1)],
                   logprob=[np.array([-1, -99, -0.5], np.float32)], backoff=[np.zeros(3, np.float32)],
                   method="test", info={"discounts": [[0.5, 1, 1.5]]})
    back = _load(_bytes(m))
    assert isinstance(back, NGramModel) and back.method == "test" and back.info == m.info
    assert np.array_equal(back.logprob[0], m.logprob[0])


def test_starts_with_magic_and_reads_from_a_pipe_like_stream():
    data = _bytes(_counts())
    assert data.startswith(b"\xadlmtools-model")

    class Pipe(io.RawIOBase):  # returns at most 7 bytes per read, like a slow pipe
        def __init__(self, data):
            self.data, self.pos = data, 0

        def readable(self):
            return True

        def readinto(self, b):
            n = min(7, len(b), len(self.data) - self.pos)
            b[:n] = self.data[self.pos:self.pos + n]
            self.pos += n
            return n

    back = load_model(io.BufferedReader(Pipe(data)))
    assert back.vocab == _counts().vocab


@pytest.mark.parametrize("cut", [1, 14, 20, 60, -40, -3, -1])
def test_truncated_refused(cut):
    data = _bytes(_counts())
    with pytest.raises(LmError, match="truncated|corrupt|empty|not an lmtools"):
        _load(data[:cut])


def test_every_truncation_is_refused():
    data = _bytes(_counts())
    for cut in range(len(data)):
        with pytest.raises(LmError):
            _load(data[:cut])


def test_corrupt_checksum_refused():
    data = bytearray(_bytes(_counts()))
    data[-20] ^= 0xFF  # inside the last array's data
    with pytest.raises(LmError, match="corrupt"):
        _load(bytes(data))


def test_foreign_and_future_refused():
    with pytest.raises(LmError, match="not an lmtools model.*text"):
        _load(b"hello world\n")
    with pytest.raises(LmError, match="empty input"):
        _load(b"")
    future = msgpack.packb(MAGIC) + msgpack.packb(FORMAT_VERSION + 1) + msgpack.packb({"kind": "counts"})
    with pytest.raises(LmError, match="newer"):
        _load(future)
    with pytest.raises(LmError, match="ARPA"):
        read_model(io.BytesIO(b"\\data\\\nngram 1=3\n"))


# ----------------------------------------------------------------------------------------------
# Format 2: the header under a checksum, format 1 still read, trailing data, bounded claims


import gzip  # noqa: E402
import tracemalloc  # noqa: E402
import zlib  # noqa: E402

from lmtools.io.modelfile import MAGIC_BYTES  # noqa: E402
from lmtools.io.modelwrite import rewrite, write_model  # noqa: E402
from lmtools.io.models import counts_to_parts, ngram_to_parts  # noqa: E402


def _ngram():
    vocab = ["<unk>", "<s>", "</s>", "a", "b"]
    return NGramModel(vocab=vocab, ngrams=[np.arange(5, dtype=np.int32).reshape(5, 1),
                                           np.array([[1, 3], [3, 4], [4, 2]], np.int32)],
                      logprob=[np.array([-2, 0, -0.5, -0.7, -0.8], np.float32), np.array([-0.1, -0.2, -0.3], np.float32)],
                      backoff=[np.array([0, -0.3, 0, -0.2, -0.1], np.float32), np.zeros(3, np.float32)],
                      method="test")


def _v1_bytes(kind: str, header: dict, arrays: dict) -> bytes:
    """A format-1 file as lmtools wrote them before the header checksum."""
    head = dict(header, kind=kind, arrays=list(arrays))
    out = msgpack.packb(MAGIC) + msgpack.packb(1) + msgpack.packb(head)
    for name, arr in arrays.items():
        data = np.ascontiguousarray(arr).tobytes()
        out += msgpack.packb({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                              "crc32": zlib.crc32(data) & 0xFFFFFFFF, "data": data})
    return out + msgpack.packb({"end": len(arrays)})


def _write(kind, header, arrays) -> bytes:
    buf = io.BytesIO()
    write_model(buf, kind, header, arrays)
    return buf.getvalue()


def _header_span(data: bytes) -> tuple[int, int]:
    """Byte range of the header bin and its checksum in a format-2 file."""
    start = len(MAGIC_BYTES) + 1  # magic, version (a positive fixint)
    width = {0xC4: 1, 0xC5: 2, 0xC6: 4}[data[start]]
    n = int.from_bytes(data[start + 1:start + 1 + width], "big")
    return start, start + 1 + width + n + 5  # bin header, bytes, crc (uint32)


def test_every_header_byte_flip_refused():
    for obj in (_counts(), _ngram()):
        data = _bytes(obj)
        assert data[len(MAGIC_BYTES)] == FORMAT_VERSION == 3
        a, b = _header_span(data)
        for i in range(len(MAGIC_BYTES), b):
            for flip in (0x01, 0x80, 0xFF):
                bad = bytearray(data)
                bad[i] ^= flip
                with pytest.raises(LmError):
                    _load(bytes(bad))


def test_every_byte_flip_refused_anywhere():
    # with the header and the array metadata under checksums, no single-byte change gets through
    data = _bytes(_ngram())
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x04
        with pytest.raises(LmError):
            _load(bytes(bad))


def test_format_1_still_read_with_one_warning(capsys):
    for obj, kind, parts, cmd in ((_counts(), "counts", counts_to_parts, "lm-merge"),
                                  (_ngram(), "ngram", ngram_to_parts, "lm-train")):
        old = _v1_bytes(kind, *parts(obj))
        back = _load(old)
        assert back.vocab == obj.vocab
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "warning:" in err[0] and "format 1 has no header checksum" in err[0] \
            and cmd in err[0], err
    _load(_bytes(_ngram()))
    assert capsys.readouterr().err == ""  # format 2: no warning


def test_rewrite_format_1_to_current(tmp_path, capsys):
    old, new = tmp_path / "old.lm", tmp_path / "new.lm"
    old.write_bytes(_v1_bytes("ngram", *ngram_to_parts(_ngram())))
    rewrite(str(old), str(new))
    assert capsys.readouterr().err == ""
    data = new.read_bytes()
    assert data[len(MAGIC_BYTES)] == FORMAT_VERSION
    back = load_model(str(new))
    assert capsys.readouterr().err == ""
    for a, b in zip(back.logprob + back.ngrams, _ngram().logprob + _ngram().ngrams):
        assert np.array_equal(a, b)


def test_trailing_data_refused():
    data = _bytes(_counts())
    for extra in (b"\x00", b"x", data):
        with pytest.raises(LmError, match="trailing data after the model"):
            _load(data + extra)


def _error(data: bytes) -> str:
    with pytest.raises(LmError) as e:
        _load(data)
    return str(e.value)


@pytest.mark.parametrize("field,value", [
    ("order", "2"), ("order", 0), ("order", True), ("order", 2.0), ("vocab", "abc"), ("vocab", ["<unk>", "<s>", "</s>", 5]),
    ("provenance", [1]), ("method", 3), ("info", "x"), ("scores_only", "no"), ("sizes", [5, "3"]),
    ("sizes", [5, 4]),
])
def test_header_fields_of_the_wrong_type(field, value):
    h, a = ngram_to_parts(_ngram())
    h[field] = value
    msg = _error(_write("ngram", h, a))
    assert "corrupt model header" in msg and (f"field {field}" in msg or field == "vocab"), msg


def test_header_kind_arrays_and_counts_fields():
    h, a = counts_to_parts(_counts())
    for field, value in (("tokens", -1), ("sentences", "1"), ("tokens", 1.5)):
        msg = _error(_write("counts", dict(h, **{field: value}), a))
        assert f"corrupt model header (field {field})" in msg
    # a header map packed by hand: kind and arrays of the wrong type
    for bad in ({"kind": "lm", "order": 1, "vocab": ["<unk>", "<s>", "</s>"], "arrays": []},
                {"kind": "counts", "order": 1, "vocab": ["<unk>", "<s>", "</s>"], "arrays": "counts_1"}):
        packed = msgpack.packb(bad)
        data = msgpack.packb(MAGIC) + msgpack.packb(2) + msgpack.packb(packed, use_bin_type=True) \
            + msgpack.packb(zlib.crc32(packed)) + msgpack.packb({"end": 0})
        assert "corrupt model header (field" in _error(data)


@pytest.mark.parametrize("vocab", [["<unk>", "<s>", "</s>", "a", "a"], ["<unk>", "<s>", "</s>", "a b", "c"],
                                   ["<unk>", "<s>", "</s>", "", "c"], ["<s>", "<unk>", "</s>", "a", "b"],
                                   ["<unk>", "<s>", "</s>", "a\n", "b"]])
def test_vocabulary_must_be_distinct_words(vocab):
    h, a = ngram_to_parts(_ngram())
    h["vocab"] = vocab
    assert "corrupt model header (field vocab)" in _error(_write("ngram", h, a))


@pytest.mark.parametrize("change,what", [
    (lambda a: a.__setitem__("ngrams_2", np.array([[1, 3], [3, 9], [4, 2]], np.int32)), "out of range"),
    (lambda a: a.__setitem__("ngrams_2", np.array([[1, 3], [3, -1], [4, 2]], np.int32)), "out of range"),
    (lambda a: a.__setitem__("ngrams_2", np.array([[3, 4], [1, 3], [4, 2]], np.int32)), "not sorted"),
    (lambda a: a.__setitem__("ngrams_2", np.array([[1, 3], [1, 3], [4, 2]], np.int32)), "repeated"),
    (lambda a: a.__setitem__("ngrams_2", np.array([[1, 3], [3, 4], [4, 2]], np.float32)), "wrong types"),
    (lambda a: a.__setitem__("logprob_2", np.array([-0.1, -0.2, -0.3], np.int32)), "wrong types"),
    (lambda a: a.__setitem__("logprob_2", np.array([-0.1, np.nan, -0.3], np.float32)), "nan"),
    (lambda a: a.__setitem__("logprob_1", np.array([-2, 0, np.inf, -0.7, -0.8], np.float32)), "nan"),
    (lambda a: a.__setitem__("logprob_2", np.array([-0.1, 0.5, -0.3], np.float32)), "above 0"),
    (lambda a: a.__setitem__("backoff_1", np.array([0, -np.inf, 0, 0, 0], np.float32)), "backoff"),
    (lambda a: a.__setitem__("backoff_2", np.array([0, np.nan, 0], np.float32)), "backoff"),
    (lambda a: a.__setitem__("logprob_2", np.array([-0.1, -0.3], np.float32)), "disagree"),
])
def test_ngram_arrays_validated(change, what):
    h, a = ngram_to_parts(_ngram())
    change(a)
    msg = _error(_write("ngram", h, a))
    assert what in msg, msg


def test_ngram_legal_values_pass():
    h, a = ngram_to_parts(_ngram())
    a["logprob_2"] = np.array([-np.inf, -99, 5e-5], np.float32)  # log 0, ARPA's -99, rounding above 0
    a["backoff_1"] = np.array([0, 0.5, 0, 0, 0], np.float32)  # a positive backoff is legal
    assert isinstance(_load(_write("ngram", h, a)), NGramModel)


@pytest.mark.parametrize("change,what", [
    (lambda a: a.__setitem__("prefix_2", np.array([1, 7], np.int32)), "out of range"),
    (lambda a: a.__setitem__("word_2", np.array([3, 4], np.int32)), "out of range"),
    (lambda a: a.__setitem__("counts_2", np.array([1, -1], np.int64)), "negative"),
    (lambda a: a.__setitem__("counts_2", np.array([1.0, 1.0], np.float64)), "integers"),
    (lambda a: a.__setitem__("counts_1", np.array([0, 1, 1], np.uint32)), "unigram"),
    (lambda a: a.__setitem__("word_2", np.array([3, 2, 2], np.int32)), "disagree"),
])
def test_counts_arrays_validated(change, what):
    h, a = counts_to_parts(_counts())
    change(a)
    assert what in _error(_write("counts", h, a))


def test_counts_repeated_ngrams_refused():
    h, a = counts_to_parts(_counts())
    a["prefix_2"], a["word_2"], a["counts_2"] = (np.array([1, 1], np.int32), np.array([3, 3], np.int32),
                                                 np.array([1, 1], np.uint32))
    assert "repeated" in _error(_write("counts", h, a))


def _ffnn_parts(**over):
    V, d, H, ctx = 4, 2, 3, 2
    rng = np.random.default_rng(0)
    arrays = {"E": rng.standard_normal((V, d)).astype(np.float32), "W": rng.standard_normal((H, ctx * d)).astype(np.float32),
              "b": np.zeros(H, np.float32), "U": rng.standard_normal((V, H)).astype(np.float32),
              "c": np.zeros(V, np.float32)}
    header = {"order": ctx + 1, "vocab": ["<unk>", "<s>", "</s>", "a"], "ffnn_format": 1, "context": ctx, "dim": d,
              "hidden": H, "activation": "tanh", "output_layer": "softmax", "classes": 0}
    arrays.update(over)
    return header, arrays


def test_ffnn_round_trip_and_validation():
    from lmtools.nn.model import FFNNModel

    h, a = _ffnn_parts()
    assert isinstance(_load(_write("ffnn", h, a)), FFNNModel)
    for over, what in ((dict(W=np.zeros((3, 5), np.float32)), "shapes disagree"),
                       (dict(b=np.zeros((3, 1), np.float32)), "dimensions"),
                       (dict(c=np.zeros(4, np.float64)), "type"),
                       (dict(U=np.full((4, 3), np.nan, np.float32)), "nan or inf"),
                       (dict(E=np.zeros((4, 2), np.int32)), "type")):
        h, a = _ffnn_parts(**over)
        assert what in _error(_write("ffnn", h, a)), over
    h, a = _ffnn_parts()
    for field, value in (("context", "2"), ("context", 0), ("activation", 1), ("output_layer", "tree"), ("dim", 3)):
        msg = _error(_write("ffnn", dict(h, **{field: value}), a))
        assert "corrupt model header" in msg, (field, msg)
    del h["context"]
    assert "field context" in _error(_write("ffnn", h, a))


# -- claims bounded by what the stream holds


def _huge_array_file() -> bytes:
    """A valid header, then an array whose descriptor claims 16 GiB (format 3: 64-bit lengths),
    then 1000 bytes."""
    h, _ = counts_to_parts(_counts())
    data = _write("counts", dict(h, order=1, sizes=[4]), {"counts_1": np.zeros(4, np.uint32)})
    desc_at = data.index(b"\x95\xa8counts_1") - 4
    n = 2**32
    desc = msgpack.packb(["counts_1", "<u4", [n], 4 * n, 0])
    out = data[:desc_at] + len(desc).to_bytes(4, "little") + desc + zlib.crc32(desc).to_bytes(4, "little")
    return out + bytes(-len(out) % 64) + b"\x00" * 1000


def _huge_array_file_v2() -> bytes:
    """Format 2: a valid header, then an array whose shape and bin claim 4 GiB, then 1000 bytes."""
    from .test_modelfile_mmap import v2_bytes

    h, _ = counts_to_parts(_counts())
    data = v2_bytes("counts", dict(h, order=1, sizes=[4]), {"counts_1": np.zeros(4, np.uint32)})
    meta_at = data.index(b"\xa4name")
    head = data[:meta_at - 1]
    n = (2**32 - 16) // 4
    meta = (b"\x85" + msgpack.packb("name") + msgpack.packb("counts_1") + msgpack.packb("dtype") + msgpack.packb("<u4")
            + msgpack.packb("shape") + msgpack.packb([n]) + msgpack.packb("crc32") + msgpack.packb(0)
            + msgpack.packb("data") + b"\xc6" + (4 * n).to_bytes(4, "big"))
    return head + meta + b"\x00" * 1000


def _huge_header_file(version: int) -> bytes:
    if version >= 2:
        return msgpack.packb(MAGIC) + msgpack.packb(version) + b"\xc6\xff\xff\xff\xf0" + b"x" * 1000
    # format 1: a vocabulary list that claims 2**32 - 1 words
    return msgpack.packb(MAGIC) + msgpack.packb(1) + b"\x82\xa4kind\xa6counts\xa5vocab\xdd\xff\xff\xff\xff" + b"\xa1a" * 300


class _Pipe(io.RawIOBase):
    """A pipe: no size known, a few bytes per read."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def readable(self):
        return True

    def readinto(self, b):
        n = min(4096, len(b), len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize("make", [_huge_array_file, _huge_array_file_v2, lambda: _huge_header_file(1),
                                  lambda: _huge_header_file(2), lambda: _huge_header_file(3)])
def test_huge_claims_fail_fast_without_allocating(make, tmp_path):
    data = make()
    path, gz = tmp_path / "m.lm", tmp_path / "m.lm.gz"
    path.write_bytes(data)
    gz.write_bytes(gzip.compress(data))
    tracemalloc.start()
    try:
        for source in (str(path), str(gz), io.BufferedReader(_Pipe(data)), io.BufferedReader(io.BytesIO(data))):
            with pytest.raises(LmError, match="truncated"):
                load_model(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, peak


def test_damaged_gzip_model_is_one_error(tmp_path):
    data = gzip.compress(_bytes(_ngram()))
    cut, flipped = tmp_path / "cut.lm.gz", tmp_path / "flip.lm.gz"
    cut.write_bytes(data[:len(data) // 2])
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0x55
    flipped.write_bytes(bytes(bad))
    (tmp_path / "ok.lm.gz").write_bytes(data)
    assert load_model(str(tmp_path / "ok.lm.gz")).vocab == _ngram().vocab
    for p in (cut, flipped):
        with pytest.raises(LmError, match=rf"{p.name}: damaged gzip data \("):
            load_model(str(p))


def test_programs_report_old_damaged_and_trailing_files_in_one_line(tmp_path):
    from .conftest import run_prog

    old, gz, two = tmp_path / "old.lm", tmp_path / "cut.lm.gz", tmp_path / "two.lm"
    old.write_bytes(_v1_bytes("counts", *counts_to_parts(_counts())))
    gz.write_bytes(gzip.compress(_bytes(_counts()))[:-12])
    two.write_bytes(_bytes(_counts()) * 2)
    r = run_prog("lm-info", old)
    assert r.returncode == 0 and r.stderr.decode().splitlines() == [
        f"lm-info: warning: {old}: model file format 1 has no header checksum; rewrite it with this lmtools: "
        f"lm-merge {old} -o NEW.lm"]
    for path, what in ((gz, "damaged gzip data ("), (two, "trailing data after the model")):
        r = run_prog("lm-info", path)
        lines = r.stderr.decode().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"lm-info: error: {path}: {what}"), lines


@pytest.mark.parametrize("checksum", [False, True])
def test_an_array_on_disk_is_read_once_when_its_checksum_is_known(tmp_path, checksum):
    """A DiskArray written with checksum=True carries the CRC of its bytes: the writer copies it in
    one pass instead of reading it twice; the file reads back the same either way."""
    from lmtools.io.countstream import SpillDir
    from lmtools.io.spill import BlockWriter, DiskArray

    rng = np.random.default_rng(3)
    a = rng.integers(0, 1000, size=(5000, 3)).astype(np.int32)
    reads = []
    chunks = DiskArray.chunks

    def counted(self, *args):
        reads.append(self.path)
        return chunks(self, *args)

    with SpillDir(str(tmp_path)) as space:
        w = BlockWriter(space, "rows", np.int32, 3, checksum=checksum)
        for k in range(0, 5000, 777):
            w.append(a[k:k + 777])
        disk = w.close()
        assert (disk.crc32 == zlib.crc32(a.tobytes())) if checksum else disk.crc32 is None
        buf = io.BytesIO()
        DiskArray.chunks = counted
        try:
            write_model(buf, "counts", {"order": 3, "vocab": ["<unk>", "<s>", "</s>"]}, {"rows": disk})
        finally:
            DiskArray.chunks = chunks
        assert len(reads) == (1 if checksum else 2)
        _, arrays = read_model(io.BytesIO(buf.getvalue()))  # the checksum in the file is checked on reading
        assert np.array_equal(arrays["rows"], a)
        if checksum:  # a checksum that does not fit the bytes is caught by the reader
            disk.crc32 ^= 1
            bad = io.BytesIO()
            write_model(bad, "counts", {"order": 3, "vocab": ["<unk>", "<s>", "</s>"]}, {"rows": disk})
            with pytest.raises(LmError, match="rows"):
                read_model(io.BytesIO(bad.getvalue()))
