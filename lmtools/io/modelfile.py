"""The lmtools model file: readable front to back from a pipe (no seeking), mapped from a path.

Layout of format 3 (documented for users in man/lmtools-model.5):

1. the msgpack string ``"lmtools-model"`` (the magic: every file starts with ``\\xadlmtools-model``);
2. the format version, a msgpack integer (``FORMAT_VERSION``);
3. the header map, packed with msgpack and stored as a msgpack bin: ``kind`` ("counts", "ngram",
   "ffnn"), ``order``, ``vocab`` (list of words, id = position), ``provenance`` (program, version,
   options, inputs, token count) and kind-specific keys; ``arrays`` lists the names of the arrays
   that follow, in order;
4. the CRC-32 (zlib's) of the header bin's bytes, a msgpack integer;
5. per array, no msgpack framing around its data: a descriptor, ``L`` (uint32 little-endian), ``L``
   bytes of msgpack ``[name, dtype, shape, nbytes, crc32 of the data]`` and the CRC-32 of those L
   bytes (uint32 little-endian); zero bytes up to the next multiple of ``ALIGN`` (64) counted from
   the start of the file; then the ``nbytes`` bytes of the array in C order (little-endian dtype).
   Writers store the data's crc32 as a msgpack uint32 always (0xce and 4 bytes, whatever its value),
   so that a descriptor's length does not depend on the data: a writer may reserve an array's place
   and fill in the checksum once the data is written (``write_group``); readers take any msgpack
   integer;
6. the trailer, the msgpack map ``{"end": number of arrays}``: a file without it was cut short;
   nothing follows it.

The data of every array starts at an aligned file offset, so that a reader given a path maps the file
(``map_model``) and hands out numpy views of the mapping: nothing is copied or read at open beyond
the header and the descriptors, and processes that open one model share its pages. The same bytes
stream through a pipe (``read_model``), and lengths are 64-bit: an array may be larger than 4 GiB
(format 2 kept data in msgpack bins, whose length is 32-bit).

A mapped load checks the header's checksum, every descriptor's checksum, the layout (every array
inside the file, zero padding, the trailer at its end) and the checksums of arrays up to
``EAGER_BYTES``; the checksum of a larger array is checked by ``MappedModel.check`` (io.models does it
when a program first reads the array whole, and at open under ``LMTOOLS_VERIFY=1``). A streamed load
checks everything as it reads.

Format 2 (still read): the header as above; each array a msgpack map ``name``, ``dtype``, ``shape``,
``crc32`` (of the msgpack bytes of ``[name, dtype, shape]`` followed by the data), ``data`` (a msgpack
bin); then the trailer. Format 1 (still read, with a warning): the header is the map itself, not
covered by a checksum, and an array's ``crc32`` covers its data bytes only. Both are read as a stream,
into memory, whatever the source.

Readers refuse a truncated, corrupt (checksum, types), foreign or newer-version file with one line.
Nothing is allocated for what a file claims before the bytes are there: a claimed length beyond the
end of a regular file is "truncated" at once, and from a pipe or a compressed stream array data is
read in pieces (at most ``CHUNK`` bytes each), so memory follows the bytes actually read.
"""

from __future__ import annotations

import io
import mmap
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
FORMAT_VERSION = 3
ALIGN = 64  # array data starts at a multiple of this file offset (a cache line; numpy and numba need <= 8)
# Arrays probed at random (a model's query.tab, trie.packed) of this size or more are mapped and written in
# huge pages (advise_random; io.modelwrite): the PTB 5-gram's 55 MB table gained 3-5% from them, within
# noise; a 2 GB table 40%
HUGE_PAGE_MIN_BYTES = 64 << 20
CHUNK = 64 << 20  # array data from a stream is read and checksummed in pieces of at most this (tests set it small)
EAGER_BYTES = 1 << 20  # a mapped load checksums arrays up to this size at once, larger ones when first read whole
_DESC_MAX = 1 << 16  # a descriptor (name, dtype, shape, length, checksum) is far smaller
KINDS = ("counts", "ngram", "ffnn")

_ALLOWED_DTYPES = {"<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8", "<f4", "<f8", "|i1", "|u1", "|b1"}
_ARRAY_KEYS = ("name", "dtype", "shape", "crc32")
_SMALL = 4096  # first window for a small msgpack object (header fields, array metadata)
_PIECE = 1 << 20  # smallest read of array data from a stream of unknown length
_RECREATE = "recreate the model"
_ASCII_SPACE = frozenset(ASCII_WHITESPACE)


def crc32(data, start: int = 0) -> int:
    """zlib's CRC-32 of ``data`` (continuing ``start``), as an unsigned 32-bit integer: every checksum of the format."""
    return zlib.crc32(data, start) & 0xFFFFFFFF


def _meta_crc(name: str, dtype: str, shape) -> int:
    return zlib.crc32(msgpack.packb([name, dtype, list(shape)], use_bin_type=True))


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

    def __init__(self, stream: BinaryIO, name: str, size: int | None, start: int = 0):
        self.stream = stream
        self.name = name
        self.left = size  # bytes of the stream not read yet (None: unknown)
        self.buf = b""
        self.pos = 0
        self.got = start  # bytes taken from the stream so far, counted from the start of the file
        self._read = getattr(stream, "read1", None) or stream.read

    def tell(self) -> int:
        """File offset of the next byte to be parsed (format 3 aligns array data by it)."""
        return self.got - (len(self.buf) - self.pos)

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
        self.got += len(chunk)
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
                self.got += k
                view = view[k:]
            return out
        out = bytearray(head)
        while len(out) < n:  # pieces that grow with what was read: memory follows the bytes there
            chunk = self.stream.read(min(n - len(out), max(_PIECE, len(out))))
            if not chunk:
                raise self.truncated()
            if self.left is not None:
                self.left -= len(chunk)
            self.got += len(chunk)
            out += chunk
        return out

    def data(self, n: int) -> tuple[np.ndarray, int]:
        """The next n bytes (a uint8 array) and their CRC-32, read and checksummed in pieces of at
        most CHUNK bytes: into place when the stream's size is known (refused at once when n exceeds
        it), else into a buffer that grows with what was read."""
        avail = len(self.buf) - self.pos
        if self.left is not None and n > avail + self.left:
            raise self.truncated()
        k = min(n, avail)
        head = self.buf[self.pos:self.pos + k]
        self.pos += k
        crc = crc32(head)
        if k == n:
            return np.frombuffer(head, np.uint8), crc
        self.buf, self.pos = b"", 0
        into = self.left is not None and hasattr(self.stream, "readinto")
        out = np.empty(n, np.uint8) if into else bytearray(head)
        if into:
            out[:k] = np.frombuffer(head, np.uint8)
        while k < n:
            want = min(n - k, CHUNK)
            if into:
                view = memoryview(out)[k:k + want]
                got = self.stream.readinto(view)
                piece = view[:got] if got else b""
            else:
                # a stream of unknown length: grow by what arrived, never by what the file claims
                piece = self.stream.read(min(want, max(_PIECE, k)))
                out += piece
            if not piece:
                raise self.truncated()
            got = len(piece)
            crc = crc32(piece, crc)
            if self.left is not None:
                self.left -= got
            self.got += got
            k += got
        return (out if into else np.frombuffer(out, np.uint8)), crc

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
    parts = iter_model(stream, name, size, warn_old)
    header = next(parts)
    return header, dict(parts)


def iter_model(stream: BinaryIO, name: str = "input", size: int | None = None, warn_old: bool = True):
    """Read a model file from a binary stream one array at a time: yields the header (checked), then
    (name, array) per array in file order (each read whole and checksummed before it is yielded),
    and checks the trailer after the last. Memory holds one array at a time (io.countstream reads a
    sorted count stream through a pipe this way). Same errors as ``read_model``."""
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
    r = _Reader(stream, name, None if size is None else size - len(first), start=len(first))
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
        if type(crc) is not int or crc != crc32(packed):
            raise LmError(f"{name}: corrupt model header (checksum does not match)", _RECREATE)
        n = max(1, len(packed))
        try:
            header = msgpack.unpackb(bytes(packed), raw=False, max_str_len=n, max_bin_len=n, max_array_len=n,
                                     max_map_len=n, max_ext_len=n)
        except (ValueError, TypeError, msgpack.StackError):
            raise LmError(f"{name}: corrupt model header", _RECREATE) from None
    check_header(header, name)
    names = header["arrays"]
    yield header
    for expected in names:
        yield expected, (_read_array3(r, expected) if version >= 3 else _read_array(r, expected, version))
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


def verify_requested() -> bool:
    """True under ``LMTOOLS_VERIFY=1``: a mapped load checks every array's checksum at open."""
    return os.environ.get("LMTOOLS_VERIFY", "") not in ("", "0")


class MappedModel:
    """A format-3 model file mapped read-only: ``header`` and ``arrays`` (numpy views of the mapping,
    read-only; each keeps the mapping alive, so the file may be replaced by a rename meanwhile).

    ``unchecked`` names the arrays whose data checksum was not checked at open (larger than
    EAGER_BYTES); ``check`` checks them, which reads them whole."""

    def __init__(self, name: str, header: dict, arrays: dict, unchecked: dict, buffer: memoryview):
        self.name, self.header, self.arrays = name, header, arrays
        self.unchecked = unchecked  # array name -> (offset, nbytes, crc32)
        self._buffer = buffer

    def check(self, names=None) -> None:
        """Check the data checksums of ``names`` (default: every array not checked yet)."""
        for array in list(self.unchecked) if names is None else names:
            where = self.unchecked.get(array)
            if where is None:
                continue
            at, n, crc = where
            if crc32(self._buffer[at:at + n]) != crc:
                raise _array_crc_error(self.name, array)
            del self.unchecked[array]

    def advise_random(self, names) -> None:
        """Tell the kernel that the arrays ``names`` are read at random (a hash table that queries
        probe here and there): a page fault then reads that page, not the ~2 MB of read-ahead around
        it, which made every probe of a cold table add megabytes to the process's RSS; and that those
        of HUGE_PAGE_MIN_BYTES or more are best mapped in huge pages (MADV_HUGEPAGE): a fault on a page
        not in the page cache reads its aligned 2 MB at once, into a huge page that later probes reach
        through one TLB entry (lm-ppl with an 88M-n-gram model on 10x PTB train: 2.1 s against
        3.5-3.7 s in 4 kB pages; pages already cached stay as they were: modelwrite writes the same
        arrays in huge pages). A smaller table gains little from them and would cost a cold start
        2 MB a fault (the PTB 5-gram's 40 MB table, 100 sentences scored word by word from a cold
        cache: 38 MB of it read in huge pages, 16 MB without). Where the platform has no madvise,
        nothing happens (Linux, macOS and the BSDs have it)."""
        mapping = self._buffer.obj
        advise = getattr(mapping, "madvise", None)
        if advise is None or not len(self._buffer):
            return
        base = np.frombuffer(self._buffer, np.uint8, 1).ctypes.data
        for array in names:
            a = self.arrays.get(array)
            if a is None or not a.nbytes:
                continue
            at = a.ctypes.data - base
            start = at - at % mmap.PAGESIZE  # madvise takes whole pages
            huge = a.nbytes >= HUGE_PAGE_MIN_BYTES
            for flag in (getattr(mmap, "MADV_RANDOM", None), getattr(mmap, "MADV_HUGEPAGE", None) if huge else None):
                if flag is None:
                    continue
                try:
                    advise(flag, start, at + a.nbytes - start)
                except (OSError, ValueError):  # advice only: a kernel that refuses it changes no result
                    pass

    def release(self, names) -> None:
        """Drop the pages that lie wholly inside the arrays ``names`` from the process (madvise
        MADV_DONTNEED): a reader that streams a large file once (lm-train -S reading a sorted count
        stream by path) would otherwise keep every page it read resident, and its RSS would grow to
        the file's size whatever its budget. The arrays stay valid: a page read again is read from the
        file. Where the platform has no madvise, nothing happens."""
        mapping = self._buffer.obj
        advise, flag = getattr(mapping, "madvise", None), getattr(mmap, "MADV_DONTNEED", None)
        if advise is None or flag is None or not len(self._buffer):
            return
        base = np.frombuffer(self._buffer, np.uint8, 1).ctypes.data
        page = mmap.PAGESIZE
        for array in names:
            a = self.arrays.get(array)
            if a is None or not a.nbytes:
                continue
            at = a.ctypes.data - base
            start, end = -(-at // page) * page, (at + a.nbytes) // page * page  # whole pages only
            if end > start:
                try:
                    advise(flag, start, end - start)
                except (OSError, ValueError):  # advice only
                    pass


def map_model(path: str, name: str | None = None, verify: bool | None = None) -> MappedModel | None:
    """Map the format-3 model file at ``path``; None when it is not one (another format, compressed,
    a pipe, a terminal, not there: the caller reads it as a stream, which gives the errors).

    Checked here: the header and its checksum, every descriptor and its checksum, the layout (every
    array inside the file, zero padding, the trailer last), the data checksums of arrays up to
    EAGER_BYTES, or of all of them with ``verify`` (default: ``LMTOOLS_VERIFY``)."""
    name = path if name is None else name
    try:
        st = os.stat(path)  # before opening: opening a named pipe would take its writer's bytes
        if not stat.S_ISREG(st.st_mode) or st.st_size <= len(MAGIC_BYTES):
            return None
        fd = os.open(path, os.O_RDONLY)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size <= len(MAGIC_BYTES) \
                or os.pread(fd, len(MAGIC_BYTES) + 1, 0) != MAGIC_BYTES + bytes([FORMAT_VERSION]):
            return None
        try:
            mapping = mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None  # a file system that cannot map: read it as a stream
    finally:
        os.close(fd)
    return _parse_mapped(memoryview(mapping), name, verify_requested() if verify is None else verify)


def _parse_mapped(buf: memoryview, name: str, verify: bool) -> MappedModel:
    size = len(buf)

    def truncated() -> LmError:
        return LmError(f"{name}: model file is truncated", "the writer was interrupted; recreate the model")

    def corrupt(what: str) -> LmError:
        return LmError(f"{name}: corrupt model file ({what})", _RECREATE)

    def need(end: int) -> None:
        if end > size:
            raise truncated()

    def unpack(at: int, what: str):
        """The small msgpack object at ``at`` and the offset after it."""
        end = min(size, at + _SMALL)
        u = msgpack.Unpacker(raw=False, max_buffer_size=max(1, end - at))
        u.feed(buf[at:end])
        try:
            obj = u.unpack()
        except msgpack.OutOfData:
            raise truncated() if end == size else corrupt(what) from None
        except ValueError as e:  # a length beyond the bytes left (the limits follow the window)
            raise truncated() if end == size and "exceeds max_" in str(e) else corrupt(what) from None
        except (TypeError, msgpack.FormatError, msgpack.StackError):
            raise corrupt(what) from None
        return obj, at + u.tell()

    at = len(MAGIC_BYTES) + 1  # magic, version: checked by map_model
    need(at + 1)
    width = {0xC4: 1, 0xC5: 2, 0xC6: 4}.get(buf[at])
    if width is None:
        raise corrupt("header")
    need(at + 1 + width)
    n = int.from_bytes(buf[at + 1:at + 1 + width], "big")
    need(at + 1 + width + n)
    packed = bytes(buf[at + 1 + width:at + 1 + width + n])
    crc, at = unpack(at + 1 + width + n, "header checksum")
    if type(crc) is not int or crc != crc32(packed):
        raise LmError(f"{name}: corrupt model header (checksum does not match)", _RECREATE)
    m = max(1, len(packed))
    try:
        header = msgpack.unpackb(packed, raw=False, max_str_len=m, max_bin_len=m, max_array_len=m,
                                 max_map_len=m, max_ext_len=m)
    except (ValueError, TypeError, msgpack.StackError):
        raise LmError(f"{name}: corrupt model header", _RECREATE) from None
    check_header(header, name)
    arrays: dict[str, np.ndarray] = {}
    unchecked: dict[str, tuple[int, int, int]] = {}
    for expected in header["arrays"]:
        need(at + 4)
        n = int.from_bytes(buf[at:at + 4], "little")
        if not 0 < n <= _DESC_MAX:
            raise corrupt(f"array {expected!r} missing")
        need(at + 8 + n)
        desc = bytes(buf[at + 4:at + 4 + n])
        if int.from_bytes(buf[at + 4 + n:at + 8 + n], "little") != crc32(desc):
            raise corrupt(f"descriptor of array {expected!r}: checksum does not match")
        dtype, shape, nbytes, crc = _descriptor(desc, expected, corrupt)
        at += 8 + n
        pad = -at % ALIGN
        need(at + pad)
        if any(buf[at:at + pad]):
            raise corrupt(f"padding before array {expected!r}")
        at += pad
        need(at + nbytes)
        dt = np.dtype(dtype)
        arr = np.frombuffer(buf, dt, nbytes // dt.itemsize, at).reshape(shape)  # a view: no copy
        if nbytes <= EAGER_BYTES or verify:
            if crc32(buf[at:at + nbytes]) != crc:
                raise _array_crc_error(name, expected)
        else:
            unchecked[expected] = (at, nbytes, crc)
        arrays[expected] = arr
        at += nbytes
    trailer, at = unpack(at, "trailer")
    if not (isinstance(trailer, dict) and list(trailer) == ["end"] and type(trailer["end"]) is int
            and trailer["end"] == len(arrays)):
        raise corrupt("bad trailer")
    if at != size:
        raise LmError(f"{name}: trailing data after the model", "the file holds more than one model or was "
                      "damaged; recreate it")
    return MappedModel(name, header, arrays, unchecked, buf)


def rewrite_command(kind: str, name: str) -> str:
    """A command that rewrites a model file of ``kind`` in the current format."""
    old = name if name not in ("<stdin>", "input") else "OLD.lm"
    if kind == "counts":
        return f"lm-merge {old} -o NEW.lm"
    if kind == "ngram":
        return f"lm-train {old} -o NEW.lm"
    return f"python3 -m lmtools.io.modelwrite {old} NEW.lm"


def _descriptor(desc: bytes, expected: str, err) -> tuple[str, tuple, int, int]:
    """(dtype, shape, nbytes, crc32) of a format-3 descriptor's msgpack bytes (its checksum already
    checked); ``err(what)`` makes the error for a descriptor that does not describe ``expected``."""
    n = len(desc)
    try:
        fields = msgpack.unpackb(desc, raw=False, max_str_len=n, max_bin_len=n, max_array_len=n, max_map_len=n,
                                 max_ext_len=n)
    except (ValueError, TypeError, msgpack.StackError):
        raise err(f"array {expected!r}") from None
    if not (isinstance(fields, list) and len(fields) == 5):
        raise err(f"array {expected!r}")
    name, dtype, shape, nbytes, crc = fields
    if name != expected:
        raise err(f"array {expected!r} missing")
    if dtype not in _ALLOWED_DTYPES:
        raise err(f"array {expected!r} has dtype {dtype!r}")
    if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)) \
            or type(nbytes) is not int or type(crc) is not int:
        raise err(f"array {expected!r}")
    size = np.dtype(dtype).itemsize
    for s in shape:
        size *= s
    if size != nbytes:
        raise err(f"array {expected!r} has the wrong size")
    return dtype, tuple(shape), nbytes, crc


def _read_array3(r: _Reader, expected: str) -> np.ndarray:
    n = int.from_bytes(bytes(r.take(4)), "little")
    if not 0 < n <= _DESC_MAX:
        raise r.corrupt(f"array {expected!r} missing")
    desc = bytes(r.take(n))
    if int.from_bytes(bytes(r.take(4)), "little") != crc32(desc):
        raise r.corrupt(f"descriptor of array {expected!r}: checksum does not match")
    dtype, shape, nbytes, crc = _descriptor(desc, expected, r.corrupt)
    if any(bytes(r.take(-r.tell() % ALIGN))):
        raise r.corrupt(f"padding before array {expected!r}")
    data, got = r.data(nbytes)
    if got != crc:
        raise _array_crc_error(r.name, expected)
    arr = data.view(np.dtype(dtype)).reshape(shape)
    arr.flags.writeable = False
    return arr


def _array_crc_error(name: str, array: str) -> LmError:
    return LmError(f"{name}: model file is corrupt (checksum of array {array!r} does not match)", _RECREATE)


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
    if crc32(data, start) != crc:
        raise _array_crc_error(r.name, expected)
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
