"""Resources: long lines (linear reading, a cap with one clear error) and the memory estimate that
stops a step before it allocates more than the machine has."""

import io
import subprocess
import sys
import time

import numpy as np
import pytest

from lmtools.errors import LmError
from lmtools.io.text import TextOptions, iter_line_chunks
from tests.conftest import ROOT, SHAKESPEARE


def _chunks(data: bytes, chunk_bytes: int, max_line: int, streaming: bool = False):
    return list(iter_line_chunks(io.BytesIO(data), "t.txt", chunk_bytes, TextOptions(max_line=max_line), streaming))


# ----------------------------------------------------------------------------------------------
# Long lines


def test_long_line_is_read_in_linear_time():
    # 32 MB in one line, read 16 kB at a time: concatenating the pieces again at every read (as the
    # reader once did) copies about 32 GB; joining them once copies 32 MB.
    line = b"ab " * ((32 << 20) // 3)
    t = time.perf_counter()
    chunks = _chunks(line + b"\nlast\n", 16 << 10, 64 << 20)
    elapsed = time.perf_counter() - t
    assert b"".join(c.data for c in chunks) == line + b"\nlast\n"
    assert chunks[0].first_line == 1 and all(c.first_line == 2 for c in chunks[1:])
    assert elapsed < 3.0, f"reading a 32 MB line took {elapsed:.1f} s"


@pytest.mark.parametrize("streaming", [False, True])
def test_chunks_keep_lines_whole_and_numbered(streaming):
    data = b"".join(b"w%d " % i * (i % 7) + b"\n" for i in range(3000)) + b"no newline at the end"
    chunks = _chunks(data, 1000, 1 << 20, streaming)
    assert b"".join(c.data for c in chunks) == data
    line = 1
    for c in chunks:
        assert c.first_line == line
        assert c.data.endswith(b"\n") or c is chunks[-1]
        line += c.data.count(b"\n")


def test_line_cap_names_file_and_line():
    ok = b"x" * 100
    # exactly max_line bytes (without the newline) is allowed, one more is not
    assert b"".join(c.data for c in _chunks(b"a\n" + ok + b"\n", 16, 100)) == b"a\n" + ok + b"\n"
    for data, chunk_bytes in ((b"a\nb\n" + ok + b"y\nc\n", 16),  # spans reads
                              (b"a\nb\n" + ok + b"y\nc\n", 1 << 20),  # inside one read
                              (b"a\nb\n" + ok + b"y", 16)):  # the last line, no newline
        with pytest.raises(LmError) as e:
            _chunks(data, chunk_bytes, 100)
        assert str(e.value).startswith("t.txt:3: line longer than 100 bytes (--max-line 100)")
        assert "--max-line" in e.value.hint


def test_endless_line_stops_at_the_cap():
    """A stream that never sends a newline ends with the error once the cap is reached."""

    class Endless(io.RawIOBase):
        reads = 0

        def readable(self):
            return True

        def readinto(self, b):
            Endless.reads += 1
            b[:] = b"z" * len(b)
            return len(b)

    with pytest.raises(LmError, match=r"t\.txt:1: line longer than 1048576 bytes"):
        list(iter_line_chunks(io.BufferedReader(Endless()), "t.txt", 64 << 10, TextOptions(max_line=1 << 20)))
    assert Endless.reads < 100


def test_long_sentence_counts_equal_one_block(monkeypatch):
    """A sentence longer than a counting block is counted in pieces, with the same result."""
    import lmtools.ngram.counting as counting
    from lmtools.io.text import TokenTable

    text = SHAKESPEARE.read_bytes()[:60000]
    data = text.replace(b"\n", b" ") + b"\n" + text[:3000]
    results = []
    for block in (1 << 18, 5, 997):
        monkeypatch.setattr(counting, "BLOCK_TOKENS", block)
        table = TokenTable()
        counter = counting.NgramCounter(4)
        counter.add(table.encode(data, True)[0])
        results.append(counter.result(table.words()))
    for other in results[1:]:
        for a, b in zip(results[0].ngrams + results[0].counts, other.ngrams + other.counts):
            np.testing.assert_array_equal(a, b)


def test_lm_count_refuses_an_endless_line_from_a_pipe(tmp_path):
    # a generator process writes words and never a newline; lm-count must stop at --max-line
    gen = subprocess.Popen([sys.executable, "-c", "import sys\nwhile True: sys.stdout.buffer.write(b'word ' * 8192)"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        r = subprocess.run([sys.executable, "-m", "lmtools.cli.count", "--max-line", "2M", "-o",
                            str(tmp_path / "c.lm")], stdin=gen.stdout, capture_output=True, timeout=120)
    finally:
        gen.kill()
        gen.wait()
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert err == "lm-count: error: <stdin>:1: line longer than 2097152 bytes (--max-line 2097152); " \
                  "put one sentence per line, or raise --max-line (a line costs about twice its size in memory)\n"
    assert list(tmp_path.iterdir()) == []


def test_max_line_option_in_every_text_reader(tmp_path, prog):
    text = tmp_path / "t.txt"
    text.write_bytes(b"a b\n" + b"c " * 600 + b"\nd\n")
    r = prog("lm-count", "--max-line", "1K", text, "-o", tmp_path / "c.lm")
    assert r.returncode == 1 and f"{text}:2: line longer than 1024 bytes".encode() in r.stderr
    r = prog("lm-count", "--max-line", "2K", text, "-o", tmp_path / "c.lm")
    assert r.returncode == 0, r.stderr
    r = prog("lm-score", "-m", tmp_path / "c.lm", "--max-line", "100", text)
    assert r.returncode == 1
    assert f"{text}:2: line longer than 100 bytes".encode() in r.stderr
    r = prog("lm-count", "--max-line", "lots", text)
    assert r.returncode == 2 and b"--max-line" in r.stderr
    for name in ("lm-count", "lm-ppl", "lm-score", "lm-train"):
        assert "--max-line" in (ROOT / "man" / f"{name}.1").read_text().replace("\\-", "-")


# ----------------------------------------------------------------------------------------------
# Memory: estimated before a step, refused in one line when it is not there


def test_check_says_need_available_and_what_to_do(monkeypatch):
    from lmtools import memory

    monkeypatch.setattr(memory, "available", lambda: (300_000_000, "(MemAvailable)"))
    monkeypatch.delenv("LMTOOLS_MEMORY_CHECK", raising=False)
    memory.check(200_000_000, "a step", "do less")  # fits
    with pytest.raises(LmError) as e:
        memory.check(1_500_000_000, "estimating a 5-gram model", "use a smaller order")
    assert str(e.value) == ("estimating a 5-gram model needs about 1.5 GB of memory, 300 MB available "
                            "(MemAvailable); use a smaller order; LMTOOLS_MEMORY_CHECK=0 skips this check")
    monkeypatch.setenv("LMTOOLS_MEMORY_CHECK", "0")
    memory.check(1_500_000_000, "estimating a 5-gram model", "use a smaller order")


def test_estimates_follow_the_sizes():
    from lmtools import memory

    # PTB 3-gram and 5-gram (sizes per order), as measured (query layout 4): build_query_tables raised a
    # process's peak RSS by 34 MB and 102 MB (the model's arrays already read, the kernels warm): at
    # most a third more
    ptb3 = [10001, 264990, 586558]
    ptb5 = ptb3 + [717733, 737952]
    assert 34e6 < memory.estimate_query(ptb3) < 1.33 * 34e6
    assert 102e6 < memory.estimate_query(ptb5) < 1.33 * 102e6
    # lm-train's peak RSS rose by 73 and 199 MB (the counts, 10 and 28 MB, included)
    assert 62e6 < memory.estimate_smoothing(ptb3) < 90e6
    assert 171e6 < memory.estimate_smoothing(ptb5) < 220e6
    assert memory.estimate_ffnn(10000, 100, 200, 4, 0, 64, 10**6, "adam") > \
        memory.estimate_ffnn(10000, 100, 200, 4, 0, 64, 10**6, "sgd") > 7 * 4 * 10000 * 200


def _no_address_space(limit: int):
    import resource

    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return preexec


def test_ffnn_refused_before_training_under_ulimit_v(tmp_path):
    """Under an address-space limit (ulimit -v), an FFNN far too large stops with one line at once."""
    text = tmp_path / "t.txt"
    text.write_bytes(SHAKESPEARE.read_bytes()[:20000])
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "lmtools.cli.train", "--method", "ffnn", "--hidden", "1000000", "--dim",
                        "1000", text, "-o", tmp_path / "f.lm"], capture_output=True, timeout=300,
                       preexec_fn=_no_address_space(3 << 30))
    elapsed = time.perf_counter() - t
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err and "MemoryError" not in err, err
    assert err.startswith("lm-train: error: training the FFNN (V "), err
    assert "--hidden 1000000" in err and "available under the address-space limit (ulimit -v 3145728)" in err
    assert "a smaller --hidden or --dim" in err and "LMTOOLS_MEMORY_CHECK=0" in err
    assert not (tmp_path / "f.lm").exists()
    assert elapsed < 60


_STEPS = r"""
import resource, sys, time
from lmtools.errors import LmError
from lmtools.ngram.counting import count_levels
from lmtools.ngram.merge import merge_levels
from lmtools.ngram.query import QueryModel
from lmtools.ngram.smoothing import smooth
from lmtools.memory import _vm_size

levels = count_levels([sys.argv[1]], 5)
counts = levels.to_counts()
model = smooth(counts)
QueryModel(smooth(count_levels([sys.argv[2]], 5).to_counts())).tables()  # the query kernels, loaded
limit = _vm_size() + (2 << 20)  # 2 MB more than this process maps now
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
for name, step in (("smooth", lambda: smooth(counts)), ("query", lambda: QueryModel(model).tables()),
                   ("merge", lambda: merge_levels([levels, levels]))):
    t = time.perf_counter()
    try:
        step()
        print(name, "ran")
    except LmError as e:
        print(name, "refused %.3f" % (time.perf_counter() - t), e)
    except MemoryError:
        print(name, "MemoryError")
"""


def test_steps_refused_before_allocating_under_ulimit_v(tmp_path):
    """Estimation, query tables and merging check the memory they need against RLIMIT_AS first."""
    text = tmp_path / "t.txt"
    text.write_bytes(SHAKESPEARE.read_bytes()[:300000])
    small = tmp_path / "s.txt"
    small.write_bytes(SHAKESPEARE.read_bytes()[:70000])
    r = subprocess.run([sys.executable, "-c", _STEPS, text, small], capture_output=True, timeout=300,
                       env={**__import__("os").environ, "LMTOOLS_MEMORY_CHECK": "1"})
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert set(lines) == {"smooth", "query", "merge"}, out
    for name, what in (("smooth", "estimating a 5-gram model from"), ("query", "loading the 5-gram model for queries"),
                       ("merge", "merging 2 count files")):
        assert lines[name].startswith("refused "), out
        seconds, message = lines[name][len("refused "):].split(" ", 1)
        assert float(seconds) < 0.5, out  # refused before the work, not after it
        assert what in message and "available under the address-space limit" in message, out
