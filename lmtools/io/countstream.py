"""The sorted count stream, and the temporary runs that counting in a memory budget spills to disk.

**The sorted count stream** is a counts model file (lmtools-model(5), format 3) whose header has
``"layout": "sorted"`` and ``"block_rows": B``: instead of lm-count's trie levels (``prefix_n``,
``word_n``, ``counts_n``) it holds, after ``counts_1`` (the unigram counts, one per vocabulary id),
order by order ascending, blocks of at most B n-grams: ``ngrams_N.I`` (int32, shape (b, N): the word
ids of b n-grams, rows in strictly increasing lexicographic order across all blocks of the order) and
``counts_N.I`` (their counts: uint32, or int64 where a count does not fit), I = 0, 1, ... The header's
``sizes`` gives the n-grams per order, so the array names are known before any data; every array's
checksum precedes its bytes, and a block is written as soon as it is in memory, so the writer holds
one block (its source is a merge of sorted runs, see lmtools.ngram.external), and so does a reader
(``iter_sorted_counts``) from a pipe. Readers of the whole file (io.models.load_model) give the same
``Counts`` as the trie layout; lmtools older than this layout refuse such a file with "counts file
lacks array prefix_2".

**Runs** (``SpillDir``, ``RunFile``): the sorted rows and counts of one order in one file, packed in
chunks at the bits they need (lmtools.kernels.bitpack), written once and read back in blocks. They live in a
directory of their own made inside the temporary directory (-T), removed with everything in it when
the program ends, whatever the reason: ``SpillDir`` reports every path it is about to create to a
``tracker`` (a set-like object with ``add``/``discard``; the programs pass lmtools.cli.signals'
TEMP_FILES, which a signal empties), before the path exists.
"""

from __future__ import annotations

import errno
import os
import secrets
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import numpy as np

from lmtools.errors import LmError
from lmtools.io.models import LAYOUT_SORTED, narrow_counts
from lmtools.io.writebehind import wait_all

BLOCK_ROWS = 1 << 16  # n-grams per block of the sorted count stream (a few MB at order 5)
CHUNK_ROWS = 1 << 13  # n-grams per packed chunk of a run (each has its own widths; a reader holds one)
PIECE_ROWS = 1 << 18  # n-grams packed per write of a run


# ----------------------------------------------------------------------------------------------
# Temporary runs


def temp_error(where: str, e: OSError) -> LmError:
    """One line for a failure to write or read the temporary files."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free some disk space there, or give another temporary directory with -T DIR (or a larger -S)"
    elif e.errno in (errno.ENOENT, errno.ENOTDIR):
        hint = "the temporary directory was removed while in use; give -T a directory that stays"
    else:
        hint = "give a writable temporary directory with -T DIR"
    return LmError(f"temporary files in {where}: {e.strerror or e}", hint)


class SpillDir:
    """A private directory for runs, inside ``base``; ``remove()`` deletes it and its files (every
    path is reported to ``tracker`` before it is created, so a signal handler can delete them too)."""

    def __init__(self, base: str, tracker=None):
        self.base = base
        self.tracker = tracker if tracker is not None else set()
        self.path: str | None = None
        self.files: dict[str, None] = {}  # (a dict: deleting one of thousands of runs is O(1))
        self.serial = 0
        self.bytes_written = 0
        self.peak_bytes = 0  # most bytes held on disk at once
        self.live_bytes = 0
        self.write_error: OSError | None = None  # the first write of a file here that failed (io.writebehind)

    def _make(self) -> str:
        if self.path is None:
            path = os.path.join(self.base, f"lmtools-spill-{os.getpid()}-{secrets.token_hex(4)}")
            self.tracker.add(path)
            try:
                os.mkdir(path, 0o700)
            except OSError as e:
                self.tracker.discard(path)
                raise temp_error(self.base, e) from None
            self.path = path
        return self.path

    def new_file(self, stem: str) -> str:
        """A new file's path in the directory (made on first use), reported to the tracker."""
        d = self._make()
        self.serial += 1
        path = os.path.join(d, f"{stem}-{self.serial}")
        self.tracker.add(path)
        self.files[path] = None
        return path

    def delete(self, path: str) -> None:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        try:
            os.unlink(path)
        except OSError:
            pass
        self.live_bytes -= size
        self.tracker.discard(path)
        self.files.pop(path, None)

    def wrote(self, n: int) -> None:
        """Count n bytes given to a file here (one line if an earlier write here failed)."""
        if self.write_error is not None:
            raise temp_error(self.base, self.write_error)
        self.bytes_written += n
        self.live_bytes += n
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    def settle(self) -> None:
        """Wait for the writes given to the writer thread (io.writebehind); one line for one of this
        directory's that failed. The end of a phase calls it, before the next writes its output."""
        wait_all()
        if self.write_error is not None:
            raise temp_error(self.base, self.write_error)

    def remove(self) -> None:
        """Delete every file and the directory (quietly: it may be gone already)."""
        for path in list(self.files):
            self.delete(path)
        if self.path is not None:
            try:
                os.rmdir(self.path)
            except OSError:
                pass
            self.tracker.discard(self.path)
            self.path = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class RunFile:
    """Sorted rows (m, n) and counts of one order on disk, written in pieces, read back in blocks.

    The file is a sequence of chunks of at most CHUNK_ROWS n-grams packed at the bits they need
    (lmtools.kernels.bitpack): the ids at the bit length of the chunk's largest id, the counts at
    that of its largest count. A 5-gram of a 10k-word vocabulary takes about 11 bytes instead of the
    24 of int32 ids and a uint32 count: less than half the bytes to write and read back."""

    def __init__(self, spill: SpillDir, n: int, stem: str | None = None, behind: bool = False):
        self.spill, self.n, self.m = spill, n, 0
        self.path = spill.new_file(stem or f"o{n}-run")
        self.nbytes = 0
        self._w = None
        self._words = None  # the packing buffer, kept for the next append
        # ``behind``: the writes go to the writer thread (io.writebehind), each piece in a buffer of
        # its own; readers wait for them
        self.behind = behind
        self._behind = None  # the io.writebehind.Behind file, once opened

    def _open_write(self):
        try:
            f = open(self.path, "wb")
        except OSError as e:
            raise temp_error(self.spill.base, e) from None
        if self.behind:
            from lmtools.io.writebehind import Behind

            self._behind = self._w = Behind(f, self.spill)
        else:
            self._w = f

    def append(self, rows: np.ndarray, counts: np.ndarray) -> None:
        from lmtools.kernels.bitpack import pack_chunks, packed_words, piece_words

        if self._w is None:
            self._open_write()
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        counts = np.asarray(counts)
        if counts.dtype.kind not in "iu" or counts.dtype.itemsize > 8 or counts.dtype == np.uint64:
            counts = counts.astype(np.int64)
        m = rows.shape[0]
        if counts.shape != (m,) or rows.ndim != 2 or rows.shape[1] != self.n:
            raise ValueError(f"a run of order {self.n} given rows {rows.shape} and counts {counts.shape}")
        for lo in range(0, m, PIECE_ROWS):
            hi = min(m, lo + PIECE_ROWS)
            if self.behind:  # a buffer given away to the writer thread: its exact size
                words = np.empty(packed_words(rows, counts, lo, hi, CHUNK_ROWS), np.uint64)
            else:
                need = piece_words(hi - lo, self.n, CHUNK_ROWS)
                if self._words is None or self._words.shape[0] < need:
                    self._words = np.empty(piece_words(PIECE_ROWS, self.n, CHUNK_ROWS), np.uint64)
                words = self._words
            used = pack_chunks(rows, counts, lo, hi, CHUNK_ROWS, words)
            try:
                if self.behind:
                    self._w.write(words)
                else:
                    self._w.write(memoryview(words[:used]).cast("B"))
            except OSError as e:
                self.close()
                raise temp_error(self.spill.base, e) from None
            self.m += hi - lo
            self.nbytes += 8 * used
            self.spill.wrote(8 * used)

    def finish(self) -> "RunFile":
        """Close the file for writing (flushing it: a full disk shows here)."""
        if self._w is None:
            self._open_write()
        self._words = None
        try:
            self._w.close()
        except OSError as e:
            raise temp_error(self.spill.base, e) from None
        finally:
            self._w = None
        return self

    def close(self) -> None:
        self._words = None
        if self._behind is not None:
            self._behind.abandon()
        elif self._w is not None:
            try:
                self._w.close()
            except OSError:
                pass
        self._w = None

    def wait(self) -> None:
        """Return once the writer thread has written everything (behind); raise a failed write."""
        if self._behind is not None:
            try:
                self._behind.wait()
            except OSError as e:
                raise temp_error(self.spill.base, e) from None

    def reader(self) -> "RunReader":
        return RunReader(self)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole run: rows (m, n) int32 and counts int64."""
        rows, counts = np.empty((self.m, self.n), np.int32), np.empty(self.m, np.int64)
        reader = self.reader()
        try:
            reader.read_into(rows, counts)
        finally:
            reader.close()
        return rows, counts

    def delete(self) -> None:
        self.close()
        self.spill.delete(self.path)


class PackedRows:
    """An int32 array of rows (m, n) on disk, packed as a run with no counts (``RunFile``: a count of
    0 takes one bit), with the reading side of io.spill.DiskArray: ``read(start, stop)`` (fast in
    turn), ``load()``, ``chunks(max_bytes)``, ``remove()``; ``crc32`` (with ``checksum``): of the int32
    bytes appended, which the model writer puts in the array's descriptor. Written through the
    writer thread (io.writebehind)."""

    def __init__(self, spill: SpillDir, stem: str, n: int, checksum: bool = False, run: RunFile | None = None):
        self.run = run if run is not None else RunFile(spill, n, stem, behind=True)  # (run: one written already)
        self.dtype = np.dtype(np.int32)
        self.crc32 = 0 if checksum else None
        self._reader: RunReader | None = None
        self._at = 0
        self._zeros = np.zeros(0, np.uint8)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        if self._zeros.shape[0] < rows.shape[0]:
            self._zeros = np.zeros(rows.shape[0], np.uint8)
        self.run.append(rows, self._zeros[:rows.shape[0]])
        if self.crc32 is not None and rows.size:
            self.crc32 = zlib.crc32(memoryview(rows.reshape(-1)).cast("B"), self.crc32)

    def close(self) -> "PackedRows":
        self.run.finish()
        self._zeros = np.zeros(0, np.uint8)
        return self

    @property
    def shape(self) -> tuple:
        return (self.run.m, self.run.n)

    ndim = 2

    @property
    def size(self) -> int:
        return self.run.m * self.run.n

    @property
    def nbytes(self) -> int:
        return 4 * self.size

    @property
    def row_items(self) -> int:
        return self.run.n

    def __len__(self) -> int:
        return self.run.m

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 (a copy in memory); reading in turn reads the file once."""
        start, stop = max(0, start), min(stop, self.run.m)
        if self._reader is None or start < self._at:
            if self._reader is not None:
                self._reader.close()
            self._reader, self._at = self.run.reader(), 0
        rows = np.empty((max(0, stop - start), self.run.n), np.int32)
        counts = np.empty(rows.shape[0], np.int64)
        while self._at < start:  # skipped (a reader starting further on)
            skip = min(start - self._at, 1 << 16)
            self._reader.read_into(np.empty((skip, self.run.n), np.int32), np.empty(skip, np.int64))
            self._at += skip
        got = self._reader.read_into(rows, counts)
        if got != rows.shape[0]:
            raise OSError(errno.EIO, "a temporary file is shorter than written")
        self._at += got
        return rows

    def load(self) -> np.ndarray:
        return self.read(0, self.run.m)

    def chunks(self, max_bytes: int = 64 << 20):
        step = max(1, max_bytes // (4 * self.run.n))
        for a in range(0, self.run.m, step):
            yield self.read(a, a + step)

    def remove(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.run.delete()


class RunReader:
    """Reads a run front to back, ``read_into`` a block at a time (one packed chunk in memory)."""

    def __init__(self, run: RunFile):
        run.wait()
        self.run, self.left = run, run.m
        self._words = np.empty(0, np.uint64)
        self._head = np.empty(2, np.uint64)
        self._k = self._at = 0  # records in the chunk in memory, and read from it
        self._bits = (1, 1)
        try:
            self.f = open(run.path, "rb")
        except OSError as e:
            raise temp_error(run.spill.base, e) from None

    def _read_exact(self, a: np.ndarray) -> None:
        view = memoryview(a).cast("B")
        got = 0
        while got < len(view):
            r = self.f.readinto(view[got:])
            if not r:
                raise OSError(errno.EIO, "a temporary file is shorter than written")
            got += r

    def _next_chunk(self) -> None:
        from lmtools.kernels.bitpack import words_for

        self._read_exact(self._head)
        h = int(self._head[0])
        k, id_bits, count_bits = h & 0xFFFFFFFF, (h >> 32) & 0xFF, (h >> 40) & 0xFF
        used = int(self._head[1])
        if not (0 < k <= CHUNK_ROWS and 0 < id_bits <= 32 and 0 < count_bits <= 63
                and used == words_for(k, self.run.n, id_bits, count_bits)):
            raise OSError(errno.EIO, "a temporary file is corrupt")
        if self._words.shape[0] < used:
            self._words = np.empty(max(used, words_for(CHUNK_ROWS, self.run.n, id_bits, count_bits)), np.uint64)
        self._read_exact(self._words[:used])
        self._k, self._at, self._bits = k, 0, (id_bits, count_bits)

    def read_into(self, rows: np.ndarray, counts: np.ndarray) -> int:
        """Fill ``rows`` (b, n) and ``counts`` (b,) with the next rows (at most b); returns how many."""
        from lmtools.kernels.bitpack import unpack_rows

        want = min(self.left, rows.shape[0])
        got = 0
        try:
            while got < want:
                if self._at == self._k:
                    self._next_chunk()
                take = min(want - got, self._k - self._at)
                unpack_rows(self._words, self._at, take, self._bits[0], self._bits[1], rows, counts, got)
                self._at += take
                got += take
        except OSError as e:
            raise temp_error(self.run.spill.base, e) from None
        self.left -= got
        return got

    def close(self) -> None:
        self.f.close()


# ----------------------------------------------------------------------------------------------
# The sorted count stream: writing


@dataclass
class CountsHeader:
    """The facts of a counts model that come before its n-grams (``iter_sorted_counts`` yields it first)."""

    vocab: list[str]
    unigrams: np.ndarray  # int64 (V,): order 1, one count per vocabulary id
    tokens: int
    sentences: int
    order: int
    sizes: list[int]  # n-grams per order 1..N (sizes[0] == V)
    provenance: dict = field(default_factory=dict)
    text: dict | None = None  # how the text was read ({"chars", "lower"}); None: unknown
    block_rows: int = BLOCK_ROWS


def write_sorted_counts(stream: BinaryIO, head: CountsHeader, blocks) -> None:
    """Write a sorted count stream: ``head`` (sizes included), then ``blocks`` yields (n, rows, counts)
    for orders 2..N ascending, rows in increasing order, every block but an order's last exactly
    ``head.block_rows`` rows (as ``RunReader`` and ``iter_sorted_blocks`` give them)."""
    from lmtools import __version__
    from lmtools.io.modelwrite import write_model_arrays
    from lmtools.io.models import sorted_array_names

    B = head.block_rows
    prov = dict(head.provenance or {})
    prov.setdefault("version", __version__)
    header = {"order": head.order, "vocab": list(head.vocab), "tokens": int(head.tokens),
              "sentences": int(head.sentences), "sizes": [int(s) for s in head.sizes], "provenance": prov,
              "layout": LAYOUT_SORTED, "block_rows": B}
    if head.text is not None:
        header["text"] = {"chars": bool(head.text["chars"]), "lower": bool(head.text["lower"])}
    names = sorted_array_names(head.sizes, B)

    def arrays():
        yield "counts_1", narrow_counts(np.asarray(head.unigrams))
        index = {}
        for n, rows, counts in blocks:
            if rows.shape[0] == 0:
                continue
            i = index.get(n, 0)
            index[n] = i + 1
            yield f"ngrams_{n}.{i}", np.ascontiguousarray(rows, dtype=np.int32)
            yield f"counts_{n}.{i}", narrow_counts(counts)

    write_model_arrays(stream, "counts", header, names, arrays())


# ----------------------------------------------------------------------------------------------
# The sorted count stream: reading


def iter_sorted_blocks(counts, block_rows: int = BLOCK_ROWS, check: str | None = None) -> Iterator:
    """The sorted-stream view of counts held in memory (``Counts``, or ``Levels``, sorted first): yields
    a ``CountsHeader``, then (n, rows, counts) for n = 1..N: order 1 in one block (the vocabulary, as
    the header's unigrams), orders >= 2 in blocks of at most ``block_rows`` rows (views, not copies),
    at least one block per order (empty where the order has no n-grams). ``Levels`` are sorted one
    order at a time (``check``: name of the source, whose repeated n-grams are then refused), so that
    memory holds two orders' sorted rows, not every order's."""
    if hasattr(counts, "levels") and not hasattr(counts, "ngrams"):
        yield from _iter_levels_sorted(counts, block_rows, check)
        return
    yield CountsHeader(vocab=list(counts.vocab), unigrams=np.asarray(counts.counts[0], np.int64),
                       tokens=int(counts.tokens), sentences=int(counts.sentences), order=counts.order,
                       sizes=counts.sizes(), provenance=dict(counts.provenance or {}), text=counts.text,
                       block_rows=block_rows)
    V = len(counts.vocab)
    yield 1, np.asarray(counts.ngrams[0], np.int32).reshape(V, 1), np.asarray(counts.counts[0], np.int64)
    for n in range(2, counts.order + 1):
        rows, cnt = counts.ngrams[n - 1], counts.counts[n - 1]
        m = rows.shape[0]
        for lo in range(0, max(m, 1), block_rows):
            yield n, rows[lo:lo + block_rows], np.asarray(cnt[lo:lo + block_rows], np.int64)


def _iter_levels_sorted(lv, block_rows: int, check: str | None) -> Iterator:
    """``iter_sorted_blocks`` of ``Levels`` (lm-count's trie layout): each order is sorted from the
    sorted rows and ranks of the order below (as ``Levels.to_counts``, one order at a time), its blocks
    yielded, and the order below dropped: a whole file's sort held every order at once (at 10M tokens
    of text, about 90 bytes per n-gram, several times an estimation budget)."""
    from lmtools.kernels.small import SMALL_ROWS

    if sum(int(p.shape[0]) for p, _, _ in lv.levels) < SMALL_ROWS:  # numba's start-up would dominate
        from lmtools.kernels.small import build_sorted
    else:
        from lmtools.kernels.count import build_sorted
    V = len(lv.vocab)
    sizes = [V] + [int(p.shape[0]) for p, _, _ in lv.levels]
    yield CountsHeader(vocab=list(lv.vocab), unigrams=np.asarray(lv.unigrams, np.int64), tokens=int(lv.tokens),
                       sentences=int(lv.sentences), order=len(sizes), sizes=sizes,
                       provenance=dict(lv.provenance or {}), text=lv.text, block_rows=block_rows)
    rows = np.arange(V, dtype=np.int32).reshape(V, 1)
    rank = np.arange(V, dtype=np.int64)
    yield 1, rows, np.asarray(lv.unigrams, np.int64)
    for n, (prefix, word, count) in enumerate(lv.levels, start=2):
        rows, rank, order = build_sorted(prefix, word, rank, rows, V, n < len(sizes))
        if check is not None:
            from lmtools.io.models import rows_increasing

            if not rows_increasing(rows):  # sorted now: a repeated n-gram sits beside its twin
                raise LmError(f"{check}: corrupt counts file (order {n} has repeated n-grams)",
                              "recreate it with lm-count")
        m = rows.shape[0]
        for lo in range(0, max(m, 1), block_rows):
            yield n, rows[lo:lo + block_rows], np.asarray(count[order[lo:lo + block_rows]], np.int64)
        del order


def iter_sorted_counts(source="-", block_rows: int = BLOCK_ROWS) -> Iterator:
    """A counts model from ``source`` (path, '-' or a binary stream) as a sorted stream: yields a
    ``CountsHeader``, then (n, rows, counts) for n = 1..N ascending, rows in lexicographic order, at
    least one block per order (order 1 in one block: every vocabulary id, as ``header.unigrams``). A
    sorted count stream is read one block at a time (from a pipe too: memory holds one block; each
    block is checked: types, ids in range, rows increasing across blocks, sizes as the header says);
    a file of lm-count's trie layout is read as its trie levels and sorted one order at a time
    (memory holds two orders' rows). Refuses anything but a counts model."""
    from lmtools.io.modelfile import iter_model, map_model, stream_size
    from lmtools.io.models import check_sorted_block, levels_from_parts, model_from_parts, sorted_layout_facts
    from lmtools.io.text import open_binary

    name = "<stdin>" if source == "-" else str(getattr(source, "name", source))
    mapped = map_model(source, name) if isinstance(source, str) and source != "-" else None
    stream = None
    try:
        if mapped is not None:
            header = mapped.header
            parts = ((k, mapped.arrays[k]) for k in header["arrays"])
        else:
            stream = open_binary(source) if isinstance(source, str) else source
            parts = iter_model(stream, name, stream_size(stream))
            header = next(parts)
        if header.get("kind") != "counts":
            raise LmError(f"{name} holds a model of kind {header.get('kind')}, not counts",
                          "give counts written by lm-count or lm-merge")
        if header.get("layout") != LAYOUT_SORTED:
            if mapped is not None:  # trie levels, sorted order by order as the stream goes
                counts = model_from_parts(header, mapped.arrays, name, sort_counts=False, mapped=mapped)
            else:
                counts = levels_from_parts(header, dict(parts), name)
            yield from iter_sorted_blocks(counts, block_rows, check=name)
            return
        order, V, sizes, B = sorted_layout_facts(header, name)

        def take(expected: str) -> np.ndarray:
            try:
                key, arr = next(parts)
            except StopIteration:
                key, arr = None, None
            if key != expected:
                raise LmError(f"{name}: corrupt counts file (array {expected} missing)", "recreate it with lm-count")
            if mapped is not None:
                mapped.check([key])
            return arr

        _, unigrams = check_sorted_block(V, 1, np.arange(V, dtype=np.int32).reshape(V, 1), take("counts_1"), name)
        yield CountsHeader(vocab=list(header["vocab"]), unigrams=unigrams, tokens=int(header.get("tokens", 0)),
                           sentences=int(header.get("sentences", 0)), order=order, sizes=sizes,
                           provenance=dict(header.get("provenance", {})), text=_text_kind(header, name),
                           block_rows=B)
        yield 1, np.arange(V, dtype=np.int32).reshape(V, 1), unigrams
        for n in range(2, order + 1):
            blocks = -(-sizes[n - 1] // B)
            if blocks == 0:
                yield n, np.zeros((0, n), np.int32), np.zeros(0, np.int64)
            last = None
            for i in range(blocks):
                rows = take(f"ngrams_{n}.{i}")
                counts = take(f"counts_{n}.{i}")
                want = B if i < blocks - 1 else sizes[n - 1] - B * (blocks - 1)
                if rows.ndim != 2 or rows.shape[0] != want:
                    raise LmError(f"{name}: corrupt counts file (block {i} of order {n} has the wrong size)",
                                  "recreate it with lm-count")
                rows, counts = check_sorted_block(V, n, rows, counts, name, last)
                last = rows[-1].copy()
                yield n, rows, counts
                if mapped is not None:  # consumed: its pages need not stay resident
                    mapped.release([f"ngrams_{n}.{i}", f"counts_{n}.{i}"])
        for _ in parts:  # the trailer is checked when the arrays run out
            raise LmError(f"{name}: corrupt counts file (arrays after the last block)", "recreate it with lm-count")
    finally:
        if stream is not None and stream is not source and source != "-":
            stream.close()


def _text_kind(h: dict, name: str):
    from lmtools.io.text import header_text_kind

    return header_text_kind(h, name)
