"""The lmtools model file: one msgpack stream, readable from a pipe (no seeking).

Layout of format 2 (documented for users in man/lmtools-model.5), a sequence of msgpack objects:

1. the string ``"lmtools-model"`` (the magic: every file starts with the bytes ``\\xadlmtools-model``);
2. the format version, an integer (``FORMAT_VERSION``);
3. the header map, packed with msgpack and stored as a msgpack bin: ``kind`` ("counts", "ngram",
   "ffnn"), ``order``, ``vocab`` (list of words, id = position), ``provenance`` (program, version,
   options, inputs, token count) and kind-specific keys; ``arrays`` lists the names of the arrays
   that follow, in order;
4. the CRC-32 (zlib's) of the header bin's bytes, an integer;
5. one map per array, keys in this order: ``name``, ``dtype`` (numpy dtype string, little-endian),
   ``shape``, ``crc32`` and ``data`` (a msgpack bin holding the C-order bytes); ``crc32`` is the
   CRC-32 of the msgpack bytes of ``[name, dtype, shape]`` followed by the data bytes;
6. the trailer map ``{"end": number of arrays}``: a file without it was cut short; nothing follows it.

Format 1 (still read, with a warning): the header is the map itself, not covered by a checksum, and
an array's ``crc32`` covers its data bytes only.

Readers refuse a truncated, corrupt (checksum, types), foreign or newer-version file with one line.
Nothing is allocated for what a file claims before the bytes are there: a claimed length beyond the
end of a regular file is "truncated" at once, and from a pipe or a compressed stream array data is
read in growing pieces, so memory follows the bytes actually read.
"""

from __future__ import annotations

import io
import os
import stat
import zlib
from typing import BinaryIO

import msgpack
import numpy as np

from lmtools.constants import ASCII_WHITESPACE
from lmtools.errors import LmError

MAGIC = "lmtools-model"
MAGIC_BYTES = b"\xad" + MAGIC.encode()
FORMAT_VERSION = 2
KINDS = ("counts", "ngram", "ffnn")

_ALLOWED_DTYPES = {"<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8", "<f4", "<f8", "|i1", "|u1", "|b1"}
_ARRAY_KEYS = ("name", "dtype", "shape", "crc32")
_SMALL = 4096  # first window for a small msgpack object (header fields, array metadata)
_PIECE = 1 << 20  # smallest read of array data from a stream of unknown length
_RECREATE = "recreate the model"
_ASCII_SPACE = frozenset(ASCII_WHITESPACE)


def _crc(data, start: int = 0) -> int:
    return zlib.crc32(data, start) & 0xFFFFFFFF


def _meta_crc(name: str, dtype: str, shape) -> int:
    return zlib.crc32(msgpack.packb([name, dtype, list(shape)], use_bin_type=True))


# ----------------------------------------------------------------------------------------------
# Writing


def write_model(stream: BinaryIO, kind: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write a model of ``kind`` with ``header`` (plain msgpack-able values) and named arrays."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    head = dict(header)
    head["kind"] = kind
    head["arrays"] = list(arrays)
    packer = msgpack.Packer(use_bin_type=True)
    packed_head = packer.pack(head)
    stream.write(packer.pack(MAGIC))
    stream.write(packer.pack(FORMAT_VERSION))
    stream.write(packer.pack(packed_head))  # bytes: a msgpack bin
    stream.write(packer.pack(_crc(packed_head)))
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        arr = arr.astype(dt, copy=False)
        data = memoryview(arr).cast("B") if arr.size else b""
        dtype, shape = arr.dtype.str, [int(s) for s in arr.shape]
        meta = {"name": name, "dtype": dtype, "shape": shape, "crc32": _crc(data, _meta_crc(name, dtype, shape))}
        # Pack the map header and the bin header by hand so that the (possibly huge) data is
        # written straight from the array's memory instead of being copied into one bytes object.
        stream.write(packer.pack_map_header(len(meta) + 1))
        for k, v in meta.items():
            stream.write(packer.pack(k))
            stream.write(packer.pack(v))
        stream.write(packer.pack("data"))
        stream.write(_bin_header(len(data)))
        stream.write(data)
    stream.write(packer.pack({"end": len(arrays)}))
    stream.flush()


def _bin_header(n: int) -> bytes:
    if n < 2**8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 2**16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


# ----------------------------------------------------------------------------------------------
# Reading


def stream_size(stream) -> int | None:
    """Bytes left in ``stream`` from its position when that is known (a regular file, bytes in
    memory), else None (a pipe, a terminal, a decompressing reader)."""
    try:
        if isinstance(stream, io.BytesIO):
            with stream.getbuffer() as b:
                return max(0, b.nbytes - stream.tell())
        if isinstance(stream, io.BufferedReader):
            raw = stream.raw
            if isinstance(raw, io.BytesIO):
                with raw.getbuffer() as b:
                    return max(0, b.nbytes - stream.tell())
            if not isinstance(raw, io.FileIO):
                return None
        elif not isinstance(stream, io.FileIO):
            return None
        st = os.fstat(stream.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(0, st.st_size - stream.tell())
    except (OSError, ValueError, AttributeError):
        return None


class _Reader:
    """Reads a model stream: small msgpack objects and array data.

    Memory follows the bytes actually there: a small object is parsed from a window of the bytes
    read so far (so a length it claims cannot exceed what was read), and array data of a stream of
    known size is refused at once when it claims more than the stream holds."""

    def __init__(self, stream: BinaryIO, name: str, size: int | None):
        self.stream = stream
        self.name = name
        self.left = size  # bytes of the stream not read yet (None: unknown)
        self.buf = b""
        self.pos = 0
        self._read = getattr(stream, "read1", None) or stream.read

    # -- errors
    def truncated(self) -> LmError:
        return LmError(f"{self.name}: model file is truncated", "the writer was interrupted; recreate the model")

    def corrupt(self, what: str) -> LmError:
        return LmError(f"{self.name}: corrupt model file ({what})", _RECREATE)

    # -- bytes
    def _more(self, want: int) -> bool:
        if self.left is not None:
            want = min(want, self.left)
            if want <= 0:
                return False
        chunk = self._read(want)
        if not chunk:
            return False
        if self.left is not None:
            self.left -= len(chunk)
        self.buf = self.buf[self.pos:] + bytes(chunk)
        self.pos = 0
        return True

    def unpack(self, what: str):
        """The next msgpack object (small: a header field, array metadata, the trailer)."""
        window = _SMALL
        while True:
            avail = len(self.buf) - self.pos
            n = min(window, avail)
            if n:
                u = msgpack.Unpacker(raw=False, max_buffer_size=n)
                u.feed(self.buf[self.pos:self.pos + n])
                try:
                    obj = u.unpack()
                    self.pos += u.tell()
                    return obj
                except msgpack.OutOfData:
                    pass
                except (msgpack.FormatError, msgpack.StackError, TypeError):
                    raise self.corrupt(what) from None
                except ValueError as e:  # a length beyond the window: wait for more bytes
                    if "exceeds max_" not in str(e):
                        raise self.corrupt(what) from None
            if n < avail:
                window *= 2
                continue
            if not self._more(max(1 << 16, avail)):
                raise self.truncated()
            window = max(window * 2, _SMALL)

    def take(self, n: int):
        """The next n bytes (bytes or a uint8 array); never allocates more than the stream can hold."""
        avail = len(self.buf) - self.pos
        if n <= avail:
            out = self.buf[self.pos:self.pos + n]
            self.pos += n
            return out
        if self.left is not None and n > avail + self.left:
            raise self.truncated()
        head = self.buf[self.pos:]
        self.buf, self.pos = b"", 0
        if self.left is not None and hasattr(self.stream, "readinto"):
            out = np.empty(n, np.uint8)  # known to be there: read straight into place
            out[:avail] = np.frombuffer(head, np.uint8)
            view = memoryview(out)[avail:]
            while len(view):
                k = self.stream.readinto(view)
                if not k:
                    raise self.truncated()
                self.left -= k
                view = view[k:]
            return out
        out = bytearray(head)
        while len(out) < n:  # pieces that grow with what was read: memory follows the bytes there
            chunk = self.stream.read(min(n - len(out), max(_PIECE, len(out))))
            if not chunk:
                raise self.truncated()
            if self.left is not None:
                self.left -= len(chunk)
            out += chunk
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def uint(self, nbytes: int) -> int:
        return int.from_bytes(bytes(self.take(nbytes)), "big")

    def bin(self, what: str):
        """A msgpack bin: its bytes."""
        tag = self.byte()
        if tag == 0xC4:
            n = self.uint(1)
        elif tag == 0xC5:
            n = self.uint(2)
        elif tag == 0xC6:
            n = self.uint(4)
        else:
            raise self.corrupt(what)
        return self.take(n)

    def at_end(self) -> bool:
        if self.pos < len(self.buf):
            return False
        try:
            return not self.stream.read(1)
        except (OSError, ValueError):
            return True


def read_model(stream: BinaryIO, name: str = "input", size: int | None = None,
               warn_old: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file from a binary stream; returns (header, arrays). Arrays are read-only.

    ``name`` is the file name used in error messages; ``size`` the bytes left in the stream when the
    caller knows it (default: found from the stream itself where it is a regular file). A format-1
    file is read with one warning line (``warn_old``) saying how to rewrite it."""
    if size is None:
        size = stream_size(stream)
    first = b""
    while len(first) < len(MAGIC_BYTES):
        part = stream.read(len(MAGIC_BYTES) - len(first))
        if not part:
            break
        first += part
    if first != MAGIC_BYTES:
        if not first:
            raise LmError(f"{name}: empty input, expected an lmtools model", "give a model file or pipe one in")
        what = _guess_foreign(first)
        raise LmError(f"{name}: not an lmtools model file{what}",
                      "give a model written by lm-count or lm-train, or an ARPA file")
    r = _Reader(stream, name, None if size is None else size - len(first))
    version = r.unpack("version")
    if type(version) is not int:
        raise r.corrupt("bad version field")
    if version > FORMAT_VERSION:
        raise LmError(f"{name}: model file format {version} is newer than this lmtools reads ({FORMAT_VERSION})",
                      "upgrade lmtools or rebuild the model with this version")
    if version < 1:
        raise r.corrupt(f"format {version}")
    if version == 1:
        header = r.unpack("header")
    else:
        packed = r.bin("header")
        crc = r.unpack("header checksum")
        if type(crc) is not int or crc != _crc(packed):
            raise LmError(f"{name}: corrupt model header (checksum does not match)", _RECREATE)
        n = max(1, len(packed))
        try:
            header = msgpack.unpackb(bytes(packed), raw=False, max_str_len=n, max_bin_len=n, max_array_len=n,
                                     max_map_len=n, max_ext_len=n)
        except (ValueError, TypeError, msgpack.StackError):
            raise LmError(f"{name}: corrupt model header", _RECREATE) from None
    check_header(header, name)
    names = header["arrays"]
    arrays: dict[str, np.ndarray] = {}
    for expected in names:
        arrays[expected] = _read_array(r, expected, version)
    trailer = r.unpack("trailer")
    if not (isinstance(trailer, dict) and list(trailer) == ["end"] and type(trailer["end"]) is int
            and trailer["end"] == len(names)):
        raise r.corrupt("bad trailer")
    if not r.at_end():
        raise LmError(f"{name}: trailing data after the model", "the file holds more than one model or was "
                      "damaged; recreate it")
    if version == 1 and warn_old:
        from lmtools.messages import warn

        warn(f"{name}: model file format 1 has no header checksum; rewrite it with this lmtools: "
             f"{rewrite_command(header['kind'], name)}")
    return header, arrays


def rewrite_command(kind: str, name: str) -> str:
    """A command that rewrites a model file of ``kind`` in the current format."""
    old = name if name not in ("<stdin>", "input") else "OLD.lm"
    if kind == "counts":
        return f"lm-merge {old} -o NEW.lm"
    if kind == "ngram":
        return f"lm-train {old} -o NEW.lm"
    return f"python3 -m lmtools.io.modelfile {old} NEW.lm"


def _read_array(r: _Reader, expected: str, version: int) -> np.ndarray:
    tag = r.byte()
    if 0x80 <= tag <= 0x8F:
        k = tag & 0x0F
    elif tag == 0xDE:
        k = r.uint(2)
    elif tag == 0xDF:
        k = r.uint(4)
    else:
        raise r.corrupt(f"array {expected!r} missing")
    if k != len(_ARRAY_KEYS) + 1:
        raise r.corrupt(f"array {expected!r} missing")
    meta = {}
    for key in _ARRAY_KEYS:
        if r.unpack(f"array {expected!r}") != key:
            raise r.corrupt(f"array {expected!r} missing")
        meta[key] = r.unpack(f"array {expected!r}")
    if meta["name"] != expected:
        raise r.corrupt(f"array {expected!r} missing")
    dtype, shape, crc = meta["dtype"], meta["shape"], meta["crc32"]
    if dtype not in _ALLOWED_DTYPES:
        raise r.corrupt(f"array {expected!r} has dtype {dtype!r}")
    if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)) or type(crc) is not int:
        raise r.corrupt(f"array {expected!r}")
    if r.unpack(f"array {expected!r}") != "data":
        raise r.corrupt(f"array {expected!r} missing")
    itemsize = np.dtype(dtype).itemsize
    nbytes = itemsize
    for s in shape:
        nbytes *= s
    tag = r.byte()
    if tag not in (0xC4, 0xC5, 0xC6) or r.uint({0xC4: 1, 0xC5: 2, 0xC6: 4}[tag]) != nbytes:
        raise r.corrupt(f"array {expected!r} has the wrong size")
    data = r.take(nbytes)
    start = _meta_crc(expected, dtype, shape) if version >= 2 else 0
    if _crc(data, start) != crc:
        raise LmError(f"{r.name}: model file is corrupt (checksum of array {expected!r} does not match)",
                      _RECREATE)
    arr = np.frombuffer(data, np.uint8).view(np.dtype(dtype)).reshape(shape)
    arr.flags.writeable = False
    return arr


# ----------------------------------------------------------------------------------------------
# The header: types of its fields


def _count(v) -> bool:  # a non-negative int (bool is not an int here)
    return type(v) is int and v >= 0


def _positive(v) -> bool:
    return type(v) is int and v >= 1


def _int_list(v) -> bool:
    return isinstance(v, list) and all(_count(x) for x in v)


def _str_list(v) -> bool:
    return isinstance(v, list) and all(type(x) is str for x in v)


# field: test of its value, per kind (None: every kind); fields not listed are free
_FIELDS = {
    None: {"order": _positive, "vocab": _str_list, "arrays": _str_list, "provenance": lambda v: isinstance(v, dict),
           "text": lambda v: isinstance(v, dict)},
    "counts": {"tokens": _count, "sentences": _count, "sizes": _int_list},
    "ngram": {"method": lambda v: type(v) is str, "info": lambda v: isinstance(v, dict),
              "scores_only": lambda v: type(v) is bool, "sizes": _int_list},
    "ffnn": {"ffnn_format": _count, "context": _positive, "dim": _count, "hidden": _count,
             "activation": lambda v: type(v) is str, "output_layer": lambda v: v in ("softmax", "class"),
             "classes": _count},
}
_REQUIRED = {None: ("order", "vocab", "arrays"), "counts": (), "ngram": (), "ffnn": ("context",)}


def header_error(name: str, field: str) -> LmError:
    return LmError(f"{name}: corrupt model header (field {field})", _RECREATE)


def check_header(header, name: str) -> None:
    """Refuse a header whose fields are missing or of the wrong type, or whose vocabulary is not a
    list of distinct words (non-empty, no ASCII whitespace) starting with <unk> <s> </s>."""
    from lmtools.vocab import SPECIALS

    if not isinstance(header, dict):
        raise LmError(f"{name}: corrupt model header", _RECREATE)
    kind = header.get("kind")
    if kind not in KINDS:
        raise header_error(name, "kind")
    for scope in (None, kind):
        for field in _REQUIRED[scope]:
            if field not in header:
                raise header_error(name, field)
        for field, ok in _FIELDS[scope].items():
            if field in header and not ok(header[field]):
                raise header_error(name, field)
    names = header["arrays"]
    if len(set(names)) != len(names):
        raise header_error(name, "arrays")
    vocab = header["vocab"]
    if vocab[:3] != list(SPECIALS) or len(set(vocab)) != len(vocab):
        raise header_error(name, "vocab")
    joined = "\x00".join(vocab)
    if "" in vocab or "\x00\x00" in joined or not _ASCII_SPACE.isdisjoint(joined) \
            or joined.count("\x00") != len(vocab) - 1:
        raise header_error(name, "vocab")


def _guess_foreign(first: bytes) -> str:
    if first.startswith(b"\\data\\") or first.lstrip().startswith(b"\\data"):
        return " (it looks like an ARPA file)"
    if first[:2] == b"\x1f\x8b":
        return " (it is gzip-compressed)"
    try:
        first.decode("utf-8")
        return " (it looks like text)"
    except UnicodeDecodeError:
        return ""


def peek_is_model(first_bytes: bytes) -> bool:
    """True when the first bytes of a stream are an lmtools model's magic."""
    return first_bytes[: len(MAGIC_BYTES)] == MAGIC_BYTES


def rewrite(source: str, target: str) -> None:
    """Rewrite a model file (any kind, any readable format) in the current format, unchanged otherwise."""
    from lmtools.io.text import open_binary

    stream = open_binary(source)
    try:
        header, arrays = read_model(stream, source, warn_old=False)
    finally:
        stream.close()
    kind = header.pop("kind")
    header.pop("arrays")
    tmp = target + ".part"
    with open(tmp, "wb") as f:
        write_model(f, kind, header, arrays)
    os.replace(tmp, target)


if __name__ == "__main__":  # python3 -m lmtools.io.modelfile OLD NEW: rewrite in the current format
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python3 -m lmtools.io.modelfile OLD.lm NEW.lm  (rewrites a model in the current format)")
    try:
        rewrite(sys.argv[1], sys.argv[2])
    except LmError as e:
        sys.exit(f"lmtools: error: {e}")
