"""Writing the lmtools model file (the format: lmtools.io.modelfile's docstring, man/lmtools-model.5).

Three ways to the same bytes: arrays in memory written one after another (``write_model_arrays``;
through a mapping of the file by several threads at once when the output is a regular file and the
arrays are large: ``write_model``), arrays on disk copied in chunks (``_put_chunked``), and arrays made
together written straight into their reserved places (``_put_group``, lm-train -S's merge).
"""

from __future__ import annotations

import errno
import io
import mmap
import os
import stat
import threading
from typing import BinaryIO

import msgpack
import numpy as np

from lmtools.errors import LmError
from lmtools.io.modelfile import ALIGN, CHUNK, FORMAT_VERSION, HUGE_PAGE_MIN_BYTES, KINDS, MAGIC, crc32, read_model

def _descriptor_bytes(packer, name: str, dtype: str, shape, nbytes: int, crc: int) -> bytes:
    """An array's descriptor, ``[name, dtype, shape, nbytes, crc]`` in msgpack, the crc as a uint32 of
    fixed width (see lmtools.io.modelfile's docstring: the same length for any checksum)."""
    return (b"\x95" + packer.pack(name) + packer.pack(dtype) + packer.pack([int(s) for s in shape])
            + packer.pack(int(nbytes)) + b"\xce" + (crc & 0xFFFFFFFF).to_bytes(4, "big"))  # fixarray of 5


def _array_head(packer, pos: int, name: str, dtype: str, shape, nbytes: int, crc: int) -> bytes:
    """What precedes an array's data at file offset ``pos``: its descriptor's length, the descriptor,
    its checksum and the zero padding up to the aligned start of the data."""
    desc = _descriptor_bytes(packer, name, dtype, shape, nbytes, crc)
    head = len(desc).to_bytes(4, "little") + desc + crc32(desc).to_bytes(4, "little")
    return head + bytes(-(pos + len(head)) % ALIGN)


def _model_head(packer, kind: str, header: dict, names: list[str]) -> bytes:
    """The bytes before the first array: the magic, the format version, the header (``header`` with
    ``kind`` and the array ``names``) and its checksum."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    head = dict(header)
    head["kind"] = kind
    head["arrays"] = list(names)
    packed_head = packer.pack(head)
    # the header as a msgpack bin, then its checksum
    return packer.pack(MAGIC) + packer.pack(FORMAT_VERSION) + packer.pack(packed_head) + packer.pack(crc32(packed_head))


# At least this many bytes of array data in memory, written to a regular file: through a mapping of the
# file, by several threads at once (_write_mapped). Below it, one write after another.
MAPPED_MIN_BYTES = 16 << 20
_WINDOW = 8 << 20  # each thread maps this much of the file at a time (what the mappings add to RSS)
# Arrays written in huge pages (_advise_huge): those that queries probe at random, from
# HUGE_PAGE_MIN_BYTES on (io.modelfile: the reader's rule too)
HUGE_PAGE_ARRAYS = frozenset({"query.tab", "trie.packed"})


def write_model(stream: BinaryIO, kind: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write a model of ``kind`` with ``header`` (plain msgpack-able values) and named arrays (format 3)."""
    if all(isinstance(a, np.ndarray) for a in arrays.values()) \
            and sum(int(a.nbytes) for a in arrays.values()) >= MAPPED_MIN_BYTES:
        fd = _positional_fd(stream)
        if fd is not None and _write_mapped(stream, fd, kind, header, arrays):
            return
    write_model_arrays(stream, kind, header, list(arrays), iter(arrays.items()))


def _write_mapped(stream, fd: int, kind: str, header: dict, arrays: dict[str, np.ndarray]) -> bool:
    """Write the model into the regular file behind ``stream`` (from its position) by copying the
    arrays into a shared mapping of the file, split between threads; False when the file cannot be
    mapped for writing (nothing written: the caller writes it as a stream).

    Why: the time of writing a large model goes into the copy to fresh page-cache pages, one page
    fault (and, on a virtual machine, often a fault of its host) per page. write(2) makes the copies
    of one file one at a time (the file's lock); faults on a shared mapping are taken side by side.
    Measured on the 2-core machine, 110 MB into a new file: 1.1-1.3 s with write(2), 0.45-0.6 s with
    two threads. The space is reserved first (posix_fallocate), so a full disk is an error here and
    never a SIGBUS in the copy; the same bytes as write_model_arrays."""
    packer = msgpack.Packer(use_bin_type=True)
    model_head = _model_head(packer, kind, header, list(arrays))
    pieces, pos = [(0, memoryview(model_head))], len(model_head)  # (offset in the model, bytes)
    copies = []  # (offset in the model, array data, in huge pages): made by the threads
    for name, arr in arrays.items():
        head, data = _array_in_memory(packer, pos, name, arr)
        pieces.append((pos, memoryview(head)))
        pos += len(head)
        if data.nbytes:
            copies.append((pos, data, name in HUGE_PAGE_ARRAYS and data.nbytes >= HUGE_PAGE_MIN_BYTES))
        pos += data.nbytes
    pieces.append((pos, memoryview(packer.pack({"end": len(arrays)}))))
    size = pos + len(pieces[-1][1])
    stream.flush()
    start = stream.tell()  # the file offset of the model's first byte
    try:  # the same regular file (_positional_fd checked it), open for reading too: mmap needs that
        rw = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    error = getattr(stream, "write_error", _write_error)  # (cli.output's names the user's path)
    try:
        try:
            os.posix_fallocate(rw, start, size)
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ENODEV):
                return False
            raise error(e) from None
        for at, data in pieces:
            _pwrite(rw, data, start + at)
        _copy_in_threads(rw, start, copies, error)
    finally:
        os.close(rw)
    stream.seek(start + size)
    return True


def _copy_in_threads(fd: int, start: int, copies: list, error) -> None:
    """Copy each (model offset, data, huge) of ``copies`` into the file at ``start`` + offset, through
    windows of a shared mapping (huge: asking for huge pages, _advise_huge), the bytes split evenly
    between up to four threads."""
    total = sum(d.nbytes for _, d, _ in copies)
    n = max(1, min(4, os.cpu_count() or 1, total // _WINDOW))
    ends = [total * (k + 1) // n for k in range(n)]  # thread k copies the bytes before ends[k] (and after k-1's)
    shares: list[list] = [[] for _ in range(n)]
    k = done_all = 0
    for at, data, huge in copies:
        done = 0
        while done < data.nbytes:
            while done_all >= ends[k]:
                k += 1
            take = min(data.nbytes - done, ends[k] - done_all)
            shares[k].append((start + at + done, data[done:done + take], huge))
            done += take
            done_all += take
    failed: list[BaseException] = []

    def run(runs) -> None:
        try:
            for offset, data, huge in runs:
                _copy_mapped(fd, offset, data, huge)
        except BaseException as e:  # noqa: BLE001 (handed to the caller's thread)
            failed.append(e)

    threads = [threading.Thread(target=run, args=(s,), name="lmtools-write", daemon=True) for s in shares[1:]]
    for t in threads:
        t.start()
    run(shares[0])
    for t in threads:
        t.join()
    if failed:
        e = failed[0]
        raise (error(e) if isinstance(e, OSError) else e) from None


def _copy_mapped(fd: int, offset: int, data: memoryview, huge: bool = False) -> None:
    """Copy ``data`` into the file at ``offset`` through mappings of at most _WINDOW bytes (numpy's
    copy, which lets other threads run); huge: in huge pages (_advise_huge)."""
    done = 0
    while done < data.nbytes:
        at = offset + done
        base = at - at % mmap.ALLOCATIONGRANULARITY
        n = min(data.nbytes - done, _WINDOW)
        with mmap.mmap(fd, at - base + n, offset=base) as mm:
            if huge:
                _advise_huge(mm)
            target = np.frombuffer(mm, np.uint8, n, at - base)
            target[:] = np.frombuffer(data[done:done + n], np.uint8)
            del target  # (the mapping cannot close while a view of it exists)
        done += n


def _advise_huge(mm: mmap.mmap) -> None:
    """Ask for the file's new pages in 2 MB pieces (madvise MADV_HUGEPAGE on the writer's mapping: the
    page cache then holds the model in huge pages). A reader that maps the file while it is cached
    gets huge mappings of it: one TLB entry per 2 MB of a hash table probed at random instead of 512
    (lm-ppl with an 88M-n-gram model on 10x PTB train: 2.1 s against 3.5-3.7 s with the same file in
    4 kB pages; 1.54-1.65 against 1.73-1.77 s with a 24M-n-gram one). Only for the arrays probed at
    random, and only large ones (HUGE_PAGE_ARRAYS, HUGE_PAGE_MIN_BYTES): huge pages cost the writer
    time to allocate and clear. Advice only: nothing happens where the kernel or Python has none."""
    flag = getattr(mmap, "MADV_HUGEPAGE", None)
    if flag is not None and hasattr(mm, "madvise"):
        try:
            mm.madvise(flag)
        except OSError:
            pass


def write_model_arrays(stream: BinaryIO, kind: str, header: dict, names: list[str], arrays) -> None:
    """Write a model whose arrays come one at a time: ``arrays`` yields (name, array) in the order of
    ``names`` (listed in the header before any data). Only the array being written is in memory, so a
    producer can write arrays larger in all than memory (io.countstream's sorted count stream)."""
    packer = msgpack.Packer(use_bin_type=True)
    pos = 0  # file offset of the next byte: the padding aligns each array's data in the file

    def put(data) -> None:
        nonlocal pos
        stream.write(data)
        pos += len(data)

    put(_model_head(packer, kind, header, names))
    written = 0
    arrays = iter(arrays)
    for name, arr in arrays:
        if written >= len(names) or name != names[written]:
            raise ValueError(f"array {name!r} is not the next one the header lists")
        group = getattr(arr, "write_group", None)
        fd = _positional_fd(stream) if group is not None else None
        if fd is not None:  # arrays made together, written straight into their places in the file
            members = [(name, arr)]
            for _ in group.arrays[1:]:
                members.append(next(arrays, (None, None)))
            if [a for _, a in members] != list(group.arrays) or \
                    [n for n, _ in members] != names[written:written + len(members)]:
                raise ValueError(f"the arrays written with {name!r} are not the next ones the header lists")
            pos += _put_group(stream, fd, packer, pos, members, group)
            written += len(members)
            continue
        if hasattr(arr, "chunks"):  # an array on disk (io.spill.DiskArray), larger than memory may hold
            pos += _put_chunked(stream, packer, pos, name, arr)
            written += 1
            continue
        head, data = _array_in_memory(packer, pos, name, arr)
        put(head)
        stream.write(data)
        pos += data.nbytes
        written += 1
    if written != len(names):
        raise ValueError(f"{len(names) - written} arrays listed in the header were not given")
    put(packer.pack({"end": len(names)}))
    stream.flush()


def _array_in_memory(packer, pos: int, name: str, arr) -> tuple[bytes, memoryview]:
    """(head, data) of an array in memory whose head starts at file offset ``pos``: the data is a view
    of the array's memory (little-endian, C order), written from there, never copied into one bytes
    object."""
    arr = np.ascontiguousarray(arr)
    arr = arr.astype(_le(arr.dtype), copy=False)
    data = memoryview(arr.reshape(-1)).cast("B") if arr.size else memoryview(b"")
    return _array_head(packer, pos, name, arr.dtype.str, arr.shape, data.nbytes, crc32(data)), data


def _positional_fd(stream) -> int | None:
    """The file descriptor of ``stream`` if it can be written at offsets (a regular file, not opened
    for appending), else None (a pipe, a terminal, a device, a compressed or in-memory stream)."""
    import fcntl

    try:
        fd = stream.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode) or fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            return None
        stream.flush()
        stream.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd


def _put_group(stream, fd: int, packer, pos: int, members: list, group) -> int:
    """Write arrays that are made together (``group.write_into(sinks)`` appends blocks of each array to
    its sink: lm-train -S's merge makes an order's rows, log10 p and backoffs side by side) straight into
    their places in the file, from file offset ``pos``: each place is reserved from the array's size,
    its data written at its offset as it comes (by the writer thread, io.writebehind), and its
    descriptor, which holds the checksum of the data, written once the data is. Returns the bytes
    the arrays take in the file, heads included."""
    stream.flush()
    base = stream.tell() - pos  # the file offset of the model's first byte
    dtypes = [_le(arr.dtype) for _, arr in members]
    places, at = [], pos
    for (name, arr), dtype in zip(members, dtypes):
        head = _array_head(packer, at, name, dtype.str, arr.shape, int(arr.nbytes), 0)
        places.append((at, at + len(head)))  # same length with the real checksum: see _descriptor_bytes
        at += len(head) + int(arr.nbytes)
    error = getattr(stream, "write_error", _write_error)  # (cli.output's names the user's path)
    sinks = [_Region(fd, base + data_at, dtype, int(arr.nbytes), error)
             for (_, data_at), (_, arr), dtype in zip(places, members, dtypes)]
    try:
        group.write_into(sinks)
        for sink in sinks:
            sink.close()
    except BaseException:
        for sink in sinks:
            sink.abandon()
        raise
    for (head_at, _), (name, arr), dtype, sink in zip(places, members, dtypes, sinks):
        if sink.written != int(arr.nbytes):
            raise ValueError(f"array {name!r}: {sink.written} bytes made, {int(arr.nbytes)} announced")
        head = _array_head(packer, head_at, name, dtype.str, arr.shape, int(arr.nbytes), sink.crc)
        try:
            _pwrite(fd, head, base + head_at)
        except OSError as e:
            raise error(e) from None
    stream.seek(base + at)
    return at - pos


def _write_error(e: OSError) -> LmError:
    return LmError(f"cannot write the model ({e.strerror or e})", "free some disk space or write elsewhere")


def _le(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype


def _pwrite(fd: int, data, offset: int) -> None:
    data = memoryview(data).cast("B")
    done = 0
    while done < data.nbytes:
        done += os.pwrite(fd, data[done:], offset + done)


class _Region:
    """The place of one array's data in a file being written at offsets: ``append(block)`` checksums
    the block and hands it to the writer thread, which writes it after the blocks before it."""

    def __init__(self, fd: int, offset: int, dtype: np.dtype, nbytes: int, error=_write_error):
        from lmtools.io.writebehind import Behind

        self.dtype, self.nbytes = dtype, nbytes
        self.crc = 0
        self.written = 0
        self._file = Behind(_At(fd, offset))
        self._error = error

    def append(self, block) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        data = memoryview(block.reshape(-1)).cast("B") if block.size else memoryview(b"")
        if self.written + data.nbytes > self.nbytes:
            raise ValueError(f"more data than the {self.nbytes} bytes announced")
        self.crc = crc32(data, self.crc)
        self.written += data.nbytes
        if block.size:
            try:
                self._file.write(block)  # raises an earlier write's error (a full disk)
            except OSError as e:
                raise self._error(e) from None

    def close(self) -> None:
        self._file.close()
        try:
            self._file.wait()  # a failed write is raised here
        except OSError as e:
            raise self._error(e) from None

    def abandon(self) -> None:
        self._file.abandon()


class _At:
    """A file written from ``offset`` on, one write after another (for io.writebehind.Behind)."""

    def __init__(self, fd: int, offset: int):
        self.fd, self.offset = fd, offset

    def write(self, data) -> None:
        _pwrite(self.fd, data, self.offset)
        self.offset += memoryview(data).nbytes

    def close(self) -> None:
        pass


def _put_chunked(stream, packer, pos: int, name: str, arr) -> int:
    """Write an array that is read in chunks (``arr.chunks(max_bytes)``, a DiskArray) at file offset
    ``pos``: a first pass computes the checksum the descriptor carries before the data (unless the
    array knows it: ``arr.crc32``), a second copies the data; memory holds one chunk. Returns the
    number of bytes written."""
    dtype = _le(arr.dtype)

    def pieces():
        for piece in arr.chunks(CHUNK):
            piece = np.ascontiguousarray(piece, dtype=dtype)
            if piece.size:
                yield memoryview(piece.reshape(-1)).cast("B")

    if getattr(arr, "crc32", None) is not None and np.dtype(arr.dtype) == dtype:  # known as it was written
        crc, nbytes = arr.crc32 & 0xFFFFFFFF, int(arr.nbytes)
    else:
        crc, nbytes = 0, 0
        for data in pieces():
            crc = crc32(data, crc)
            nbytes += data.nbytes
    head = _array_head(packer, pos, name, dtype.str, arr.shape, nbytes, crc)
    stream.write(head)
    for data in pieces():
        stream.write(data)
    return len(head) + nbytes


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


if __name__ == "__main__":  # python3 -m lmtools.io.modelwrite OLD NEW: rewrite in the current format
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python3 -m lmtools.io.modelwrite OLD.lm NEW.lm  (rewrites a model in the current format)")
    try:
        rewrite(sys.argv[1], sys.argv[2])
    except LmError as e:
        sys.exit(f"lmtools: error: {e}")
