"""Text inputs cut into byte ranges at line boundaries, so that one large file is read by many workers
(lm-count --dask).

A range ``[start, end)`` of a file holds the lines whose newline lies in ``(q_start, q_end]``, where
``q_x`` is the position of the first newline at or after offset ``x`` (``q_0 = -1``: the first range
starts at byte 0). So a range starts after the first newline at or after its start offset (except the
first) and ends with the first newline at or after its end offset; every line belongs to exactly one
range of a file whatever the cut points, and reading the ranges in turn gives the file's lines in
order. A last line without a newline ends at the end of the file. A compressed file (gzip, bzip2, xz:
told by its magic bytes) cannot be entered in the middle: it is one range, read whole.

Inputs are local paths, glob patterns (expanded, sorted) and, when fsspec is installed, URLs that
fsspec reads (``file://``, ``s3://`` with s3fs, ...). Every reader of a range must see the file at the
same path or URL: on a cluster, a shared filesystem or object store.

Errors name the file and an absolute byte offset (of the decompressed text for a compressed file):
line numbers are unknown inside a range (the lines before it are read elsewhere).
"""

from __future__ import annotations

import codecs
import glob
import io
import os
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from lmtools.errors import LmError
from lmtools.io.text import CHUNK_BYTES, Chunk, TextOptions, compression_of, iter_line_chunks, open_binary

_SCAN = 1 << 16  # bytes read at a time while looking for a range's first newline


@dataclass(frozen=True)
class ByteRange:
    """One range of one input file: ``end`` None reads to the end (a compressed file: all of it)."""

    path: str  # a local path or a URL
    start: int
    end: int | None
    index: int  # position of the range among all ranges, in input order
    size: int  # bytes of the file this range covers (for progress)
    compressed: bool = False

    def describe(self) -> str:
        if self.compressed or (self.start == 0 and self.end is None):
            return self.path
        return f"{self.path} bytes {self.start}-{self.end if self.end is not None else 'end'}"


def is_url(path: str) -> bool:
    return "://" in path


def _fsspec(path: str):
    try:
        import fsspec
    except ImportError:
        raise LmError(f"{path}: a URL input needs fsspec", "pip install fsspec (and its plugin for the "
                      "protocol, e.g. s3fs), or give a local path") from None
    try:
        fs, inner = fsspec.core.url_to_fs(path)
    except (ImportError, ValueError) as e:
        raise LmError(f"{path}: cannot read this URL ({e})", "install the fsspec plugin for its protocol") from None
    return fs, inner


def expand_inputs(patterns: list[str]) -> list[str]:
    """Paths and URLs of the inputs: a glob pattern (``*``, ``?``, ``[``) that names no existing file is
    expanded (sorted); one that matches nothing is an error, as is a missing file."""
    out: list[str] = []
    for p in patterns:
        if is_url(p):
            fs, inner = _fsspec(p)
            if glob.has_magic(inner) and not fs.exists(inner):
                protocol = p.split("://", 1)[0]
                found = sorted(fs.glob(inner))
                if not found:
                    raise LmError(f"{p}: no file matches", "check the pattern")
                out.extend(f"{protocol}://{f}" if "://" not in f else f for f in found)
            else:
                out.append(p)
            continue
        if glob.has_magic(p) and not os.path.lexists(p):
            found = sorted(glob.glob(p))
            if not found:
                raise LmError(f"{p}: no file matches", "check the pattern")
            out.extend(found)
        else:
            out.append(p)
    return out


def _url_size_and_kind(path: str) -> tuple[int, bool]:
    """(bytes, compressed) of an input given by URL."""
    fs, inner = _fsspec(path)
    try:
        size = int(fs.size(inner))
        with fs.open(inner, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise LmError(f"{path}: no such file", "check the URL") from None
    except OSError as e:
        raise LmError(f"{path}: cannot read ({e})", "check the URL") from None
    return size, compression_of(magic) is not None


def plan_ranges(paths: list[str], range_bytes: int) -> list[ByteRange]:
    """The byte ranges of the inputs, in input order: each uncompressed file cut every ``range_bytes``
    bytes (the cuts moved to line boundaries when read), each compressed file one range."""
    if range_bytes < 1:
        raise ValueError("range_bytes must be positive")
    ranges: list[ByteRange] = []
    for path in paths:
        size, compressed = _size_and_kind_raw(path)
        if compressed or size <= range_bytes:
            ranges.append(ByteRange(path, 0, None, len(ranges), size, compressed))
            continue
        for start in range(0, size, range_bytes):
            end = start + range_bytes
            ranges.append(ByteRange(path, start, end if end < size else None, len(ranges),
                                    min(end, size) - start))
    return ranges


def input_bytes(paths: list[str]) -> int:
    """Total bytes of the inputs (as stored: compressed files by their compressed size)."""
    return sum(_size_and_kind_raw(p)[0] for p in paths)


def _size_and_kind_raw(path: str) -> tuple[int, bool]:
    if is_url(path):
        return _url_size_and_kind(path)
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise LmError(f"{path}: no such file", "check the path") from None
    except IsADirectoryError:
        raise LmError(f"{path}: is a directory", "give a file") from None
    except PermissionError:
        raise LmError(f"{path}: permission denied", "check the file's permissions") from None
    except OSError as e:
        raise LmError(f"{path}: cannot open ({e.strerror})", "check the path") from None
    return size, compression_of(magic) is not None


# ----------------------------------------------------------------------------------------------
# Reading a range


def _open_raw(path: str) -> BinaryIO:
    """The file's bytes as stored, seekable (a local file or an fsspec file)."""
    if is_url(path):
        fs, inner = _fsspec(path)
        try:
            return fs.open(inner, "rb")
        except FileNotFoundError:
            raise LmError(f"{path}: no such file", "check the URL; every worker must reach it") from None
        except OSError as e:
            raise LmError(f"{path}: cannot read ({e})", "check the URL") from None
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise LmError(f"{path}: no such file on this worker",
                      "put the inputs on a filesystem every worker reads at the same path") from None
    except OSError as e:
        raise LmError(f"{path}: cannot open ({e.strerror})", "check the path") from None


def _open_decompressed(path: str) -> BinaryIO:
    """A compressed input, decompressed (the whole file is one range)."""
    if not is_url(path):
        return open_binary(path)
    import bz2
    import gzip
    import lzma

    raw = _open_raw(path)
    kind = compression_of(raw.read(6))
    raw.seek(0)
    opener = {"gzip": lambda f: gzip.GzipFile(fileobj=f, mode="rb"), "bzip2": lambda f: bz2.BZ2File(f, mode="rb"),
              "xz": lambda f: lzma.LZMAFile(f, mode="rb")}.get(kind)
    return opener(raw) if opener else raw


class _RangeReader(io.RawIOBase):
    """The bytes of one range of an uncompressed file (see the module's rule), with the strict checks
    that need absolute offsets: no NUL byte, and (``strict_utf8``) valid UTF-8."""

    def __init__(self, f: BinaryIO, r: ByteRange, strict_utf8: bool):
        self.f, self.r = f, r
        self.pos = self._first_line_start()  # absolute offset of the next byte handed out
        self.begin = self.pos
        self.done = self.pos is None
        self.strict = strict_utf8
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def _first_line_start(self) -> int | None:
        """Offset just after the first newline at or after the range's start (0 for a start of 0);
        None when the range holds no line (no newline from its start to its end)."""
        start = self.r.start
        if start == 0:
            return 0
        self.f.seek(start)
        pos = start
        while True:
            block = self.f.read(_SCAN)
            if not block:
                return None
            i = block.find(b"\n")
            if i >= 0:
                first = pos + i + 1
                if self.r.end is not None and first > self.r.end:
                    return None  # that newline is the previous range's last
                self.f.seek(first)
                return first
            pos += len(block)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.done:
            return 0
        end = self.r.end
        if end is None or self.pos < end:
            want = len(b) if end is None else min(len(b), end - self.pos)
            data = self.f.read(want)
        else:  # past the end offset: up to and including the first newline
            data = self.f.read(min(len(b), _SCAN))
            i = data.find(b"\n")
            if i >= 0:
                data = data[: i + 1]
                self.done = True
        if not data:
            self.done = True
            self._check(b"", final=True)
            return 0
        self._check(data, final=False)
        n = len(data)
        b[:n] = data
        self.pos += n
        return n

    def _check(self, data: bytes, final: bool) -> None:
        nul = data.find(b"\x00")
        if nul >= 0:
            raise LmError(f"{self.r.path}: binary data (NUL byte) at byte {self.pos + nul}, not text",
                          "give UTF-8 text, one sentence per line")
        if not self.strict:
            return
        pending = self.decoder.getstate()[0]  # an incomplete character carried from the block before
        try:
            self.decoder.decode(data, final=final)
        except UnicodeDecodeError as e:
            joined = pending + data
            raise bad_utf8(self.r.path, self.pos - len(pending) + e.start,
                           joined[e.start] if e.start < len(joined) else 0) from None


def bad_utf8(path: str, offset: int, byte: int, decompressed: bool = False) -> LmError:
    what = " of the decompressed text" if decompressed else ""
    return LmError(f"{path}: invalid UTF-8 at byte {offset}{what} (byte 0x{byte:02x})",
                   "convert the file to UTF-8, or pass --encoding-errors=replace")


class _CheckedStream(io.RawIOBase):
    """A decompressed input read whole, with the same offset-naming checks as a range."""

    def __init__(self, inner: BinaryIO, path: str, strict_utf8: bool):
        self.inner, self.path, self.strict = inner, path, strict_utf8
        self.pos = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.inner.read(len(b))
        final = not data
        nul = data.find(b"\x00")
        if nul >= 0:
            raise LmError(f"{self.path}: binary data (NUL byte) at byte {self.pos + nul} of the decompressed text",
                          "give UTF-8 text, one sentence per line")
        if self.strict:
            pending = self.decoder.getstate()[0]
            try:
                self.decoder.decode(data, final=final)
            except UnicodeDecodeError as e:
                joined = pending + data
                raise bad_utf8(self.path, self.pos - len(pending) + e.start,
                               joined[e.start] if e.start < len(joined) else 0, decompressed=True) from None
        n = len(data)
        b[:n] = data
        self.pos += n
        return n


def iter_range_chunks(r: ByteRange, opts: TextOptions | None = None,
                      chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Validated chunks of whole lines of one range (io.text's reader over the range's bytes)."""
    opts = opts or TextOptions()
    strict = opts.encoding_errors == "strict"
    if r.compressed:
        inner = _open_decompressed(r.path)
        raw = _CheckedStream(inner, r.path, strict)
        shown = r.path
    else:
        inner = _open_raw(r.path)
        raw = _RangeReader(inner, r, strict)
        # line numbers of other errors (a line too long) count from the range's first line
        shown = r.path if r.start == 0 else f"{r.path} (the lines from byte {raw.begin})"
    try:
        stream = io.BufferedReader(raw, buffer_size=1 << 20)
        yield from iter_line_chunks(stream, shown, chunk_bytes, opts)
    finally:
        inner.close()

