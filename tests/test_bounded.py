"""lm-train in a memory budget (lmtools.bounded, lm-train -S/-T): the partitions on disk give the
model of the in-memory estimation, array for array and byte for byte, and the temporary files never
outlive the run."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lmtools.bounded import choose_parts, estimate_bounded
from lmtools.errors import LmError
from lmtools.io.countstream import SpillDir, iter_sorted_blocks
from lmtools.io.spill import BlockWriter
from lmtools.ngram.counting import count_text
from lmtools.ngram.smoothing import smooth
from tests.conftest import SHAKESPEARE, error_line, run_prog

FORCE = "LMTOOLS_TEST_BUDGET"  # bytes: a budget below the documented minimum, to force the disk path


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("bounded") / "part.txt"
    path.write_text("".join(SHAKESPEARE.read_text().splitlines(keepends=True)[:6000]))
    return path


@pytest.fixture(scope="module")
def counts4(text):
    return count_text([str(text)], 4)


def _estimate(counts, tmp_path, parts, block_rows=997, **kw):
    with SpillDir(str(tmp_path)) as space:
        it = iter_sorted_blocks(counts, block_rows)
        head = next(it)
        model = estimate_bounded(head, it, space, 1 << 16, parts=parts, **kw)
        arrays = [[a.load() if hasattr(a, "chunks") else a for a in arrays]
                  for arrays in (model.ngrams, model.logprob, model.backoff)]
    assert os.listdir(tmp_path) == [], "the spill directory outlived its run"
    return model, arrays


@pytest.mark.parametrize("method,kw", [
    ("kn-modified", {}), ("kn-modified", {"kenlm_compat": True}), ("kn-modified", {"interpolate": False}),
    ("kn-modified", {"prune": [0, 1, 2]}), ("kn", {}), ("abs", {}), ("wb", {}), ("stupid", {}), ("katz", {}),
    ("add-k", {"k": 0.5}), ("mle", {}), ("kn-modified", {"order": 2}),
])
@pytest.mark.parametrize("parts", [1, 5])
def test_equal_to_the_in_memory_estimation(counts4, tmp_path, method, kw, parts):
    ref = smooth(counts4, method, **kw)
    model, (ngrams, logprob, backoff) = _estimate(counts4, tmp_path, parts, method=method, **kw)
    assert model.info == ref.info and list(model.info) == list(ref.info)
    assert model.method == ref.method and model.scores_only == ref.scores_only
    assert len(ngrams) == ref.order
    for n in range(ref.order):
        assert np.array_equal(ngrams[n], ref.ngrams[n]), n
        assert np.array_equal(logprob[n], ref.logprob[n]), n  # bit for bit, not approximately
        assert np.array_equal(backoff[n], ref.backoff[n]), n


def test_empty_partitions_and_one_word_blocks(tmp_path):
    """More partitions than next-to-last words (most are empty) and blocks of one row."""
    lines = ["a b a b", "b a", "a a a b b"]
    path = tmp_path / "t.txt"
    path.write_text("\n".join(lines) + "\n")
    counts = count_text([str(path)], 3)
    ref = smooth(counts, "kn-modified")
    out = tmp_path / "spill"
    out.mkdir()
    model, (ngrams, logprob, backoff) = _estimate(counts, out, 40, block_rows=1)
    for n in range(3):
        assert np.array_equal(ngrams[n], ref.ngrams[n])
        assert np.array_equal(logprob[n], ref.logprob[n])
        assert np.array_equal(backoff[n], ref.backoff[n])


@pytest.mark.parametrize("tokens", ["kept", "unknown", "too few"])
def test_partitions_go_to_disk_packed(counts4, tmp_path, monkeypatch, tokens):
    """The counts of orders >= 2 are spilled packed (io.countstream.RunFile: fewer bytes than int32
    ids and uint32 counts), whatever the header says of the tokens; a count above the header's tokens
    and sentence ends is refused, not cut."""
    import dataclasses

    import lmtools.bounded as B
    from lmtools.errors import LmError

    made = []

    class Spy(B.RunFile):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)

    monkeypatch.setattr(B, "RunFile", Spy)
    ref = smooth(counts4, "kn-modified")
    with SpillDir(str(tmp_path)) as space:
        it = iter_sorted_blocks(counts4, 997)
        head = next(it)
        if tokens == "unknown":
            head = dataclasses.replace(head, tokens=0, sentences=0)
        elif tokens == "too few":
            head = dataclasses.replace(head, tokens=5, sentences=0)
        if tokens == "too few":
            with pytest.raises(LmError, match="counted more often than the 5 tokens"):
                estimate_bounded(head, it, space, 1 << 16, parts=3)
            return
        model = estimate_bounded(head, it, space, 1 << 16, parts=3)
        for n in range(1, 4):
            assert np.array_equal(model.logprob[n].load(), ref.logprob[n])
    assert len(made) == 3 * 3  # three partitions of orders 2..4
    assert all(0 < r.nbytes < r.m * (4 * r.n + 4) for r in made)


def test_partitions_follow_the_budget():
    sizes = [10_000, 1_000_000, 2_000_000]
    assert choose_parts(sizes, 1 << 40) == 1
    small, large = choose_parts(sizes, 1 << 28), choose_parts(sizes, 1 << 30)
    assert small > large >= 1


def test_a_partition_larger_than_the_budget_is_said(counts4, tmp_path):
    said = []
    _estimate(counts4, tmp_path, 2, warn=said.append)  # 65536 bytes: any partition is larger
    assert len(said) == 1 and "the largest partition" in said[0] and "-S 0 MiB" in said[0]


def test_trie_levels_are_streamed_sorted_order_by_order(counts4):
    """lm-count's trie layout (Levels), sorted one order at a time, gives the sorted stream of the
    Counts; a repeated n-gram is refused."""
    from lmtools.io.models import counts_to_parts, levels_from_parts

    head, parts = counts_to_parts(counts4)
    levels = levels_from_parts(head, parts, "x")
    want = list(iter_sorted_blocks(counts4, 997))
    got = list(iter_sorted_blocks(levels, 997, check="x"))
    assert got[0].sizes == want[0].sizes and np.array_equal(got[0].unigrams, want[0].unigrams)
    assert len(got) == len(want)
    for (n, r, c), (n2, r2, c2) in zip(got[1:], want[1:]):
        assert n == n2 and np.array_equal(r, r2) and np.array_equal(c, c2) and c.dtype == np.int64
    prefix, word, count = levels.levels[1]
    levels.levels[1] = (np.append(prefix, prefix[:1]), np.append(word, word[:1]), np.append(count, count[:1]))
    with pytest.raises(LmError, match="order 3 has repeated n-grams"):
        list(iter_sorted_blocks(levels, 997, check="x"))


def test_a_sorted_stream_read_by_path_releases_its_pages_and_stays_valid(counts4, tmp_path):
    """iter_sorted_counts drops each block's pages once consumed (MappedModel.release): the blocks it
    gave, read again afterwards, still hold the stream's rows and counts."""
    from lmtools.io.countstream import iter_sorted_counts, write_sorted_counts
    from lmtools.io.modelfile import map_model

    it = iter_sorted_blocks(counts4, 300)
    head = next(it)
    path = tmp_path / "s.lm"
    with open(path, "wb") as f:
        write_sorted_counts(f, head, ((n, r, c) for n, r, c in it if n >= 2))
    got = list(iter_sorted_counts(str(path), 300))[1:]  # every block consumed, so released
    want = list(iter_sorted_blocks(counts4, 300))[1:]
    assert len(got) == len(want) > 10
    for (n, r, c), (n2, r2, c2) in zip(got, want):
        assert n == n2 and np.array_equal(r, r2) and np.array_equal(c, c2)
    mapped = map_model(str(path))
    before = {k: np.array(v) for k, v in mapped.arrays.items()}
    mapped.release(list(mapped.arrays))
    assert all(np.array_equal(mapped.arrays[k], v) for k, v in before.items())


def test_a_full_disk_is_one_error_and_leaves_nothing(counts4, tmp_path, monkeypatch):
    calls = {"n": 0}
    plain = BlockWriter.append

    def append(self, block):
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        plain(self, block)

    monkeypatch.setattr(BlockWriter, "append", append)
    with pytest.raises(LmError) as e:
        _estimate(counts4, tmp_path, 3)
    assert "No space left" in e.value.message and "-T" in e.value.hint
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# lm-train -S


@pytest.fixture(scope="module")
def counts_file(text, tmp_path_factory):
    d = tmp_path_factory.mktemp("bounded-cli")
    out = d / "c4.lm"
    r = run_prog("lm-count", "-n", "4", text, "-o", out)
    assert r.returncode == 0, r.stderr
    return out


def _train(*args, budget=None, cwd=None):
    env = {FORCE: str(budget)} if budget else None
    r = run_prog("lm-train", "-q", *args, env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr.decode()
    return r


@pytest.mark.slow  # one of the slowest of make test (first compiles of its kernels): in the slow set CI runs
def test_cli_same_bytes_on_disk_and_in_memory(counts_file, tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    ref, ref_nq, ref_arpa = tmp_path / "ref.lm", tmp_path / "ref-nq.lm", tmp_path / "ref.arpa"
    _train(counts_file, "-o", ref)
    _train(counts_file, "--no-query-tables", "-o", ref_nq)
    _train(counts_file, "--arpa", "-o", ref_arpa)
    need = 160 * sum(int(x) for x in
                     subprocess.run([sys.executable, "-c", f"from lmtools.io.modelfile import map_model;"
                                     f"print(*map_model({str(counts_file)!r}).header['sizes'])"],
                                    capture_output=True, text=True).stdout.split())
    # a budget below the need: a few partitions, and room for the query tables
    out = tmp_path / "b.lm"
    _train(counts_file, "-T", temp, "-o", out, budget=need * 4 // 5)
    assert out.read_bytes() == ref.read_bytes()
    # a budget too small for the query tables: the model is written from disk without them
    out2 = tmp_path / "b2.lm"
    _train(counts_file, "-T", temp, "-o", out2, budget=need // 40)
    assert out2.read_bytes() == ref_nq.read_bytes()
    out3 = tmp_path / "b.arpa"
    _train(counts_file, "-T", temp, "--arpa", "-o", out3, budget=need // 40)
    assert out3.read_bytes() == ref_arpa.read_bytes()
    assert os.listdir(temp) == []


def test_cli_pipe_with_a_budget(text, tmp_path):
    count = subprocess.Popen([sys.executable, "-m", "lmtools.cli.count", "-n", "3", str(text)],
                             stdout=subprocess.PIPE)
    data = count.stdout.read()
    count.wait()
    ref = run_prog("lm-train", "-q", input=data)
    ref_nq = run_prog("lm-train", "-q", "--no-query-tables", input=data)
    # a budget too small for the query tables: written from disk without them
    onto_disk = run_prog("lm-train", "-q", "-S", "1M", "-T", tmp_path, input=data, env={FORCE: "300000"})
    assert ref.returncode == 0 and onto_disk.returncode == 0, onto_disk.stderr
    assert onto_disk.stdout == ref_nq.stdout
    # -S given and the counts fit: read whole, estimated in memory, the same bytes again
    fits = run_prog("lm-train", "-q", "-S", "2G", "-T", tmp_path, input=data)
    assert fits.stdout == ref.stdout
    assert os.listdir(tmp_path) == []


def test_cli_bad_budget_and_temp_dir(counts_file, tmp_path):
    r = run_prog("lm-train", counts_file, "-S", "lots")
    assert "-S/--memory" in error_line(r, "lm-train", 2)
    r = run_prog("lm-train", counts_file, "-T", tmp_path / "missing", "-o", tmp_path / "x.lm")
    assert "does not exist" in error_line(r, "lm-train", 2)
    assert not (tmp_path / "x.lm").exists()
    r = run_prog("lm-train", "--method", "ffnn", "-S", "1G", counts_file)
    assert "--memory" in error_line(r, "lm-train", 2)


@pytest.mark.slow
def test_cli_sigterm_on_disk_leaves_no_temporary_file(tmp_path):
    """A budget that forces many partitions, SIGTERM once the spill directory holds files: exit 143,
    no spill directory, no output."""
    big = tmp_path / "big.txt"
    big.write_text(SHAKESPEARE.read_text() * 2)
    counts = tmp_path / "c5.lm"
    assert run_prog("lm-count", "-n", "5", big, "-o", counts).returncode == 0
    temp = tmp_path / "temp"
    temp.mkdir()
    env = dict(os.environ, **{FORCE: "2000000"})
    p = subprocess.Popen([sys.executable, "-m", "lmtools.cli.train", counts, "-T", temp, "-o", tmp_path / "m.lm"],
                         env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not any(os.scandir(temp)):
        time.sleep(0.05)
    while time.time() < deadline and not any(os.scandir(next(os.scandir(temp)).path)):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert os.listdir(temp) == []
    assert not (tmp_path / "m.lm").exists()
    assert [f for f in os.listdir(tmp_path) if f.startswith(".m.lm")] == []


def test_cli_text_files_counted_and_estimated_in_a_budget(text, tmp_path):
    """lm-train FILE counts in the budget (runs on disk) and estimates on disk: the pipe's model."""
    temp = tmp_path / "temp"
    temp.mkdir()
    count = run_prog("lm-count", "-n", "3", text)
    ref = run_prog("lm-train", "-q", "--no-query-tables", input=count.stdout)
    out = tmp_path / "m.lm"
    _train("-n", "3", text, "-T", temp, "-o", out, budget=400000)
    assert out.read_bytes() == ref.stdout
    assert os.listdir(temp) == []


# ----------------------------------------------------------------------------------------------
# The merge written straight into the model file


def _model_bytes(model, stream=None) -> bytes:
    import io

    from lmtools.io.models import save_model

    out = stream if stream is not None else io.BytesIO()
    save_model(model, out, query_tables=False)
    if stream is None:
        return out.getvalue()
    stream.close()
    with open(stream.name, "rb") as f:
        return f.read()


@pytest.mark.parametrize("method,kw", [("kn-modified", {}), ("stupid", {}), ("kn-modified", {"prune": [0, 1, 2]})])
def test_the_merge_is_written_into_a_model_file_in_place(counts4, tmp_path, monkeypatch, method, kw):
    """Into a regular file, each order's merge writes its three arrays at their places in the file (no
    temporary copy: OrderMerge.on_disk is never called); into a stream that cannot seek, through
    temporary files. The same bytes as the in-memory model's either way, and no file left behind."""
    import lmtools.bounded as B

    ref = _model_bytes(smooth(counts4, method, **kw))
    spilled = []
    plain = B.OrderMerge.on_disk

    def on_disk(self):
        if not self.done:
            spilled.append(self.n)  # merged now, into temporary files
        return plain(self)

    monkeypatch.setattr(B.OrderMerge, "on_disk", on_disk)
    temp = tmp_path / "temp"
    temp.mkdir()
    for into_file in (True, False):
        with SpillDir(str(temp)) as space:
            it = iter_sorted_blocks(counts4, 997)
            head = next(it)
            model = estimate_bounded(head, it, space, 1 << 16, parts=3, method=method, **kw)
            assert all(type(a).__name__ == "MergedArray" for a in model.ngrams[1:])
            out = open(tmp_path / "m.lm", "wb") if into_file else None
            assert _model_bytes(model, out) == ref
        assert spilled == ([] if into_file else [2, 3, 4])
        assert os.listdir(temp) == []


def test_a_model_file_written_in_place_reads_back(counts4, tmp_path):
    """The descriptors written last (with the checksums of the data written at their places) make a
    file that loads, mapped and streamed, to the in-memory model's arrays."""
    from lmtools.io.models import load_model
    from lmtools.io.modelfile import map_model

    ref = smooth(counts4, "kn-modified")
    path = tmp_path / "m.lm"
    with SpillDir(str(tmp_path)) as space:
        it = iter_sorted_blocks(counts4, 997)
        model = estimate_bounded(next(it), it, space, 1 << 16, parts=2)
        _model_bytes(model, open(path, "wb"))
    assert map_model(str(path), verify=True) is not None
    for loaded in (load_model(str(path)), load_model(open(path, "rb"))):
        for n in range(ref.order):
            assert np.array_equal(np.asarray(loaded.ngrams[n]), ref.ngrams[n])
            assert np.array_equal(np.asarray(loaded.logprob[n]), ref.logprob[n])
            assert np.array_equal(np.asarray(loaded.backoff[n]), ref.backoff[n])


def test_only_a_regular_file_not_appended_to_is_written_at_offsets(tmp_path):
    import io

    from lmtools.io.modelwrite import _positional_fd

    with open(tmp_path / "f", "wb") as f:
        assert _positional_fd(f) == f.fileno()
    with open(tmp_path / "f", "ab") as f:
        assert _positional_fd(f) is None  # O_APPEND: every write would go to the end
    assert _positional_fd(io.BytesIO()) is None
    r, w = os.pipe()
    with os.fdopen(w, "wb") as f:
        assert _positional_fd(f) is None
    os.close(r)


def test_a_full_disk_under_the_model_written_in_place(counts_file, tmp_path, monkeypatch):
    """A write of the model's data at its place that fails (the writer thread's) is one line naming the
    output; no output, no temporary file, no .part left."""
    import lmtools.io.modelwrite as MF
    from tests.inprocess import invoke

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(MF._At, "write", full)
    monkeypatch.setenv(FORCE, "20000")
    temp = tmp_path / "temp"
    temp.mkdir()
    out = tmp_path / "out" / "m.lm"
    out.parent.mkdir()
    r = invoke("lm-train", "-q", counts_file, "-T", temp, "-o", out)
    assert r.exit_code == 1, (r.stderr, r.exception)
    lines = [x for x in r.stderr.strip().splitlines() if "largest partition" not in x]  # (the tiny budget's warning)
    assert len(lines) == 1 and "m.lm: cannot write (No space left on device)" in lines[0], r.stderr
    assert os.listdir(out.parent) == [] and os.listdir(temp) == []
