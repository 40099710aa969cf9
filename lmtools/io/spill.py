"""Arrays spilled to a temporary directory, written in blocks and read back in slices.

Work that does not fit in its memory budget (lm-train -S) keeps its intermediate arrays in raw files
(native byte order, C order, no header: they live for one run in a private directory) and reads back
only the slice it needs, with plain reads rather than a mapping, so that what the process holds stays
what it asked for: mapped pages of a file count in its resident memory until unmapped.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from lmtools.io.writebehind import Behind


class BlockWriter:
    """Appends blocks of rows (all of one dtype and row width) to a new file of ``space`` (an
    io.countstream.SpillDir: its files are removed at the end whatever happens); ``close()`` gives a
    ``DiskArray``."""

    def __init__(self, space, stem: str, dtype, width: int | None = None, checksum: bool = False):
        self.space = space
        self.path = space.new_file(stem)
        self.dtype = np.dtype(dtype)
        self.width = width  # None: a 1-d array
        self.rows = 0
        # with ``checksum``: the CRC-32 of the bytes as they are written, which the model writer puts in
        # the array's descriptor instead of reading the whole file once more to compute it
        self.crc32 = 0 if checksum else None
        self._file = Behind(open(self.path, "wb"), space)  # written by the writer thread (io.writebehind)

    def append(self, block: np.ndarray) -> None:
        """Append rows; the caller does not change the block afterwards (it is written later)."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if self.width is not None and (block.ndim != 2 or block.shape[1] != self.width):
            raise ValueError(f"block of shape {block.shape}, expected rows of width {self.width}")
        if block.size:
            self._file.write(block)
            self.space.wrote(block.nbytes)
            if self.crc32 is not None:
                self.crc32 = zlib.crc32(memoryview(block.reshape(-1)).cast("B"), self.crc32)
        self.rows += block.shape[0]

    def close(self) -> "DiskArray":
        """The array written: the file closes once its writes are done (its readers wait for that)."""
        self._file.close()
        shape = (self.rows,) if self.width is None else (self.rows, self.width)
        return DiskArray(self.path, self.dtype, shape, self.space, self.crc32, self._file)


class ArrayShape:
    """The dtype and shape of an array held elsewhere (on disk, or yet to be made), and the sizes
    that follow from them, as numpy names them."""

    def __init__(self, dtype, shape: tuple):
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.ndim = len(self.shape)
        self.row_items = int(np.prod(self.shape[1:], dtype=np.int64)) if self.ndim > 1 else 1
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.nbytes = self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]


class DiskArray(ArrayShape):
    """A C-order array in a raw file: its shape and dtype, slices read on demand, chunks in turn.

    Model writers accept it where they take a numpy array (``lmtools.io.modelwrite.write_model``
    streams it in chunks), so that a model larger than the memory budget is written without being
    held whole."""

    def __init__(self, path: str, dtype, shape: tuple, space=None, crc32: int | None = None, writing=None):
        super().__init__(dtype, shape)
        self.path = path
        self.space = space
        self._writing = writing  # the io.writebehind.Behind still writing the file, or None
        self.crc32 = crc32  # of the file's bytes as written (BlockWriter(checksum=True)), or None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 as a numpy array (a copy in memory)."""
        if self._writing is not None:
            self._writing.wait()  # a write that failed (a full disk) is raised here
            self._writing = None
        start, stop = max(0, start), min(stop, self.shape[0])
        count = max(0, stop - start) * self.row_items
        with open(self.path, "rb") as f:
            a = np.fromfile(f, self.dtype, count, offset=start * self.row_items * self.dtype.itemsize)
        if a.size != count:
            raise OSError(f"{self.path}: spilled data cut short")
        return a.reshape((count // self.row_items,) + self.shape[1:])

    def load(self) -> np.ndarray:
        return self.read(0, self.shape[0])

    def chunks(self, max_bytes: int = 64 << 20):
        """The array's rows in consecutive chunks of at most about ``max_bytes``."""
        step = max(1, max_bytes // max(1, self.row_items * self.dtype.itemsize))
        for a in range(0, self.shape[0], step):
            yield self.read(a, a + step)

    def remove(self) -> None:
        if self._writing is not None:
            self._writing.abandon()
            self._writing = None
        if self.space is not None:
            self.space.delete(self.path)
        else:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
