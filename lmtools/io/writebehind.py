"""Writes of temporary files done by a thread of their own, beside the computing.

lm-train -S writes gigabytes of temporary files (io.spill.BlockWriter), and much of a write's cost
is the kernel's, on the thread that asks for it: copying the bytes into the page cache and reclaiming
cache for them (a third of lm-train -S's time at 40M tokens is system time). A ``Behind`` file hands
each block to one writer thread shared by the process and returns at once, so that the copy runs on
another core while the caller computes: 40M tokens, -S 4G, four alternating pairs, 44.6-47.5 s ->
41.2-43.5 s. lm-count's spilled runs go the same way (io.countstream.RunFile with ``behind``): 40M
tokens, -S 1G, two alternating pairs, 55.9 and 45.2 s -> 44.3 and 44.3 s.

The rules that keep this safe:
- the caller gives the block away: it must not change it afterwards (blocks that are views of some
  other memory are copied first: their owner might reuse it);
- writes of one file happen in order; ``wait()`` returns once every write given so far is done (a
  reader calls it before reading the file);
- memory stays bounded: a write waits while more than ``MAX_PENDING`` bytes are in flight, and a
  block larger than that is waited for (written as the caller's own write would be);
- a failed write is never lost: its error is raised by the file's next ``write`` or ``wait`` (and
  noted in the file's group: io.countstream.SpillDir raises it at its next write anywhere, and when a
  phase ends, ``SpillDir.settle``); later writes of that file are skipped.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

MAX_PENDING = 64 << 20  # bytes given to the writer and not yet written, beyond one block


class _Writer:
    """The process's writer thread and its queue (started on first use)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.queue: deque = deque()
        self.pending = 0
        self.thread: threading.Thread | None = None

    def submit(self, target: "Behind", data, nbytes: int) -> None:
        with self.cond:
            while self.pending and self.pending + nbytes > MAX_PENDING:
                self.cond.wait()
            self.queue.append((target, data, nbytes))
            self.pending += nbytes
            target.queued += 1
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="lmtools-write-behind", daemon=True)
                self.thread.start()
            self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                target, data, nbytes = self.queue.popleft()
            try:
                if data is None:
                    target.file.close()
                elif target.error is None:
                    target.file.write(data)
            except BaseException as e:  # kept for the owner's thread to raise
                if target.error is None:
                    target.error = e
                    if target.group is not None and target.group.write_error is None:
                        target.group.write_error = e
            finally:
                del data
                with self.cond:
                    self.pending -= nbytes
                    target.queued -= 1
                    self.cond.notify_all()

    def wait(self, target: "Behind") -> None:
        with self.cond:
            while target.queued:
                self.cond.wait()

    def wait_all(self) -> None:
        with self.cond:
            while self.queue or self.pending:
                self.cond.wait()


_WRITER = _Writer()


def _owns(a: np.ndarray) -> bool:
    """Is the array's memory its own (numpy's or a numba kernel's allocation), not a view of memory
    that someone else holds and may change (another array, a mapping, a buffer)?"""
    return a.base is None or type(a.base).__name__ == "MemInfo"  # numba's owner of what a kernel returns


def wait_all() -> None:
    """Return once every write given to the writer thread so far is done (whoever gave it)."""
    _WRITER.wait_all()


class Behind:
    """A binary file (an open file object) whose writes the writer thread does (see the module
    docstring). ``group``: an object with a ``write_error`` attribute (None), where the first failed
    write of any of its files is noted too (io.countstream.SpillDir: its next write raises it)."""

    def __init__(self, file, group=None):
        self.file = file
        self.group = group
        self.queued = 0
        self.error: BaseException | None = None
        self.closing = False

    def write(self, block) -> None:
        """Write a numpy array's bytes (C order) after everything given before."""
        self._raise()
        if self.closing:
            raise ValueError("write to a closed file")
        if not (block.flags.c_contiguous and _owns(block)):
            block = np.array(block, order="C")  # the owner of the memory may reuse it
        if block.size:
            data = memoryview(block.reshape(-1)).cast("B")
            _WRITER.submit(self, data, data.nbytes)
            if data.nbytes > MAX_PENDING:
                # a large block is waited for: the caller would otherwise go on to make the next one
                # (say a partition's results) while this one is still held, past its memory budget
                self.wait()

    def close(self) -> None:
        """Close the file once its writes are done, without waiting for them (``wait`` does)."""
        if not self.closing:
            self.closing = True
            _WRITER.submit(self, None, 0)

    def wait(self) -> None:
        """Return once every write given so far is done; raise the first that failed."""
        _WRITER.wait(self)
        self._raise()

    def _raise(self) -> None:
        if self.error is not None and not isinstance(self.error, _Abandoned):
            raise self.error

    def abandon(self) -> None:
        """Skip what is not written yet and close the file (it is being removed); raises nothing."""
        if self.error is None:
            self.error = _Abandoned()
        self.close()
        _WRITER.wait(self)


class _Abandoned(Exception):
    """The error of a file whose writes were given up."""
