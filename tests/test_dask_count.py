"""lm-count --dask: counting on a Dask cluster gives lm-count's counts of the concatenated text, n-gram
for n-gram and id for id, whatever the byte ranges and partitions; a shard directory reads back as the
same counts; a worker killed mid-job changes nothing; bad text names its file and byte offset.

One LocalCluster of 2 worker processes for the module (starting one costs seconds); the CLI runs as
real processes, one with --dask local:2 and the others against the module's scheduler address.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lmtools import cluster
from lmtools.errors import LmError
from lmtools.io.text import TextOptions
from lmtools.io.textranges import iter_range_chunks, plan_ranges
from lmtools.ngram.counting import VocabOptions, count_text
from tests import naive
from tests.conftest import PTB, SHAKESPEARE, error_line, run_prog
from tests.inprocess import invoke, keep_signal_handlers  # noqa: F401 (an autouse fixture)

TEXT = SHAKESPEARE.read_bytes()


@pytest.fixture(scope="module")
def conn():
    import distributed

    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                 silence_logs=logging.ERROR)
    client = distributed.Client(c, set_as_default=False)
    client.run(cluster.quiet_task_errors)
    try:
        yield cluster.Connection(client, c, c.scheduler_address)
    finally:
        client.close()
        c.close()


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    """The first 240 KB of Tiny Shakespeare as three files cut inside lines (the last without its
    final newline: a file's end ends its line), and their concatenation with newlines added."""
    d = tmp_path_factory.mktemp("dask3")
    head = TEXT[:240_000]
    cuts = [0, head.index(b"\n", 70_000) + 1, head.index(b"\n", 150_000) + 1, len(head)]
    paths = []
    for i in range(3):
        part = head[cuts[i]:cuts[i + 1]]
        if i == 2:
            part = part.rstrip(b"\n")
        p = d / f"part{i}.txt"
        p.write_bytes(part)
        paths.append(str(p))
    return paths


def run_job(conn, paths, order, *, range_bytes, parts, vocab_opts=None, on_range=None, text_opts=None):
    ranges = plan_ranges(paths, range_bytes)
    totals, finished = cluster.count_job(conn, ranges, order, text_opts=text_opts or TextOptions(),
                                         vocab_opts=vocab_opts, parts=parts, on_range=on_range)
    return cluster.collect_counts(totals, finished, order, parts, text=(text_opts or TextOptions()).kind()), ranges


def assert_same_counts(a, b):
    assert a.vocab == b.vocab
    assert (a.tokens, a.sentences, a.text) == (b.tokens, b.sentences, b.text)
    assert a.order == b.order
    for n in range(1, a.order + 1):
        assert np.array_equal(a.ngrams[n - 1], b.ngrams[n - 1]), n
        assert np.array_equal(a.counts[n - 1], b.counts[n - 1]), n


def naive_check(counts, paths, order):
    """Against plain Python: word-tuple counts of orders 1..order (tests/naive.py) and ids in order of
    first occurrence."""
    text = "".join(open(p, encoding="utf-8").read() + ("" if open(p, "rb").read().endswith(b"\n") else "\n")
                   for p in paths)
    sents = naive.sentences(text)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for words in sents:
        for w in words:
            vocab.setdefault(w, len(vocab))
    assert counts.vocab == list(vocab)
    tables = naive.count_ngrams(sents, order)
    for n in range(1, order + 1):
        got = {tuple(counts.vocab[i] for i in row): c for row, c in counts.as_dict(n).items()}
        want = {g: c for g, c in tables[n - 1].items()}
        assert got == want, n


# ----------------------------------------------------------------------------------------------
# Byte ranges


@pytest.mark.parametrize("tail", [b"", b"\n"])
def test_ranges_hold_every_line_once_in_order(tmp_path, tail):
    data = b"a b\n\nccc dd e\nf\n\n\ngg hhh iiii jj\nk" + tail
    p = tmp_path / "t.txt"
    p.write_bytes(data)
    for size in range(1, len(data) + 2):
        ranges = plan_ranges([str(p)], size)
        pieces = [b"".join(c.data for c in iter_range_chunks(r)) for r in ranges]
        assert b"".join(pieces) == data, size
        full = [x for x in pieces if x]
        assert all(x.endswith(b"\n") for x in full[:-1]), size  # whole lines only


def test_a_compressed_file_is_one_range(tmp_path):
    import gzip

    p = tmp_path / "t.txt.gz"
    p.write_bytes(gzip.compress(TEXT[:50_000]))
    ranges = plan_ranges([str(p)], 1000)
    assert len(ranges) == 1 and ranges[0].compressed
    assert b"".join(c.data for c in iter_range_chunks(ranges[0])) == TEXT[:50_000]


def test_sort_rows_sums_repeats_in_lexicographic_order():
    """The partition sum's sort (packed keys, a rank beside each further group of columns) against
    a dict and Python's sort, for ids of 1 to 31 bits and rows of 1 to 7 words."""
    from lmtools.ngram.shuffle import sort_rows

    rng = np.random.default_rng(7)
    for trial in range(200):
        m, n = int(rng.integers(1, 300)), int(rng.integers(1, 8))
        V = int(rng.choice([2, 5, 100, 40_000, 2**31 - 1]))
        rows = rng.integers(0, V, size=(m, n)).astype(np.int32)
        if trial % 3 == 0:
            rows[: m // 2] = rows[0]  # many repeats
        counts = rng.integers(1, 10, size=m).astype(np.int64)
        want: dict = {}
        for r, c in zip(map(tuple, rows.tolist()), counts.tolist()):
            want[r] = want.get(r, 0) + c
        for runs in (False, True):
            got_rows, got_counts = sort_rows(rows, counts, runs)
            assert [tuple(r) for r in got_rows.tolist()] == sorted(want), (trial, m, n, V)
            assert got_counts.tolist() == [want[k] for k in sorted(want)]


# ----------------------------------------------------------------------------------------------
# Exact counts on the cluster


@pytest.mark.parametrize("order", [1, 4])
def test_cluster_counts_equal_lm_count(conn, three_files, order):
    """Orders 1..4 (a 4-gram job holds them all; order 1 alone: no n-grams to shuffle)."""
    counts, ranges = run_job(conn, three_files, order, range_bytes=30_000, parts=5)
    assert len(ranges) >= 8  # every file spread over several ranges
    assert_same_counts(counts, count_text(three_files, order))
    naive_check(counts, three_files, min(order, 2))


@pytest.mark.parametrize("vocab_opts", [VocabOptions(min_count=3), VocabOptions(vocab_size=500),
                                        VocabOptions(closed=["the", "king", "Citizen:", "zzz-unseen", "the"])],
                         ids=["min-count", "vocab-size", "closed"])
def test_cluster_vocabulary_options_equal_lm_count(conn, three_files, vocab_opts):
    counts, _ = run_job(conn, three_files, 3, range_bytes=40_000, parts=3, vocab_opts=vocab_opts)
    assert_same_counts(counts, count_text(three_files, 3, vocab_opts=vocab_opts))


def test_text_options_travel_to_the_workers(conn, three_files):
    opts = TextOptions(lower=True)
    counts, _ = run_job(conn, three_files, 2, range_bytes=50_000, parts=2, text_opts=opts)
    assert_same_counts(counts, count_text(three_files, 2, text_opts=opts))


def test_invalid_utf8_names_the_file_and_byte_offset(conn, tmp_path):
    data = bytearray(TEXT[:120_000])
    offset = data.index(b"\n", 90_000) + 5  # inside a line of a later range
    data[offset] = 0xFF
    p = tmp_path / "bad.txt"
    p.write_bytes(bytes(data))
    with pytest.raises(LmError) as e:
        run_job(conn, [str(p)], 2, range_bytes=25_000, parts=2)
    assert str(e.value).startswith(f"{p}: invalid UTF-8 at byte {offset} (byte 0xff); ")
    # with --encoding-errors=replace the same text counts as lm-count counts it
    opts = TextOptions(encoding_errors="replace")
    counts, _ = run_job(conn, [str(p)], 2, range_bytes=25_000, parts=2, text_opts=opts)
    assert_same_counts(counts, count_text([str(p)], 2, text_opts=opts))


def test_a_utf8_character_across_a_range_cut_is_fine(conn, tmp_path):
    line = ("ça été " * 10 + "\n").encode()  # 2-byte characters: some cuts fall inside one
    p = tmp_path / "fr.txt"
    p.write_bytes(line * 400)
    counts, ranges = run_job(conn, [str(p)], 3, range_bytes=1999, parts=2)
    assert len(ranges) > 15
    assert_same_counts(counts, count_text([str(p)], 3))


def test_urls_globs_and_compressed_inputs(conn, three_files, tmp_path):
    import gzip
    import shutil

    d = tmp_path / "in"
    d.mkdir()
    for i, p in enumerate(three_files):
        shutil.copy(p, d / f"{i}.txt")
    (d / "3.txt.gz").write_bytes(gzip.compress(TEXT[300_000:360_000]))
    from lmtools.io.textranges import expand_inputs

    paths = expand_inputs([f"file://{d}/*.txt", str(d / "*.gz")])
    assert paths == [f"file://{d}/{i}.txt" for i in range(3)] + [str(d / "3.txt.gz")]
    counts, ranges = run_job(conn, paths, 3, range_bytes=30_000, parts=3)
    assert ranges[-1].compressed and ranges[-1].start == 0 and ranges[-1].end is None
    local = [str(d / f"{i}.txt") for i in range(3)] + [str(d / "3.txt.gz")]
    assert_same_counts(counts, count_text(local, 3))


def test_text_output_is_lm_counts_bytes(conn, three_files):
    """--text lists the counts in a canonical order (ids, then sorted rows): the same bytes."""
    r = invoke("lm-count", "-q", "-n", "3", "--text", "--dask", conn.address, "--range-size", "50K", *three_files)
    plain = invoke("lm-count", "-q", "-n", "3", "--text", *three_files)
    assert r.exit_code == 0 and plain.exit_code == 0, r.stderr
    assert r.stdout_bytes == plain.stdout_bytes and len(r.stdout_bytes) > 100_000


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_retried_and_exact(conn, three_files):
    client = conn.client
    pids = client.run(os.getpid)
    killed = []

    def kill_one(r):
        if not killed:
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    counts, ranges = run_job(conn, three_files, 4, range_bytes=15_000, parts=4, on_range=kill_one)
    assert killed and len(ranges) > 10
    assert_same_counts(counts, count_text(three_files, 4))
    client.wait_for_workers(2, timeout=60)
    assert killed[0] not in client.run(os.getpid).values()  # it was replaced (nanny), not left running


# ----------------------------------------------------------------------------------------------
# Shards


def test_shards_read_back_as_the_same_counts(conn, three_files, tmp_path):
    from lmtools.io.countshards import is_shard_dir, read_partition
    from lmtools.io.models import load_levels, load_model
    from lmtools.ngram.partition import partition_of_rows

    out = tmp_path / "c.d"
    r = invoke("lm-count", "-n", "3", "--dask", conn.address, "--shards", "--partitions", "3",
               "--range-size", "40K", "-o", out, *three_files)
    assert r.exit_code == 0, r.stderr
    lines = r.stderr.splitlines()  # not a terminal: no progress bar, no summary; the dashboard
    assert len(lines) == 1 and lines[0].startswith("lm-count: dashboard at http"), lines
    assert is_shard_dir(str(out)) and sorted(os.listdir(out)) == ["meta.json", "part-00000.npz",
                                                                  "part-00001.npz", "part-00002.npz"]
    ref = count_text(three_files, 3)
    assert_same_counts(load_model(str(out)), ref)
    assert_same_counts(load_levels(str(out)).to_counts(), ref)
    for p in range(3):  # each file holds its partition's n-grams only, sorted
        rows, _ = read_partition(str(out), p)
        for r_ in rows:
            assert (partition_of_rows(r_, 3) == p).all()
    assert [f for f in os.listdir(tmp_path) if f.endswith((".part", ".old"))] == []


def test_workers_write_the_shards_the_client_gets_sizes(conn, three_files, tmp_path, monkeypatch):
    """With --shards each partition is summed and written by a worker: the client receives its sizes
    only (the task log's results are a few bytes), and the directory reads back as lm-count's counts."""
    import json

    from lmtools.io.models import load_model

    log = tmp_path / "tasks.jsonl"
    monkeypatch.setenv("LMTOOLS_DASK_TASKS", str(log))
    out = tmp_path / "c.d"
    r = invoke("lm-count", "-q", "-n", "3", "--dask", conn.address, "--shards", "--partitions", "4", "-o", out,
               *three_files)
    assert r.exit_code == 0, r.stderr
    assert_same_counts(load_model(str(out)), count_text(three_files, 3))
    tasks = [json.loads(line) for line in log.read_text().splitlines()]
    sums = [t for t in tasks if t["key"].startswith("lm-count-part-")]
    assert len(sums) == 4 and all(t["nbytes"] < 4096 for t in sums), sums
    assert sorted(os.listdir(out)) == ["meta.json"] + [f"part-0000{p}.npz" for p in range(4)]  # no .tmp left


def test_a_shard_a_worker_wrote_elsewhere_is_one_error(tmp_path):
    """A worker whose -o DIR is not the client's (not a shared filesystem): its file is not here."""
    from lmtools.cli.count_dask import _write_meta
    from lmtools.cli.output import directory_target
    from lmtools.io.countshards import is_shard_dir

    class Bar:
        def advance(self, n):
            pass

    target = directory_target(str(tmp_path / "c.d"), is_shard_dir, "count shards")
    totals = cluster.Totals(["<unk>", "<s>", "</s>"], np.array([0, 1, 1]), 1, 1, 0, 0)
    with pytest.raises(LmError, match="not in the directory here.*every worker sees"):
        with target.open() as tmp:
            _write_meta(target, tmp, totals, iter([(0, {"sizes": [1], "bytes": 100})]), 2, 1, None, {}, Bar())
    assert os.listdir(tmp_path) == []  # nothing at -o, no temporary directory


@pytest.mark.slow
def test_cli_local_cluster_and_readers(three_files, tmp_path):
    """The whole path as a user runs it: --dask local:2 to one counts file, equal as data to lm-count's;
    lm-train from a shard directory gives lm-train's model from that file."""
    out = tmp_path / "d.lm"
    r = run_prog("lm-count", "-n", "3", "--dask", "local:2", "-o", out, *three_files)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().startswith("lm-count: dashboard at http")
    plain = tmp_path / "p.lm"
    assert run_prog("lm-count", "-n", "3", "-o", plain, *three_files).returncode == 0
    from lmtools.io.models import load_model

    assert_same_counts(load_model(str(out)), load_model(str(plain)))


@pytest.mark.slow
def test_lm_train_reads_a_shard_directory(conn, three_files, tmp_path):
    from lmtools.io.models import load_model

    shards = tmp_path / "s"
    assert run_prog("lm-count", "-q", "-n", "3", "--dask", conn.address, "--shards", "-o", shards,
                    *three_files).returncode == 0
    plain = tmp_path / "p.lm"
    assert run_prog("lm-count", "-n", "3", "-o", plain, *three_files).returncode == 0
    for src, dst in ((shards, "a.kn"), (plain, "b.kn")):
        r = run_prog("lm-train", "-q", "-o", tmp_path / dst, src)
        assert r.returncode == 0, r.stderr
    a, b = load_model(str(tmp_path / "a.kn")), load_model(str(tmp_path / "b.kn"))
    assert a.vocab == b.vocab
    for n in range(3):
        assert np.array_equal(a.ngrams[n], b.ngrams[n])
        assert np.array_equal(a.logprob[n], b.logprob[n]) and np.array_equal(a.backoff[n], b.backoff[n])
    # lm-count --shards again over the same directory replaces it whole
    assert run_prog("lm-count", "-q", "-n", "2", "--dask", conn.address, "--shards", "-o", shards,
                    three_files[0]).returncode == 0
    assert load_model(str(shards)).order == 2


# ----------------------------------------------------------------------------------------------
# Usage and data errors of the CLI


@pytest.mark.parametrize("args,needle", [
    (["--dask", "local:2"], "stdin"),
    (["--dask", "local:2", "-"], "stdin"),
    (["--dask", "local:0", "x.txt"], "local:N"),
    (["--shards", "-o", "d", "x.txt"], "--shards"),
    (["--partitions", "3", "x.txt"], "--partitions"),
    (["--dask", "local:2", "--shards", "x.txt"], "-o DIR"),
    (["--dask", "local:2", "--range-size", "12Q", "x.txt"], "--range-size"),
    (["--dask", "local:2", "-S", "1G", "x.txt"], "-S"),
])
def test_usage_errors(args, needle):
    r = invoke("lm-count", *args)
    assert needle in error_line(r, "lm-count", 2)
    assert r.stdout == ""


def test_missing_dask_is_one_usage_line(tmp_path):
    small = tmp_path / "small.txt"
    small.write_bytes(TEXT[:3000])
    (tmp_path / "dask").mkdir()
    (tmp_path / "dask" / "__init__.py").write_text("raise ImportError('No module named dask')\n")
    r = run_prog("lm-count", "--dask", "local:2", small, env={"PYTHONPATH": str(tmp_path)})
    line = error_line(r, "lm-count", 2)
    assert line == "lm-count: error: --dask needs dask and distributed; pip install 'lmtools[dask]'"
    # and the program without --dask never imports it
    r = run_prog("lm-count", "-q", "-n", "2", small, "-o", tmp_path / "c.lm", env={"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr


def test_cli_data_errors(conn, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\n" * 1000 + b"caf\xe9\n")
    r = invoke("lm-count", "-q", "--dask", conn.address, "--range-size", "2K", "-o", tmp_path / "o.lm", bad)
    assert f"{bad}: invalid UTF-8 at byte 10003 (byte 0xe9)" in error_line(r, "lm-count", 1)
    assert os.listdir(tmp_path) == ["bad.txt"]  # no output, no temporary file
    r = invoke("lm-count", "-q", "--dask", conn.address, str(tmp_path / "nothing*.txt"))
    assert "no file matches" in error_line(r, "lm-count", 1)
    (tmp_path / "notshards").mkdir()
    (tmp_path / "notshards" / "x").write_text("x")
    r = invoke("lm-count", "-q", "--dask", conn.address, "--shards", "-o", tmp_path / "notshards", bad)
    assert "refusing to replace" in error_line(r, "lm-count", 1)
    with pytest.raises(LmError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9 "):
        cluster.connect("tcp://127.0.0.1:9", timeout_s=1)


@pytest.mark.slow
def test_ctrl_c_leaves_no_partial_output(conn, tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(TEXT * 3)
    statuses = []
    for delay in (0.0, 1.0, 3.0):  # after the client is connected: while ranges, partitions, shards are done
        out = tmp_path / f"s{delay}"
        env = dict(os.environ)
        env.pop("LMTOOLS_DEBUG", None)
        proc = subprocess.Popen([sys.executable, "-m", "lmtools.cli.count", "-n", "5", "--dask", conn.address,
                                 "--shards", "--range-size", "100K", "-o", str(out), str(big)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stderr.readline().startswith(b"lm-count: dashboard at")  # connected, work under way
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        # -SIGINT: the signal came after the program's work, output in place, while the interpreter ended
        # (the handlers are put back when the program's body returns): a shell sees 130 all the same
        assert proc.returncode in (130, 0, -signal.SIGINT), err
        if proc.returncode == -signal.SIGINT:
            assert out.exists() and err == b""
        statuses.append(proc.returncode)
        if proc.returncode == 130:
            assert err.decode().splitlines()[1:] == []  # quietly: the dashboard line only
            assert not out.exists()
        assert [f for f in os.listdir(tmp_path) if f.endswith(".part")] == []
    assert 130 in statuses
    # a cluster started here (local:2): its worker processes end with the program
    import psutil

    out = tmp_path / "local"
    proc = subprocess.Popen([sys.executable, "-m", "lmtools.cli.count", "-n", "5", "--dask", "local:2",
                             "--range-size", "100K", "-o", str(out), str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stderr.readline().startswith(b"lm-count: dashboard at")
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == b"", err  # quietly (no log, no resource-tracker note)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == []
    assert not out.exists() and [f for f in os.listdir(tmp_path) if f.endswith(".part")] == []


@pytest.mark.slow
def test_ctrl_c_after_the_local_workers_died(tmp_path):
    """The workers of local:N are in the terminal's process group and die of the same Ctrl-C first: the
    scheduler in the program then writes to their closed sockets and pipes, which must be an error it
    handles, not a SIGPIPE that kills it (returncode -13) before it can clean up and exit 130."""
    import psutil

    big = tmp_path / "big.txt"
    big.write_bytes(TEXT * 3)
    out = tmp_path / "out"
    env = dict(os.environ)
    env.pop("LMTOOLS_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "lmtools.cli.count", "-n", "5", "--dask", "local:2",
                             "--range-size", "100K", "-o", str(out), str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stderr.readline().startswith(b"lm-count: dashboard at")
    time.sleep(1.0)
    for child in psutil.Process(proc.pid).children(recursive=True):
        child.kill()
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not out.exists() and [f for f in os.listdir(tmp_path) if f.endswith(".part")] == []


@pytest.mark.slow
def test_ptb_5gram_equals_lm_count(conn):
    paths = [str(PTB / "train.txt"), str(PTB / "valid.txt")]
    counts, ranges = run_job(conn, paths, 5, range_bytes=1 << 20, parts=4)
    assert len(ranges) >= 6
    assert_same_counts(counts, count_text(paths, 5))
