"""Writing a model through a mapping of the output file (io.modelwrite._write_mapped): the bytes
written one array after another, whatever the windows and threads; only for regular files not opened
for appending; a full disk or a file-size limit is one error line and leaves nothing."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import lmtools.io.modelwrite as MW
from tests.conftest import error_line, shakespeare_lines
from tests.inprocess import invoke, keep_signal_handlers  # noqa: F401

HEADER = {"order": 1, "vocab": ["<unk>", "<s>", "</s>"]}


def _arrays(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"rows": rng.integers(0, 1000, (3000, 3)).astype(np.int32), "empty": np.zeros(0, np.float32),
            "p": rng.random(40_001).astype(np.float32), "odd": np.arange(7, dtype=np.uint8),
            "big": rng.random(30_000), "big_endian": np.arange(5000, dtype=">i4"),
            "strided": rng.integers(0, 9, (400, 6)).astype(np.int64)[:, ::2]}


def _streamed(arrays: dict) -> bytes:
    buf = io.BytesIO()
    MW.write_model_arrays(buf, "counts", HEADER, list(arrays), iter(arrays.items()))
    return buf.getvalue()


@pytest.fixture
def copies(monkeypatch):
    """The mapped path for any size, in small windows; records each window copy made."""
    made = []
    real = MW._copy_mapped
    monkeypatch.setattr(MW, "MAPPED_MIN_BYTES", 1)
    monkeypatch.setattr(MW, "_copy_mapped", lambda fd, at, data, huge=False: (made.append((at, data.nbytes)),
                                                                               real(fd, at, data, huge)))
    return made


@pytest.mark.parametrize("window", [4096, 3 * 4096 + 8, 1 << 20])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_mapped_writer_writes_the_streamed_bytes(tmp_path, copies, monkeypatch, window, seed):
    monkeypatch.setattr(MW, "_WINDOW", window)
    arrays = _arrays(seed)
    path = tmp_path / "m.lm"
    with open(path, "wb") as f:  # write-only, as the shell opens `> m.lm`
        f.write(b"before")
        MW.write_model(f, "counts", HEADER, arrays)
        f.write(b"after")  # the stream is left at the model's end
    assert path.read_bytes() == b"before" + _streamed(arrays) + b"after"
    data = sum(int(np.asarray(a).nbytes) for a in arrays.values())
    assert sum(n for _, n in copies) == data  # every array byte went through a mapping
    assert len(copies) >= min(2, data // window)  # in windows, split between threads


def test_large_query_tables_are_written_in_huge_pages(tmp_path, monkeypatch):
    """The arrays probed at random (HUGE_PAGE_ARRAYS) from HUGE_PAGE_MIN_BYTES on are copied with the
    huge-page advice, the others without; the bytes are those of the stream writer either way."""
    monkeypatch.setattr(MW, "MAPPED_MIN_BYTES", 1)
    monkeypatch.setattr(MW, "HUGE_PAGE_MIN_BYTES", 1 << 16)
    advised = []
    real = MW._advise_huge
    monkeypatch.setattr(MW, "_advise_huge", lambda mm: (advised.append(len(mm)), real(mm)))
    rng = np.random.default_rng(5)
    arrays = {"query.tab": rng.integers(0, 2**63, 1 << 14, dtype=np.uint64),  # 128 kB: advised
              "trie.packed": np.arange(100, dtype=np.uint64),  # too small
              "ngrams.3": rng.integers(0, 9, (1 << 14, 3), dtype=np.int32)}  # not probed at random
    path = tmp_path / "m.lm"
    with open(path, "wb") as f:
        MW.write_model(f, "counts", HEADER, arrays)
    assert path.read_bytes() == _streamed(arrays)
    assert advised and sum(advised) >= arrays["query.tab"].nbytes
    assert sum(advised) < arrays["query.tab"].nbytes + arrays["ngrams.3"].nbytes


def test_not_mapped_where_it_cannot_be(tmp_path, copies):
    """A stream without a file, a file opened for appending: written one array after another."""
    arrays = _arrays(3)
    buf = io.BytesIO()
    MW.write_model(buf, "counts", HEADER, arrays)
    path = tmp_path / "a.lm"
    with open(path, "ab") as f:
        MW.write_model(f, "counts", HEADER, arrays)
    assert buf.getvalue() == path.read_bytes() == _streamed(arrays)
    assert copies == []


def test_without_fallocate_the_model_is_written_as_a_stream(tmp_path, copies, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    arrays = _arrays(4)
    path = tmp_path / "m.lm"
    with open(path, "wb") as f:
        MW.write_model(f, "counts", HEADER, arrays)
    assert path.read_bytes() == _streamed(arrays) and copies == []


@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("counts")
    text = d / "train.txt"
    text.write_text("\n".join(shakespeare_lines()[:3000]) + "\n", encoding="utf-8")
    from tests.conftest import run_prog

    out = d / "c3.lm"
    r = run_prog("lm-count", "-n", "3", text, "-o", out)
    assert r.returncode == 0, r.stderr
    return out


def test_a_full_disk_is_one_line_and_leaves_nothing(counts_file, tmp_path, copies, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "out" / "m.lm"
    out.parent.mkdir()
    r = invoke("lm-train", "-q", counts_file, "-o", out)
    assert r.exit_code == 1, (r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "m.lm: cannot write (No space left on device)" in lines[0], r.stderr
    assert os.listdir(out.parent) == [] and copies == []


def test_a_failed_copy_is_one_line_and_leaves_nothing(counts_file, tmp_path, copies, monkeypatch):
    def cannot_map(fd, at, data, huge=False):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(MW, "_copy_mapped", cannot_map)
    out = tmp_path / "m.lm"
    r = invoke("lm-train", "-q", counts_file, "-o", out)
    assert r.exit_code == 1, (r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "m.lm: cannot write (Cannot allocate memory)" in lines[0], r.stderr
    assert os.listdir(tmp_path) == []


def test_a_file_size_limit_in_a_real_process(tmp_path):
    """The model of all of Tiny Shakespeare (29 MB: written through the mapping) under RLIMIT_FSIZE:
    the space reserved first fails (EFBIG), one line, nothing left; no SIGXFSZ or SIGBUS."""
    import resource

    from tests.conftest import SHAKESPEARE

    counts = tmp_path / "c5.lm"
    r = subprocess.run([sys.executable, "-m", "lmtools.cli.count", "-n", "5", str(SHAKESPEARE), "-o", str(counts)],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    out.mkdir()

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    env = dict(os.environ)
    env.pop("LMTOOLS_DEBUG", None)
    r = subprocess.run([sys.executable, "-m", "lmtools.cli.train", "-q", str(counts), "-o", str(out / "m.lm")],
                       capture_output=True, env=env, preexec_fn=limit, timeout=300)
    line = error_line(r, "lm-train", 1)
    assert "m.lm: cannot write (File too large)" in line, line
    assert os.listdir(out) == []
