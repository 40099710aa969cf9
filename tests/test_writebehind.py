"""Temporary files written by the writer thread (lmtools/io/writebehind.py): the bytes as given, in
order, even when the caller's memory changes after a write; a failed write raised by the file's next
call; nothing raised for an abandoned file; the bytes in flight bounded."""

import errno
import io
import threading

import numpy as np
import pytest

from lmtools.io import writebehind
from lmtools.io.writebehind import Behind


def test_blocks_are_written_in_order_as_given(tmp_path):
    rng = np.random.default_rng(3)
    blocks = [rng.integers(0, 1 << 30, size=rng.integers(0, 5000)).astype(np.int32) for _ in range(200)]
    path = tmp_path / "f"
    f = Behind(open(path, "wb"))
    for b in blocks:
        f.write(b)
    f.close()
    f.wait()
    assert path.read_bytes() == b"".join(b.tobytes() for b in blocks)


def test_a_view_is_copied_before_its_owner_changes_it(tmp_path):
    owner = np.arange(1000, dtype=np.int64)
    path = tmp_path / "f"
    f = Behind(open(path, "wb"))
    f.write(owner[:500])  # a view: its owner may reuse the memory at once
    f.write(owner[::2])  # not contiguous
    owner[:] = -1
    f.close()
    f.wait()
    want = np.concatenate([np.arange(500), np.arange(0, 1000, 2)]).astype(np.int64)
    assert np.array_equal(np.frombuffer(path.read_bytes(), np.int64), want)


class _Full(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, room):
        self.room = room
        self.got = 0

    def writable(self):
        return True

    def write(self, b):
        n = memoryview(b).nbytes
        if self.got + n > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.got += n
        return n


def test_a_failed_write_is_raised_by_the_next_call():
    f = Behind(_Full(1000))
    f.write(np.zeros(100, np.int64))  # 800 bytes
    f.write(np.zeros(100, np.int64))  # fails in the writer thread
    with pytest.raises(OSError) as e:
        f.wait()
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        f.write(np.zeros(1, np.int64))
    with pytest.raises(OSError):
        f.wait()  # raised again: never lost


def test_an_abandoned_file_raises_nothing():
    f = Behind(_Full(0))
    f.write(np.zeros(10, np.int64))
    f.abandon()
    f.abandon()
    assert f.file.closed


def test_the_bytes_in_flight_are_bounded(monkeypatch):
    monkeypatch.setattr(writebehind, "MAX_PENDING", 1 << 16)
    gate = threading.Event()
    most = []

    class Slow(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            gate.wait()
            most.append(writebehind._WRITER.pending)
            return memoryview(b).nbytes

    f = Behind(Slow())
    t = threading.Thread(target=lambda: [f.write(np.zeros(1 << 12, np.int64)) for _ in range(20)])
    t.start()
    t.join(0.5)
    assert t.is_alive()  # the writer is held: the caller waits for room instead of queueing it all
    assert writebehind._WRITER.pending <= 1 << 16
    gate.set()
    t.join()
    f.wait()
    assert max(most) <= 1 << 16


def test_a_failed_write_of_a_spill_directory_is_raised_by_its_next_write_and_settle(tmp_path):
    from lmtools.errors import LmError
    from lmtools.io.countstream import SpillDir

    with SpillDir(str(tmp_path)) as spill:
        f = Behind(_Full(8), spill)
        f.write(np.zeros(4, np.int64))
        writebehind.wait_all()
        with pytest.raises(LmError) as e:
            spill.wrote(32)  # another file's write in the same directory
        assert "No space left" in e.value.message and str(tmp_path) in e.value.message
        with pytest.raises(LmError):
            spill.settle()
    with SpillDir(str(tmp_path)) as other:
        other.wrote(32)  # another directory is not concerned
        other.settle()


def test_a_block_larger_than_the_bound_is_waited_for(monkeypatch):
    # the caller must not go on to make its next large block while this one is held (memory budget)
    monkeypatch.setattr(writebehind, "MAX_PENDING", 1 << 10)
    done = []

    class Slow(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            threading.Event().wait(0.2)
            done.append(memoryview(b).nbytes)
            return memoryview(b).nbytes

    f = Behind(Slow())
    f.write(np.zeros(1 << 12, np.int64))
    assert done == [1 << 15]
