"""The lmtools model file: one msgpack stream, readable from a pipe (no seeking).

Layout (documented for users in man/lmtools-model.5), a sequence of msgpack objects:

1. the string ``"lmtools-model"`` (the magic: every file starts with the bytes ``\\xadlmtools-model``);
2. the format version, an integer (``FORMAT_VERSION``);
3. the header, a map: ``kind`` ("counts", "ngram", "ffnn"), ``order``, ``vocab`` (list of words,
   id = position), ``provenance`` (program, version, options, inputs, token count) and kind-specific
   keys; ``arrays`` lists the names of the arrays that follow, in order;
4. one map per array: ``name``, ``dtype`` (numpy dtype string, little-endian), ``shape``, ``crc32``
   (of the data bytes) and ``data`` (a msgpack bin holding the C-order bytes);
5. the trailer map ``{"end": number of arrays}``: a file without it was cut short.

Readers refuse a truncated, corrupt (checksum), foreign or newer-version file with one line.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

import msgpack
import numpy as np

from lmtools.errors import LmError

MAGIC = "lmtools-model"
MAGIC_BYTES = b"\xad" + MAGIC.encode()
FORMAT_VERSION = 1
KINDS = ("counts", "ngram", "ffnn")

# msgpack refuses objects larger than its buffer; model arrays can be gigabytes.
_MAX_BUFFER = 2**32 - 1
_ALLOWED_DTYPES = {"<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8", "<f4", "<f8", "|i1", "|u1", "|b1"}


def _crc(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def write_model(stream: BinaryIO, kind: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write a model of ``kind`` with ``header`` (plain msgpack-able values) and named arrays."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    head = dict(header)
    head["kind"] = kind
    head["arrays"] = list(arrays)
    packer = msgpack.Packer(use_bin_type=True)
    stream.write(packer.pack(MAGIC))
    stream.write(packer.pack(FORMAT_VERSION))
    stream.write(packer.pack(head))
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        arr = arr.astype(dt, copy=False)
        data = memoryview(arr).cast("B") if arr.size else b""
        meta = {"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "crc32": _crc(data)}
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


def read_model(stream: BinaryIO, name: str = "input") -> tuple[dict, dict[str, np.ndarray]]:
    """Read a model file from a binary stream; returns (header, arrays). Arrays are read-only views.

    ``name`` is the file name used in error messages.
    """
    first = stream.read(len(MAGIC_BYTES))
    if first != MAGIC_BYTES:
        if not first:
            raise LmError(f"{name}: empty input, expected an lmtools model", "give a model file or pipe one in")
        what = _guess_foreign(first)
        raise LmError(f"{name}: not an lmtools model file{what}",
                      "give a model written by lm-count or lm-train, or an ARPA file")
    unpacker = msgpack.Unpacker(stream, raw=False, max_buffer_size=_MAX_BUFFER, read_size=1 << 20)
    try:
        version = unpacker.unpack()
        if not isinstance(version, int):
            raise LmError(f"{name}: corrupt model file (bad version field)", "recreate the model")
        if version > FORMAT_VERSION:
            raise LmError(f"{name}: model file format {version} is newer than this lmtools reads ({FORMAT_VERSION})",
                          "upgrade lmtools or rebuild the model with this version")
        if version < 1:
            raise LmError(f"{name}: corrupt model file (format {version})", "recreate the model")
        header = unpacker.unpack()
        if not isinstance(header, dict) or header.get("kind") not in KINDS:
            raise LmError(f"{name}: corrupt model header", "recreate the model")
        names = header.get("arrays", [])
        arrays: dict[str, np.ndarray] = {}
        for expected in names:
            item = unpacker.unpack()
            arrays[expected] = _decode_array(item, expected, name)
        trailer = unpacker.unpack()
    except msgpack.OutOfData:
        raise LmError(f"{name}: model file is truncated", "the writer was interrupted; recreate the model") from None
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise LmError(f"{name}: corrupt model file ({type(e).__name__})", "recreate the model") from None
    if trailer != {"end": len(names)}:
        raise LmError(f"{name}: corrupt model file (bad trailer)", "recreate the model")
    return header, arrays


def _decode_array(item, expected: str, name: str) -> np.ndarray:
    if not isinstance(item, dict) or item.get("name") != expected:
        raise LmError(f"{name}: corrupt model file (array {expected!r} missing)", "recreate the model")
    dtype = item.get("dtype")
    if dtype not in _ALLOWED_DTYPES:
        raise LmError(f"{name}: corrupt model file (array {expected!r} has dtype {dtype!r})", "recreate the model")
    data = item.get("data", b"")
    if _crc(data) != item.get("crc32"):
        raise LmError(f"{name}: model file is corrupt (checksum of array {expected!r} does not match)",
                      "recreate the model")
    shape = tuple(item.get("shape", ()))
    arr = np.frombuffer(data, dtype=np.dtype(dtype))
    if int(np.prod(shape, dtype=np.int64)) != arr.size:
        raise LmError(f"{name}: corrupt model file (array {expected!r} has the wrong size)", "recreate the model")
    return arr.reshape(shape)


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
