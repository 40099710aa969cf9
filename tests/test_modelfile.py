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
