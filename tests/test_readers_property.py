"""Property-based tests of the readers: model files, ARPA files and compressed streams, damaged at
random (hypothesis, derandomized so every run tries the same cases).

- A model file (counts, n-gram, ffnn) cut anywhere, or with any bytes changed, is refused with
  LmError: the header, the array metadata and the array data are all under checksums, so a change
  inside array data is refused by its checksum, anywhere else by the header checksum or the parser.
- An ARPA file with random lines changed is refused with LmError or reads to a valid model: finite
  values, log10 p <= 0 (or -inf), ids in range, rows sorted and distinct, sizes as announced.
- Damaged gzip/bzip2/xz data of a model, an ARPA file or a text is one LmError, never another exception.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmtools.errors import LmError
from lmtools.io.arpa import read_arpa
from lmtools.io.models import load_model, rows_increasing
from lmtools.ngram.model import NGramModel

from .conftest import SHAKESPEARE
from .model_seeds import small_models

SETTINGS = dict(max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


# ----------------------------------------------------------------------------------------------
# Small real models


@lru_cache(maxsize=None)
def _models() -> dict[str, bytes]:
    return small_models(SHAKESPEARE.read_bytes()[:700], seed=1, dim=4, hidden=5)


def _load(data: bytes):
    return load_model(io.BufferedReader(io.BytesIO(data)))


def _array_data_spans(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the arrays' data in a model file (format 3: after each descriptor and its padding)."""
    from .test_modelfile_mmap import data_spans

    return data_spans(data)


KINDS = ("counts", "ngram", "ffnn")


def test_the_models_load():
    for kind in KINDS:
        assert _load(_models()[kind]) is not None


@settings(**SETTINGS)
@given(kind=st.sampled_from(KINDS), frac=st.floats(0, 1, exclude_max=True))
def test_truncated_model_refused(kind, frac):
    data = _models()[kind]
    cut = int(frac * len(data))
    with pytest.raises(LmError):
        _load(data[:cut])


@settings(**SETTINGS)
@given(kind=st.sampled_from(KINDS), frac=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_byte_flip_refused(kind, frac, xor):
    data = _models()[kind]
    i = int(frac * len(data))
    bad = bytearray(data)
    bad[i] ^= xor
    with pytest.raises(LmError) as e:
        _load(bytes(bad))
    if any(a <= i < b for a, b in _array_data_spans(data)):
        assert "checksum of array" in str(e.value)


@settings(**SETTINGS)
@given(kind=st.sampled_from(KINDS), frac=st.floats(0, 1, exclude_max=True), junk=st.binary(min_size=1, max_size=12),
       drop=st.integers(0, 12))
def test_spliced_bytes_refused(kind, frac, junk, drop):
    data = _models()[kind]
    i = int(frac * len(data))
    bad = data[:i] + junk + data[i + drop:]
    if bad == data:
        return
    with pytest.raises(LmError):
        _load(bad)


# ----------------------------------------------------------------------------------------------
# ARPA mutations

FIELDS = ["nan", "NaN", "inf", "-inf", "+inf", "1e400", "-1e400", "1e39", "-1e39", "0", "-0", "0.5", "-0.5", "1e-5",
          "-99", "5", "--1", "1e", ".", "", "1_0", "0x10", "<unk>", "<s>", "</s>", "zz", "\\", "ngram", "9", "-"]


@st.composite
def arpa_mutation(draw):
    lines = _models()["arpa"].decode("utf-8").split("\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["field", "field", "field", "delete", "duplicate", "swap", "append"]))
        parts = lines[i].replace("\t", " ").split(" ")
        if op == "field":
            j = draw(st.integers(0, max(0, len(parts) - 1)))
            parts[j] = draw(st.sampled_from(FIELDS))
            lines[i] = "\t".join(parts) if draw(st.booleans()) else " ".join(parts)
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap" and len(parts) > 2:
            parts[1], parts[-1] = parts[-1], parts[1]
            lines[i] = " ".join(parts)
        elif op == "append":
            lines[i] += " " + draw(st.sampled_from(FIELDS))
        if not lines:
            lines = [""]
    return "\n".join(lines).encode("utf-8")


def _valid(m: NGramModel, text: bytes) -> None:
    V = len(m.vocab)
    assert len(set(m.vocab)) == V and m.vocab[:3] == ["<unk>", "<s>", "</s>"]
    declared = [int(line.split(b"=")[1]) for line in text.split(b"\\1-grams:")[0].splitlines() if b"=" in line]
    assert declared[1:] == m.sizes()[1:]  # the unigram order may gain the specials an ARPA lacks
    for n, (g, lp, bo) in enumerate(zip(m.ngrams, m.logprob, m.backoff), start=1):
        assert g.shape == (len(lp), n) and bo.shape == lp.shape
        assert g.size == 0 or (g.min() >= 0 and g.max() < V)
        assert rows_increasing(g)
        assert not np.isnan(lp).any() and (lp.size == 0 or lp.max() <= 1e-4)
        assert np.isfinite(bo).all()


@settings(**SETTINGS)
@given(text=arpa_mutation())
def test_arpa_mutations_refused_or_valid(text):
    try:
        m = read_arpa(io.BytesIO(text), warn=lambda s: None)
    except LmError as e:
        assert "\n" not in str(e)
        return
    _valid(m, text)


# ----------------------------------------------------------------------------------------------
# Damaged compressed streams: models, ARPA files, text

COMPRESS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}


def _read_text_file(path: str) -> None:
    from lmtools.io.text import iter_text_chunks

    for _ in iter_text_chunks([path]):
        pass


@settings(**dict(SETTINGS, max_examples=100))
@given(what=st.sampled_from(["counts", "arpa", "text"]), codec=st.sampled_from(sorted(COMPRESS)),
       frac=st.floats(0, 1, exclude_max=True), cut=st.booleans(), xor=st.integers(1, 255))
def test_damaged_compressed_input_is_one_error(tmp_path_factory, what, codec, frac, cut, xor):
    raw = SHAKESPEARE.read_bytes()[:3000] if what == "text" else _models()[what]
    data = COMPRESS[codec](raw)
    i = 2 + int(frac * (len(data) - 2))  # keep the magic: the reader must know it is compressed
    if cut:
        damaged = data[:i]
    else:
        bad = bytearray(data)
        bad[min(i, len(data) - 1)] ^= xor
        damaged = bytes(bad)
    path = tmp_path_factory.mktemp("z") / f"f.{codec}"
    path.write_bytes(damaged)
    try:
        if what == "text":
            _read_text_file(str(path))
        else:
            load_model(str(path))
    except LmError as e:
        assert "\n" not in str(e)
        return
    # read without an error: then the damage left the data intact (a flip in a gzip header's flags
    # or time stamp, say), or it was refused by the model's own checks above
