"""Model file format 3: a file given by path is mapped (numpy views of the mapping, no copy), a pipe
is read front to back, in chunks; both give the same arrays and scores. What a mapped load checks at
once (header, descriptors, layout, small arrays) and what it leaves to the first read of an order or
to LMTOOLS_VERIFY=1 (large arrays' checksums and contents). Formats 1 and 2 still load."""

from __future__ import annotations

import gzip
import io
import mmap
import os
import subprocess
import sys
import zlib
from functools import lru_cache

import msgpack
import numpy as np
import pytest

import lmtools.io.modelfile as modelfile
import lmtools.io.modelwrite as modelwrite
from lmtools.errors import LmError
from lmtools.io.modelfile import ALIGN, FORMAT_VERSION, MAGIC, MAGIC_BYTES, map_model, read_model
from lmtools.io.modelwrite import rewrite
from lmtools.io.models import CheckedOrders, load_model, ngram_to_parts, save_model
from lmtools.ngram.model import NGramModel

from .conftest import SHAKESPEARE, run_prog
from .model_seeds import small_models

KINDS = ("counts", "ngram", "ffnn")


# ----------------------------------------------------------------------------------------------
# Helpers: the layout as the man page describes it, written out independently of the reader


def v2_bytes(kind: str, header: dict, arrays: dict) -> bytes:
    """A format-2 file as lmtools wrote them before format 3 (msgpack maps with a bin of data)."""
    head = msgpack.packb(dict(header, kind=kind, arrays=list(arrays)), use_bin_type=True)
    out = msgpack.packb(MAGIC) + msgpack.packb(2) + msgpack.packb(head, use_bin_type=True) + msgpack.packb(zlib.crc32(head))
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        data = arr.tobytes()
        meta = msgpack.packb([name, arr.dtype.str, list(arr.shape)], use_bin_type=True)
        out += msgpack.packb({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                              "crc32": zlib.crc32(data, zlib.crc32(meta)), "data": data}, use_bin_type=True)
    return out + msgpack.packb({"end": len(arrays)})


def layout(data: bytes) -> list[dict]:
    """Per array of a format-3 file: name, descriptor span, padding span, data span (parsed by hand)."""
    assert data[len(MAGIC_BYTES)] == 3
    at = len(MAGIC_BYTES) + 1
    width = {0xC4: 1, 0xC5: 2, 0xC6: 4}[data[at]]
    n = int.from_bytes(data[at + 1:at + 1 + width], "big")
    head = msgpack.unpackb(data[at + 1 + width:at + 1 + width + n])
    at += 1 + width + n
    at += 1 + {0xCE: 4, 0xCD: 2, 0xCC: 1}.get(data[at], 0) if data[at] >= 0x80 else 1  # the header's CRC
    out = []
    for name in head["arrays"]:
        L = int.from_bytes(data[at:at + 4], "little")
        desc = msgpack.unpackb(data[at + 4:at + 4 + L])
        assert desc[0] == name
        pad_at = at + 8 + L
        data_at = pad_at + (-pad_at % 64)
        out.append({"name": name, "desc": (at, pad_at), "pad": (pad_at, data_at), "data": (data_at, data_at + desc[3]),
                    "dtype": desc[1], "shape": desc[2], "crc": desc[4]})
        at = data_at + desc[3]
    assert msgpack.unpackb(data[at:]) == {"end": len(head["arrays"])}
    return out


def data_spans(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the arrays' data in a format-3 model file."""
    return [a["data"] for a in layout(data)]


@lru_cache(maxsize=None)
def _models() -> dict[str, bytes]:
    return small_models(SHAKESPEARE.read_bytes()[:3000], seed=2, dim=4, hidden=5)


@lru_cache(maxsize=None)
def _tiny() -> dict[str, bytes]:
    """Models of a few hundred bytes of text: every byte of them can be damaged in turn."""
    return small_models(SHAKESPEARE.read_bytes()[:400], seed=3, dim=2, hidden=3)


def _dense_bigram(V: int = 600) -> NGramModel:
    """A valid n-gram model with every bigram of V words (V*V rows: a few MB)."""
    vocab = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(V - 3)]
    rng = np.random.default_rng(0)
    g1 = np.arange(V, dtype=np.int32).reshape(V, 1)
    a, b = np.meshgrid(np.arange(V, dtype=np.int32), np.arange(V, dtype=np.int32), indexing="ij")
    g2 = np.stack([a.ravel(), b.ravel()], axis=1)
    lp1 = -rng.random(V).astype(np.float32) - 1
    lp1[1] = 0
    return NGramModel(vocab=vocab, ngrams=[g1, g2], logprob=[lp1, -rng.random(V * V).astype(np.float32) - 0.5],
                      backoff=[-rng.random(V).astype(np.float32), np.zeros(V * V, np.float32)], method="test")


def plain_bytes(m: NGramModel) -> bytes:
    """An n-gram model file with the arrays of the model only (no stored query structure), written as
    given: whatever its contents."""
    header = {"order": m.order, "vocab": list(m.vocab), "method": m.method, "sizes": [len(g) for g in m.ngrams]}
    arrays = {}
    for n in range(1, m.order + 1):
        arrays.update({f"ngrams_{n}": m.ngrams[n - 1], f"logprob_{n}": m.logprob[n - 1],
                       f"backoff_{n}": m.backoff[n - 1]})
    buf = io.BytesIO()
    modelwrite.write_model(buf, "ngram", header, arrays)
    return buf.getvalue()


def _file(tmp_path, data: bytes, name="m.lm"):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def _arrays_of(obj) -> list[np.ndarray]:
    if isinstance(obj, NGramModel):
        return list(obj.ngrams) + list(obj.logprob) + list(obj.backoff)
    if hasattr(obj, "ngrams"):
        return list(obj.ngrams) + list(obj.counts)
    return [obj.E, obj.W, obj.b, obj.U, obj.c]


def _root(arr):
    b = arr
    while isinstance(b, np.ndarray):
        b = b.base
    return b.obj if isinstance(b, memoryview) else b


# ----------------------------------------------------------------------------------------------
# The layout


def test_layout_aligned_and_as_documented():
    for kind in KINDS:
        data = _models()[kind]
        assert data.startswith(MAGIC_BYTES) and data[len(MAGIC_BYTES)] == FORMAT_VERSION == 3
        h, arrays = read_model(io.BytesIO(data))
        spans = layout(data)
        assert [s["name"] for s in spans] == h["arrays"]
        for s in spans:
            assert s["data"][0] % ALIGN == 0 and not any(data[slice(*s["pad"])])
            raw = data[slice(*s["data"])]
            assert zlib.crc32(raw) == s["crc"]
            assert raw == np.ascontiguousarray(arrays[s["name"]]).tobytes()
            assert list(arrays[s["name"]].shape) == s["shape"] and arrays[s["name"]].dtype.str == s["dtype"]


# ----------------------------------------------------------------------------------------------
# Mapped and streamed loads


def test_mapped_and_streamed_give_identical_arrays(tmp_path, monkeypatch):
    monkeypatch.setattr(modelfile, "EAGER_BYTES", 64)  # most arrays left to the first read
    for kind in KINDS:
        data = _models()[kind]
        path = _file(tmp_path, data, f"{kind}.lm")
        mapped = map_model(path)
        assert mapped is not None
        for name, arr in mapped.arrays.items():
            assert isinstance(_root(arr), mmap.mmap) and not arr.flags.writeable, name
        h, streamed = read_model(io.BytesIO(data))
        assert mapped.header == h and list(mapped.arrays) == list(streamed)
        for name in streamed:
            assert mapped.arrays[name].dtype == streamed[name].dtype
            assert np.array_equal(mapped.arrays[name], streamed[name], equal_nan=True)
        a = load_model(path)
        b = load_model(io.BufferedReader(io.BytesIO(data)))
        for x, y in zip(_arrays_of(a), _arrays_of(b)):
            assert np.array_equal(x, y, equal_nan=True)


def test_mapped_ngram_model_is_views_of_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(modelfile, "EAGER_BYTES", 64)
    path = _file(tmp_path, _models()["ngram"])
    m = load_model(path)
    assert isinstance(m.ngrams, CheckedOrders)
    for arr in _arrays_of(m):
        assert isinstance(_root(arr), mmap.mmap)


def test_the_file_may_be_replaced_by_a_rename_while_mapped(tmp_path):
    path = _file(tmp_path, _models()["ngram"])
    m = load_model(path)
    before = [a.copy() for a in _arrays_of(m)]
    other = tmp_path / "other.lm"
    buf = io.BytesIO()
    save_model(_dense_bigram(50), buf)
    other.write_bytes(buf.getvalue())
    os.replace(other, path)
    for a, b in zip(_arrays_of(m), before):
        assert np.array_equal(a, b)
    assert len(load_model(path).vocab) == 50


_RSS = r"""
import sys
def rss():  # anonymous memory: copies (file pages of a mapping are the page cache's, shared)
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
import numpy as np
from lmtools.io.models import load_model
source = sys.argv[1]
load_model(sys.argv[2])  # a small model first: the modules a load imports are not counted
if source == "-":
    source = sys.stdin.buffer
before = rss()
m = load_model(source)
print(rss() - before)
"""


def test_a_mapped_load_does_not_copy_the_file(tmp_path):
    buf = io.BytesIO()
    save_model(_dense_bigram(), buf)
    path = _file(tmp_path, buf.getvalue())
    size = os.path.getsize(path)
    assert size > 4 << 20

    small = _file(tmp_path, _models()["ngram"], "small.lm")

    def grown(source, stdin=None):
        r = subprocess.run([sys.executable, "-c", _RSS, source, small], stdin=stdin, capture_output=True, check=True)
        return int(r.stdout)

    mapped = grown(path)
    with open(path, "rb") as f:
        streamed = grown("-", stdin=f)  # a regular file as stdin is read as a stream
    assert mapped < size / 10, (mapped, size)
    assert streamed > size / 2, (streamed, size)  # the measure sees a copy where there is one



def _vm_flags(lo: int, hi: int) -> list[set[str]]:
    """VmFlags of every mapping of this process that overlaps the addresses [lo, hi)."""
    out, overlaps = [], False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and ":" not in head:
                a, b = (int(x, 16) for x in head.split("-"))
                overlaps = a < hi and lo < b
            elif head == "VmFlags:" and overlaps:
                out.append(set(line.split()[1:]))
    return out


def test_the_mapped_hash_table_is_advised_random(tmp_path):
    """query.tab is probed at random: the kernel is told (MADV_RANDOM, VmFlags "rr"), so that a fault
    on a cold table reads one page, not megabytes of read-ahead; the n-gram arrays, read in order,
    keep the default."""
    buf = io.BytesIO()
    save_model(_dense_bigram(), buf)
    m = load_model(_file(tmp_path, buf.getvalue()))
    tab = m.query.tab
    assert isinstance(_root(tab), mmap.mmap)
    flags = _vm_flags(tab.ctypes.data, tab.ctypes.data + tab.nbytes)
    assert flags and all("rr" in f for f in flags), flags
    rows = list.__getitem__(m.ngrams, 1)
    page = mmap.PAGESIZE
    lo = (rows.ctypes.data + page) // page * page  # a whole page of it, away from the table's pages
    assert all("rr" not in f for f in _vm_flags(lo, lo + 1))


# ----------------------------------------------------------------------------------------------
# Streams: chunks, pipes, compression


class _Pipe(io.RawIOBase):
    def __init__(self, data, step=4096):
        self.data, self.pos, self.step = data, 0, step

    def readable(self):
        return True

    def readinto(self, b):
        n = min(self.step, len(b), len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize("chunk", [5, 4096])
def test_streamed_in_small_chunks(monkeypatch, tmp_path, chunk):
    monkeypatch.setattr(modelfile, "CHUNK", chunk)
    for kind in KINDS:
        data = _models()[kind]
        h, want = read_model(io.BytesIO(data))
        gz = tmp_path / f"{kind}.lm.gz"
        gz.write_bytes(gzip.compress(data))
        for source in (io.BufferedReader(_Pipe(data, 13)), io.BufferedReader(io.BytesIO(data)), str(gz)):
            stream = source if not isinstance(source, str) else __import__("lmtools.io.text").io.text.open_binary(source)
            got_h, got = read_model(stream)
            assert got_h == h
            for name in want:
                assert np.array_equal(got[name], want[name], equal_nan=True)
        for cut in (len(data) - 1, len(data) // 2, layout(data)[-1]["data"][0] + 1):
            with pytest.raises(LmError, match="truncated"):
                read_model(io.BufferedReader(_Pipe(data[:cut], 5)))


def test_same_scores_from_a_path_and_from_a_pipe(tmp_path):
    path = _file(tmp_path, _models()["ngram"])
    text = tmp_path / "t.txt"
    text.write_bytes(SHAKESPEARE.read_bytes()[3000:9000])
    by_path = run_prog("lm-ppl", "-m", path, text)
    by_pipe = run_prog("lm-ppl", "-m", "-", text, input=_models()["ngram"])
    assert by_path.returncode == 0 and by_path.stderr == b"", by_path.stderr
    assert by_path.stdout == by_pipe.stdout and b"ppl" in by_path.stdout.lower()
    s1 = run_prog("lm-score", "-m", path, text)
    s2 = run_prog("lm-score", "-m", "-", text, input=_models()["ngram"])
    assert s1.returncode == 0 and s1.stdout == s2.stdout and s1.stdout


def test_same_scores_mapped_lazily(tmp_path, monkeypatch):
    # orders checked on first read: the scores do not change
    from lmtools.kinds import scorer_for

    text = SHAKESPEARE.read_bytes()[3000:200000]
    text = text[:text.rindex(b"\n") + 1]
    path = _file(tmp_path, _models()["ngram"])
    streamed = scorer_for(load_model(io.BufferedReader(io.BytesIO(_models()["ngram"]))))
    monkeypatch.setattr(modelfile, "EAGER_BYTES", 64)
    mapped = scorer_for(load_model(path))
    for fast in (False, True):
        a, b = streamed.line_scores(text, fast=fast), mapped.line_scores(text, fast=fast)
        assert np.array_equal(a.lp, b.lp) and np.array_equal(a.tokens, b.tokens)


# ----------------------------------------------------------------------------------------------
# Damage: truncation, flipped bytes (header, descriptors, padding, data), trailing bytes


@pytest.mark.slow
def test_every_truncation_of_a_mapped_file_is_one_error(tmp_path):
    data = _tiny()["ngram"]
    path = tmp_path / "cut.lm"
    for cut in range(len(MAGIC_BYTES) + 1, len(data), 1 if len(data) < 3000 else 7):
        path.write_bytes(data[:cut])
        with pytest.raises(LmError, match="truncated"):
            load_model(str(path))


def test_every_flip_outside_array_data_refused_at_a_mapped_load(tmp_path, monkeypatch):
    monkeypatch.setattr(modelfile, "EAGER_BYTES", 0)  # no array data checked at open
    data = _tiny()["counts"]
    inside = np.zeros(len(data), bool)
    for s in layout(data):
        inside[slice(*s["data"])] = True
    path = tmp_path / "flip.lm"
    checked = 0
    for i in range(len(data)):
        if inside[i]:
            continue
        bad = bytearray(data)
        bad[i] ^= 0x10
        path.write_bytes(bytes(bad))
        with pytest.raises(LmError):
            map_model(str(path)) or load_model(str(path))  # a changed magic or version is not mapped
        checked += 1
    assert checked > 200


def _flipped_in_data(tmp_path, array: str, at: int = 0) -> tuple[str, bytes]:
    data = bytearray(plain_bytes(_dense_bigram()))
    span = next(s["data"] for s in layout(bytes(data)) if s["name"] == array)
    data[span[0] + at] ^= 0x01
    return _file(tmp_path, bytes(data), "flipped.lm"), bytes(data)


def test_flipped_data_caught_by_the_verify_path_and_on_first_read(tmp_path, monkeypatch):
    path, data = _flipped_in_data(tmp_path, "logprob_2", 4 * 1000)
    m = load_model(path)  # mapped: the large arrays' checksums are left to the first read
    assert m.ngrams.unchecked(1).shape == (600 * 600, 2) and m.sizes() == [600, 360000]
    with pytest.raises(LmError, match="checksum of array 'logprob_2'"):
        m.logprob[1]
    with pytest.raises(LmError, match="checksum of array 'logprob_2'"):
        load_model(path, verify=True)
    monkeypatch.setenv("LMTOOLS_VERIFY", "1")
    with pytest.raises(LmError, match="checksum of array 'logprob_2'"):
        load_model(path)
    with pytest.raises(LmError, match="checksum of array 'logprob_2'"):
        load_model(io.BufferedReader(io.BytesIO(data)))  # a stream: always checked


@pytest.mark.slow
def test_programs_report_damage_of_a_mapped_file_in_one_line(tmp_path):
    path, _ = _flipped_in_data(tmp_path, "ngrams_2", 8 * 5000)
    text = tmp_path / "t.txt"
    text.write_text("w1 w2 w3\n" * 20000)  # enough text for the table-building path
    r = run_prog("lm-ppl", "-m", path, text)
    lines = r.stderr.decode().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "checksum of array 'ngrams_2'" in lines[0], lines
    for args, env in ((["--verify", path], None), ([path], {"LMTOOLS_VERIFY": "1"})):
        r = run_prog("lm-info", *args, env=env)
        lines = r.stderr.decode().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and "checksum of array 'ngrams_2'" in lines[0], lines
    assert run_prog("lm-info", path).returncode == 0  # sizes and header only: nothing read
    cut = tmp_path / "cut.lm"
    cut.write_bytes(open(path, "rb").read()[:-5000])
    for prog, args in (("lm-info", [cut]), ("lm-ppl", ["-m", cut, text])):
        r = run_prog(prog, *args)
        lines = r.stderr.decode().splitlines()
        assert r.returncode == 1 and lines == [f"{prog}: error: {cut}: model file is truncated; the writer was "
                                               f"interrupted; recreate the model"], lines


def test_contents_checked_on_first_read_of_an_order(tmp_path, monkeypatch):
    # ids out of range written with a valid checksum: refused when the order is read, before any kernel
    monkeypatch.setattr(modelfile, "EAGER_BYTES", 64)
    m = _dense_bigram(40)
    m.ngrams[1] = m.ngrams[1].copy()
    m.ngrams[1][100, 1] = 40
    path = _file(tmp_path, plain_bytes(m))
    loaded = load_model(path)
    assert loaded.logprob[0].shape == (40,)  # order 1 is fine
    with pytest.raises(LmError, match="order 2 ids out of range"):
        loaded.ngrams[1]
    with pytest.raises(LmError, match="order 2 ids out of range"):
        list(loaded.backoff)
    with pytest.raises(LmError, match="order 2 ids out of range"):
        load_model(path, verify=True)
    from lmtools.kinds import scorer_for

    with pytest.raises(LmError, match="order 2 ids out of range"):
        scorer_for(load_model(path)).line_scores(b"w1 w2\n" * 50000)


def test_trailing_bytes_after_a_mapped_model(tmp_path):
    data = _models()["ngram"]
    for extra in (b"\x00", b"x" * 100, data):
        with pytest.raises(LmError, match="trailing data after the model"):
            load_model(_file(tmp_path, data + extra))


# ----------------------------------------------------------------------------------------------
# Older formats


def test_format_2_still_loads_without_a_warning(tmp_path, capsys):
    for kind in ("ngram", "counts"):
        h, arrays = read_model(io.BytesIO(_models()[kind]))
        old = v2_bytes(kind, {k: v for k, v in h.items() if k not in ("kind", "arrays")}, arrays)
        path = _file(tmp_path, old, f"{kind}2.lm")
        assert map_model(path) is None  # read as a stream
        for source in (path, io.BufferedReader(_Pipe(old))):
            got = load_model(source)
            want = load_model(io.BufferedReader(io.BytesIO(_models()[kind])))
            for a, b in zip(_arrays_of(got), _arrays_of(want)):
                assert np.array_equal(a, b)
        assert capsys.readouterr().err == ""
        bad = bytearray(old)
        bad[-30] ^= 1  # inside the last array's data
        with pytest.raises(LmError, match="checksum of array"):
            load_model(_file(tmp_path, bytes(bad), "bad2.lm"))
        new = tmp_path / f"{kind}3.lm"
        rewrite(path, str(new))
        assert new.read_bytes() == _models()[kind]  # the rewrite is what the writer writes


def test_format_1_from_a_path_warns_once(tmp_path, capsys):
    from .test_modelfile import _v1_bytes

    h, arrays = read_model(io.BytesIO(_models()["ngram"]))
    old = _v1_bytes("ngram", {k: v for k, v in h.items() if k not in ("kind", "arrays")}, arrays)
    m = load_model(_file(tmp_path, old))
    assert m.vocab == h["vocab"]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "format 1 has no header checksum" in err[0]


def test_rewrite_command_makes_format_3(tmp_path):
    h, arrays = read_model(io.BytesIO(_models()["ffnn"]))
    old = _file(tmp_path, v2_bytes("ffnn", {k: v for k, v in h.items() if k not in ("kind", "arrays")}, arrays))
    new = tmp_path / "new.lm"
    command = modelfile.rewrite_command("ffnn", str(old)).split()  # what a reader of an old file says to run
    assert command[:2] == ["python3", "-m"] and command[3] == str(old)
    r = subprocess.run([sys.executable, "-m", command[2], old, str(new)], capture_output=True)
    assert r.returncode == 0 and r.stderr == b""
    assert new.read_bytes() == _models()["ffnn"]


def test_descriptor_lengths_are_64_bit():
    # a length beyond 32 bits is written and read as such (the data itself is not there: truncated)
    data = _models()["counts"]
    s = layout(data)[0]
    n = (1 << 33) // 4
    desc = msgpack.packb([s["name"], "<u4", [n], 4 * n, 0])
    at = s["desc"][0]
    head = data[:at] + len(desc).to_bytes(4, "little") + desc + zlib.crc32(desc).to_bytes(4, "little")
    head += bytes(-len(head) % 64)
    with pytest.raises(LmError, match="truncated"):
        read_model(io.BufferedReader(_Pipe(head + b"\x00" * 5000)))
    h, _ = ngram_to_parts(_dense_bigram(10))
    assert modelfile._descriptor(desc, s["name"], lambda w: LmError(w, "x"))[2] == 1 << 33


_SCORE_AND_REPORT = r"""
import sys
import numpy as np
from lmtools.kinds import load_scorer
path, text = sys.argv[1], sys.argv[2].encode()
scorer = load_scorer([path], [])
scorer.line_scores(text)
tab = scorer.stored.tab  # the mapped hash table: read all of it, as a long scoring run would
assert not tab.flags.owndata
int(np.bitwise_xor.reduce(tab[::2]))
fields, inside = {}, False
with open("/proc/self/smaps") as f:
    for line in f:
        head = line.split(" ", 1)[0]
        if "-" in head and ":" not in head:
            inside = line.rstrip().endswith(path)
        elif inside and line.split()[-1] == "kB":
            k, v = line.split()[:2]
            fields[k.rstrip(":")] = fields.get(k.rstrip(":"), 0) + int(v)
# a page of the file mapped by two processes is Shared_(Clean|Dirty) (dirty: not yet written back
# since the file was made); a copy would be Anonymous
print(fields.get("Rss", 0), fields.get("Shared_Clean", 0) + fields.get("Shared_Dirty", 0), fields.get("Anonymous", 0),
      flush=True)
sys.stdin.read()  # hold the mapping until told to go
"""


def test_two_processes_scoring_with_one_model_share_its_pages(tmp_path):
    """A model opened by path is the page cache's pages, mapped: a second process scoring with it
    maps the same pages (smaps Shared_Clean/Shared_Dirty), copies nothing (Anonymous 0)."""
    buf = io.BytesIO()
    save_model(_dense_bigram(), buf)
    path = _file(tmp_path, buf.getvalue())
    rng = np.random.default_rng(1)
    text = "\n".join(" ".join(f"w{i}" for i in rng.integers(0, 597, 30)) for _ in range(200))
    procs, seen = [], []
    try:
        for _ in range(2):  # the second starts once the first has read the whole table
            procs.append(subprocess.Popen([sys.executable, "-c", _SCORE_AND_REPORT, path, text], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE))
            seen.append([int(x) for x in procs[-1].stdout.readline().split()])
    finally:
        for p in procs:
            p.communicate(b"")
    first, second = seen
    table_kb = load_model(path).query.tab.nbytes // 1024
    for rss, shared, copied in (first, second):
        assert rss >= table_kb and copied == 0, (rss, table_kb, copied)
    # the second process's pages of the file are mapped by the first too
    assert second[1] >= table_kb, (second, table_kb)
