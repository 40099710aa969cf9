"""Counting and merging in a memory budget (lmtools.ngram.external, lm-count/lm-merge -S -T) and the
sorted count stream (lmtools.io.countstream).

Spilling is forced with LMTOOLS_TEST_BUDGET (bytes, below the documented minimum of -S). Every check
compares against an independent reference: the in-memory counter (whose own tests compare it with
plain Python, tests/test_counting*.py), or a plain-Python dict count of the text (``naive_counts``).
"""

from __future__ import annotations

import errno
import io
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from tests.conftest import SHAKESPEARE, error_line, run_prog
from lmtools.io.countstream import (CountsHeader, SpillDir, iter_sorted_blocks, iter_sorted_counts,
                                    write_sorted_counts)
from lmtools.io.models import load_model
from lmtools.ngram.counting import VocabOptions, count_levels
from lmtools.ngram.external import (SortedCounts, count_levels_budget, merge_external, merge_sorted_runs,
                                    _MemorySource, sort_and_sum)

BUDGET_ENV = "LMTOOLS_TEST_BUDGET"


def same_counts(a, b) -> None:
    assert a.vocab == b.vocab
    assert (a.tokens, a.sentences) == (b.tokens, b.sentences)
    assert a.order == b.order
    for n in range(a.order):
        assert a.ngrams[n].shape == b.ngrams[n].shape, n + 1
        assert np.array_equal(a.ngrams[n], b.ngrams[n]), n + 1
        assert np.array_equal(np.asarray(a.counts[n], np.int64), np.asarray(b.counts[n], np.int64)), n + 1


def naive_counts(lines: list[str], order: int) -> tuple[list[str], list[dict]]:
    """Vocabulary in order of first occurrence and {word tuple: count} per order, in plain Python."""
    vocab = ["<unk>", "<s>", "</s>"]
    seen = set(vocab)
    tables = [Counter() for _ in range(order)]
    for line in lines:
        words = ["<s>"] + line.split() + ["</s>"]
        for w in words:
            if w not in seen:
                seen.add(w)
                vocab.append(w)
        for n in range(1, order + 1):
            for i in range(len(words) - n + 1):
                tables[n - 1][tuple(words[i:i + n])] += 1
    return vocab, tables


def as_words(c) -> list[dict]:
    return [{tuple(c.vocab[i] for i in row): int(k) for row, k in zip(c.ngrams[n], c.counts[n]) if k}
            for n in range(c.order)]


@pytest.fixture(scope="module")
def slice_path(tmp_path_factory):
    """The first 150 kB of Tiny Shakespeare (whole lines)."""
    data = SHAKESPEARE.read_bytes()[:150_000]
    data = data[:data.rindex(b"\n") + 1]
    p = tmp_path_factory.mktemp("ts") / "slice.txt"
    p.write_bytes(data)
    return p


def spilled(paths, order, budget, tmp_path, vocab_opts=None):
    """count_levels_budget under a forced budget: (SortedCounts as Counts, spills, temp dir left empty)."""
    base = tmp_path / "spill"
    base.mkdir(exist_ok=True)
    with SpillDir(str(base)) as sp:
        r = count_levels_budget([str(p) for p in paths], order, budget, sp, vocab_opts=vocab_opts)
        assert isinstance(r, SortedCounts)
        c, spills = r.to_counts(), r.spills
    assert os.listdir(base) == []
    return c, spills


# ----------------------------------------------------------------------------------------------
# The size parser and the options


def test_parse_size():
    from lmtools.cli.budget_options import parse_size

    assert parse_size("10b") == 10
    assert parse_size("3") == 3 * 1024  # no suffix: kilobytes, as lmplz and sort take it
    assert parse_size("2K") == parse_size("2k") == 2048
    assert parse_size("1.5M") == 3 << 19
    assert parse_size("4G") == 4 << 30
    assert parse_size("1T") == 1 << 40
    assert parse_size("50%", total=1000) == 500
    assert parse_size("80%", total=10 << 30) == int((10 << 30) * 0.8)
    for bad in ("", "G", "12Q", "-1G", "1e3", "101%", "1 2"):
        with pytest.raises(ValueError):
            parse_size(bad, total=1000)


@pytest.mark.parametrize("value", ["12Q", "10b", "150%"])
def test_impossible_memory_is_a_usage_error(value, slice_path):
    r = run_prog("lm-count", "-S", value, slice_path)
    line = error_line(r, "lm-count", 2)
    assert "-S/--memory" in line


def test_temp_dir_not_a_directory_is_a_usage_error(tmp_path, slice_path):
    f = tmp_path / "file"
    f.write_text("x")
    for prog, extra in (("lm-count", [slice_path]), ("lm-merge", [slice_path])):
        r = run_prog(prog, "-T", f, *extra)
        assert "not a directory" in error_line(r, prog, 2)
        r = run_prog(prog, "-T", tmp_path / "missing", *extra)
        assert "does not exist" in error_line(r, prog, 2)


# ----------------------------------------------------------------------------------------------
# Counting with spills equals counting in memory


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 6])
def test_spilled_counts_equal_in_memory(order, slice_path, tmp_path, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "1")
    ref = count_levels([str(slice_path)], order).to_counts()
    base = tmp_path / "spill"
    base.mkdir()
    with SpillDir(str(base)) as sp:
        r = count_levels_budget([str(slice_path)], order, 600_000 if order < 6 else 1_000_000, sp)
        if order == 1:  # no tables: nothing to spill, today's Levels
            assert not isinstance(r, SortedCounts)
            c = r.to_counts()
        else:
            assert isinstance(r, SortedCounts) and r.spills >= 3
            c = r.to_counts()
            assert sp.bytes_written > 0
    same_counts(c, ref)
    assert os.listdir(base) == []


@pytest.mark.slow
@pytest.mark.parametrize("order", [3, 6])
def test_whole_tiny_shakespeare_spilled(order, tmp_path, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "1")
    ref = count_levels([str(SHAKESPEARE)], order).to_counts()
    c, spills = spilled([SHAKESPEARE], order, 3_000_000, tmp_path)
    assert spills >= 4
    same_counts(c, ref)


def test_spilled_counts_equal_plain_python_with_long_lines(tmp_path, monkeypatch):
    """Lines of thousands of tokens: spills fall inside a sentence, where the counter carries the
    history across blocks (put back in the emptied tables with a count of 0)."""
    monkeypatch.setenv(BUDGET_ENV, "1")
    rng = random.Random(7)
    words = [f"w{i}" for i in range(40)]
    lines = [" ".join(rng.choice(words[:rng.randint(2, 40)]) for _ in range(rng.randint(0, 1500)))
             for _ in range(6)]
    p = tmp_path / "long.txt"
    p.write_text("\n".join(lines) + "\n")
    for order in (2, 5):
        c, spills = spilled([p], order, 20_000, tmp_path)
        assert spills >= 5
        vocab, tables = naive_counts(lines, order)
        assert c.vocab == vocab
        assert as_words(c) == [dict(t) for t in tables]


@pytest.mark.parametrize("opts", [VocabOptions(min_count=3), VocabOptions(vocab_size=500),
                                  VocabOptions(closed=["the", "king", "And", "zzz", "of"])])
def test_vocabulary_restriction_after_spills(opts, slice_path, tmp_path, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "1")
    ref = count_levels([str(slice_path)], 4, vocab_opts=opts).to_counts()
    c, spills = spilled([slice_path], 4, 600_000, tmp_path, vocab_opts=opts)
    assert spills >= 3
    same_counts(c, ref)


def test_tables_spill_where_memory_runs_short(slice_path, tmp_path, monkeypatch):
    """A budget larger than the memory there is (ulimit -v, a cgroup, a busy machine): the tables spill
    where their growth would not fit, instead of the run failing."""
    from lmtools import memory

    monkeypatch.delenv(BUDGET_ENV, raising=False)
    monkeypatch.setenv("LMTOOLS_MEMORY_CHECK", "1")
    ref = count_levels([str(slice_path)], 4).to_counts()
    monkeypatch.setattr(memory, "available", lambda: (300_000, "(a test's limit)"))
    with SpillDir(str(tmp_path)) as sp:
        r = count_levels_budget([str(slice_path)], 4, 1 << 30, sp)
        assert isinstance(r, SortedCounts) and r.spills >= 1
        c = r.to_counts()
    same_counts(c, ref)


def test_nothing_spilled_is_todays_levels(slice_path, tmp_path):
    """A budget that holds everything: the Levels of the in-memory path, no file written."""
    ref = count_levels([str(slice_path)], 5)
    with SpillDir(str(tmp_path)) as sp:
        r = count_levels_budget([str(slice_path)], 5, 1 << 30, sp)
        assert sp.path is None and sp.bytes_written == 0
    assert not isinstance(r, SortedCounts)
    assert r.vocab == ref.vocab
    for a, b in zip(r.levels, ref.levels):
        for x, y in zip(a, b):
            assert np.array_equal(x, y) and x.dtype == y.dtype
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("size", [3_000, 150_000])
def test_standard_input_small_or_spilled(size, slice_path, tmp_path, monkeypatch):
    """Standard input is read once: a small text (counted without the kernels) and a spilled one."""
    if size > 100_000:  # (a forced budget counts any text with the kernels)
        monkeypatch.setenv(BUDGET_ENV, "1")
    data = slice_path.read_bytes()[:size]
    data = data[:data.rindex(b"\n") + 1]
    (tmp_path / "in.txt").write_bytes(data)
    ref = count_levels([str(tmp_path / "in.txt")], 3).to_counts()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    with SpillDir(str(tmp_path)) as sp:
        r = count_levels_budget(["-"], 3, 300_000, sp)
        c = r.to_counts()
        assert isinstance(r, SortedCounts) == (size > 100_000)
    same_counts(c, ref)


def test_text_counts_of_spilled_counts_a_block_at_a_time(slice_path, tmp_path, monkeypatch):
    from lmtools.io.countstext import write_text_count_blocks, write_text_counts

    monkeypatch.setenv(BUDGET_ENV, "1")
    ref = io.BytesIO()
    write_text_counts(count_levels([str(slice_path)], 3), ref)
    with SpillDir(str(tmp_path)) as sp:
        r = count_levels_budget([str(slice_path)], 3, 300_000, sp)
        assert isinstance(r, SortedCounts) and r.spills >= 3
        got = io.BytesIO()
        write_text_count_blocks(r.vocab, ((rows, c) for _, rows, c in r.blocks(block_rows=1000, first=1)), got)
    assert got.getvalue() == ref.getvalue()


# ----------------------------------------------------------------------------------------------
# The merge kernel and the sorter


@pytest.mark.parametrize("id_bound", [None, 4, 1 << 13, 1 << 21])
def test_merge_sorted_runs_sums_equal_rows(id_bound):
    # ids spread over the bound's bits: the merge's keys pack 2 (None: 31 bits), 5 (2 bits), 4 (13
    # bits) or 3 (21 bits) ids of a 5-gram, and the rest are compared on a tie of the keys
    rng = np.random.default_rng(3)
    step = (id_bound or 1 << 31) // 4
    runs, ref = [], Counter()
    for _ in range(7):
        shape = (rng.integers(0, 300), 5)
        rows = (rng.integers(0, 4, size=shape) * step + rng.integers(0, 2, size=shape) * (step - 1)).astype(np.int32)
        counts = rng.integers(1, 5, size=rows.shape[0]).astype(np.int64)
        for r, c in zip(rows.tolist(), counts.tolist()):
            ref[tuple(r)] += c
        rows, counts = sort_and_sum(rows, counts)
        runs.append((rows, counts))

    class Src:
        def __init__(self, rows, counts):
            self.rows, self.counts, self.at = rows, counts, 0

        def read_into(self, rows, counts):
            k = min(len(rows), len(self.rows) - self.at)
            rows[:k], counts[:k] = self.rows[self.at:self.at + k], self.counts[self.at:self.at + k]
            self.at += k
            return k

    for block in (1, 2, 5, 1000):  # blocks smaller than a run: refills, and the output full mid-way
        out = list(merge_sorted_runs([Src(*r) for r in runs], 5, block, id_bound))
        assert all(len(r) <= block for r, _ in out)
        rows = np.concatenate([r for r, _ in out])
        counts = np.concatenate([c for _, c in out])
        assert [tuple(r) for r in rows.tolist()] == sorted(ref)
        assert dict(zip(map(tuple, rows.tolist()), counts.tolist())) == dict(ref)


def test_merge_refuses_an_id_outside_its_bound():
    rows = np.array([[0, 1], [2, 9]], np.int32)
    with pytest.raises(ValueError, match="outside the bound"):
        list(merge_sorted_runs([_MemorySource(rows, np.ones(2, np.int64)), _MemorySource(rows[:1], np.ones(1, np.int64))],
                               2, 16, id_bound=8))


# ----------------------------------------------------------------------------------------------
# Merging: random shards in random order equal counting their concatenation


def test_merge_random_shards_in_random_order(tmp_path, monkeypatch):
    from lmtools.io.countstext import read_text_counts, write_text_counts  # noqa: F401

    rng = random.Random(12)
    for trial in range(6):
        words = [f"t{trial}w{i}" for i in range(rng.randint(3, 30))]
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 25))) for _ in range(rng.randint(5, 120))]
        cuts = sorted(rng.sample(range(1, len(lines)), min(len(lines) - 1, rng.randint(1, 5))))
        shards = [lines[a:b] for a, b in zip([0] + cuts, cuts + [len(lines)])]
        rng.shuffle(shards)
        order = rng.randint(1, 5)
        parts = []
        for i, s in enumerate(shards):
            p = tmp_path / f"s{trial}_{i}.txt"
            p.write_text("".join(x + "\n" for x in s))
            parts.append(count_levels([str(p)], order))
        whole = tmp_path / f"whole{trial}.txt"
        whole.write_text("".join(x + "\n" for s in shards for x in s))
        ref = count_levels([str(whole)], order).to_counts()
        base = tmp_path / f"spill{trial}"
        base.mkdir()
        with SpillDir(str(base)) as sp:
            merged = merge_external((iter_sorted_blocks(p, block_rows=rng.randint(1, 50)) for p in parts),
                                    rng.choice([2_000, 50_000]), sp)
            c = merged.to_counts()
        same_counts(c, ref)
        assert os.listdir(base) == []


@pytest.mark.slow
def test_lm_merge_budget_equals_in_memory_merge(slice_path, tmp_path):
    lines = slice_path.read_bytes().splitlines(keepends=True)
    third = len(lines) // 3
    files = []
    for i, part in enumerate((lines[:third], lines[third:2 * third], lines[2 * third:])):
        p = tmp_path / f"part{i}.txt"
        p.write_bytes(b"".join(part))
        files.append(p)
    r = run_prog("lm-count", "-q", "-n", "4", files[0], "-o", tmp_path / "a.lm")
    assert r.returncode == 0, r.stderr
    r = run_prog("lm-count", "-q", "-n", "4", "--text", files[1], "-o", tmp_path / "b.txt")
    assert r.returncode == 0, r.stderr
    env = {BUDGET_ENV: "300000"}  # part c: a sorted count stream, counted with spills
    r = run_prog("lm-count", "-q", "-n", "4", files[2], "-o", tmp_path / "c.lm", env=env)
    assert r.returncode == 0, r.stderr
    tdir = tmp_path / "t"
    tdir.mkdir()
    r = run_prog("lm-merge", "-T", tdir, tmp_path / "c.lm", tmp_path / "a.lm", tmp_path / "b.txt",
                 "-o", tmp_path / "m.lm", env=env)
    assert r.returncode == 0, r.stderr
    assert os.listdir(tdir) == []
    r = run_prog("lm-merge", tmp_path / "c.lm", tmp_path / "a.lm", tmp_path / "b.txt", "-o", tmp_path / "m0.lm")
    assert r.returncode == 0, r.stderr
    whole = tmp_path / "whole.txt"
    whole.write_bytes(files[2].read_bytes() + files[0].read_bytes() + files[1].read_bytes())
    ref = count_levels([str(whole)], 4).to_counts()
    got = load_model(str(tmp_path / "m.lm"))
    same_counts(got, ref)
    same_counts(load_model(str(tmp_path / "m0.lm")), ref)
    assert got.provenance["program"] == "lm-merge"


# ----------------------------------------------------------------------------------------------
# lm-count end to end: files, models, ARPA


@pytest.mark.slow
def test_lm_count_spilled_then_lm_train_identical(slice_path, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    tdir = tmp_path / "t"
    tdir.mkdir()
    r = run_prog("lm-count", "-q", "-n", "5", "-T", tdir, slice_path, "-o", a / "c.lm", env={BUDGET_ENV: "600000"})
    assert r.returncode == 0, r.stderr
    assert os.listdir(tdir) == []
    r = run_prog("lm-count", "-q", "-n", "5", slice_path, "-o", b / "c.lm")
    assert r.returncode == 0, r.stderr
    sa, sb = load_model(str(a / "c.lm"), sort_counts=False), load_model(str(b / "c.lm"), sort_counts=False)
    assert sa.provenance == sb.provenance
    same_counts(load_model(str(a / "c.lm")), load_model(str(b / "c.lm")))
    from lmtools.io.modelfile import map_model

    assert map_model(str(a / "c.lm")).header["layout"] == "sorted"
    assert "layout" not in map_model(str(b / "c.lm")).header
    for d in (a, b):  # the same input name in both: the provenance of the models is the same too
        for out in ("m.lm", "m.arpa"):
            r = run_prog("lm-train", "c.lm", "-o", out, cwd=d)
            assert r.returncode == 0, r.stderr
    assert (a / "m.lm").read_bytes() == (b / "m.lm").read_bytes()
    assert (a / "m.arpa").read_bytes() == (b / "m.arpa").read_bytes()
    # through a pipe: the stream is read a block at a time
    r = run_prog("lm-train", "-o", "p.lm", input=(a / "c.lm").read_bytes(), cwd=a)
    assert r.returncode == 0, r.stderr
    r = run_prog("lm-train", "-o", "p.lm", input=(b / "c.lm").read_bytes(), cwd=b)
    assert (a / "p.lm").read_bytes() == (b / "p.lm").read_bytes()


@pytest.mark.slow
def test_lm_count_budget_without_spill_writes_todays_bytes(slice_path, tmp_path):
    from lmtools.io.models import counts_to_parts, load_levels

    outs = []
    for args in (["-S", "1G"], ["-S", "30%"], []):
        out = tmp_path / f"c{len(outs)}.lm"
        r = run_prog("lm-count", "-q", "-n", "4", *args, "-T", tmp_path, slice_path, "-o", out)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
    # the arrays are the in-memory counter's Levels, unchanged
    ref = count_levels([str(slice_path)], 4)
    _, want = counts_to_parts(ref)
    got = load_levels(str(tmp_path / "c0.lm"))
    _, have = counts_to_parts(got)
    assert list(want) == list(have)
    for k in want:
        assert np.array_equal(want[k], have[k]) and want[k].dtype == have[k].dtype, k
    assert [p for p in os.listdir(tmp_path) if p.startswith("lmtools-spill")] == []


# ----------------------------------------------------------------------------------------------
# The sorted count stream


def small_counts(tmp_path, order=4):
    p = tmp_path / "small.txt"
    p.write_bytes(SHAKESPEARE.read_bytes()[:20_000])
    return count_levels([str(p)], order).to_counts()


def stream_bytes(counts, block_rows) -> bytes:
    it = iter_sorted_blocks(counts, block_rows)
    head = next(it)
    buf = io.BytesIO()
    write_sorted_counts(buf, head, ((n, r, c) for n, r, c in it if n >= 2))
    return buf.getvalue()


def test_sorted_stream_round_trip_by_path_and_pipe(tmp_path):
    counts = small_counts(tmp_path)
    data = stream_bytes(counts, 7)
    p = tmp_path / "s.lm"
    p.write_bytes(data)
    same_counts(load_model(str(p)), counts)
    same_counts(load_model(io.BufferedReader(io.BytesIO(data))), counts)
    for source in (str(p), io.BufferedReader(io.BytesIO(data))):
        it = iter_sorted_counts(source)
        head = next(it)
        assert isinstance(head, CountsHeader)
        assert head.vocab == counts.vocab and head.sizes == counts.sizes() and head.block_rows == 7
        assert np.array_equal(head.unigrams, counts.counts[0])
        blocks = list(it)
        assert [n for n, _, _ in blocks] == sorted(n for n, _, _ in blocks)
        for n in range(2, counts.order + 1):
            mine = [(r, c) for k, r, c in blocks if k == n]
            assert all(len(r) <= 7 for r, _ in mine)
            assert np.array_equal(np.concatenate([r for r, _ in mine]), counts.ngrams[n - 1])
            assert np.array_equal(np.concatenate([c for _, c in mine]), counts.counts[n - 1])
    # a trie-layout file gives the same stream
    from lmtools.io.models import save_model

    q = tmp_path / "t.lm"
    with open(q, "wb") as f:
        save_model(counts, f)
    a = [(n, r.tolist(), c.tolist()) for n, r, c in list(iter_sorted_counts(str(q), 7))[1:]]
    b = [(n, r.tolist(), c.tolist()) for n, r, c in list(iter_sorted_counts(str(p)))[1:]]
    assert a == b
    # as lm-count's trie levels (lm-info, lm-merge read it so)
    lv = load_model(str(p), sort_counts=False)
    assert [len(x[0]) for x in lv.levels] == counts.sizes()[1:]
    same_counts(lv.to_counts(), counts)


def test_sorted_stream_damage_is_refused(tmp_path):
    from lmtools.errors import LmError
    from lmtools.io.modelwrite import write_model

    counts = small_counts(tmp_path, 3)
    data = stream_bytes(counts, 50)
    with pytest.raises(LmError, match="truncated"):
        list(iter_sorted_counts(io.BufferedReader(io.BytesIO(data[:len(data) // 2]))))
    # rows out of order across two blocks (checksums right: the writer wrote what it was given)
    it = iter_sorted_blocks(counts, 50)
    head = next(it)
    blocks = [(n, r, c) for n, r, c in it if n >= 2]
    blocks[0], blocks[1] = blocks[1], blocks[0]
    buf = io.BytesIO()
    write_sorted_counts(buf, head, blocks)
    for source in (io.BufferedReader(io.BytesIO(buf.getvalue())),):
        with pytest.raises(LmError, match="not sorted or repeated"):
            list(iter_sorted_counts(source))
    with pytest.raises(LmError, match="not sorted or repeated"):
        load_model(io.BufferedReader(io.BytesIO(buf.getvalue())))
    # an n-gram whose first words are not an n-gram of the order below: no trie level holds it
    it = iter_sorted_blocks(counts, 50)
    head = next(it)
    cut = [(n, np.delete(r, 1, axis=0), np.delete(c, 1)) if i == 0 else (n, r, c)  # (1, 3): "<s> First"
           for i, (n, r, c) in enumerate(b for b in it if b[0] >= 2)]
    head.sizes = [head.sizes[0], head.sizes[1] - 1] + head.sizes[2:]
    buf = io.BytesIO()
    write_sorted_counts(buf, head, cut)
    with pytest.raises(LmError, match="prefix is not among the order 2"):
        load_model(io.BufferedReader(io.BytesIO(buf.getvalue())), sort_counts=False)
    # a header whose arrays are not the blocks its sizes give
    buf = io.BytesIO()
    write_model(buf, "counts", {"order": 2, "vocab": counts.vocab, "sizes": counts.sizes()[:2], "layout": "sorted",
                                "block_rows": 50}, {"counts_1": counts.counts[0]})
    with pytest.raises(LmError, match="blocks its sizes give"):
        load_model(io.BufferedReader(io.BytesIO(buf.getvalue())))


# ----------------------------------------------------------------------------------------------
# Faults: one line, exit 1, nothing left behind


def test_disk_full_while_spilling(slice_path, tmp_path, monkeypatch):
    from lmtools.errors import LmError
    from lmtools.io import countstream

    monkeypatch.setenv(BUDGET_ENV, "1")
    calls = {"n": 0}
    real = countstream.RunFile.append

    def full(self, rows, counts):
        calls["n"] += 1
        if calls["n"] > 3:
            raise countstream.temp_error(self.spill.base, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return real(self, rows, counts)

    monkeypatch.setattr(countstream.RunFile, "append", full)
    with pytest.raises(LmError, match="No space left on device; free some disk space") as e:
        with SpillDir(str(tmp_path)) as sp:
            count_levels_budget([str(slice_path)], 4, 600_000, sp)
    assert str(tmp_path) in str(e.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_file_size_limit_in_a_real_process(slice_path, tmp_path):
    """A full disk as the process sees it: writes fail with EFBIG under RLIMIT_FSIZE."""
    import resource

    tdir = tmp_path / "t"
    tdir.mkdir()
    out = tmp_path / "out.lm"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    env = dict(os.environ, **{BUDGET_ENV: "600000"})
    env.pop("LMTOOLS_DEBUG", None)
    r = subprocess.run([sys.executable, "-m", "lmtools.cli.count", "-n", "4", "-T", str(tdir), str(slice_path),
                        "-o", str(out)], capture_output=True, env=env, preexec_fn=limit, timeout=300)
    line = error_line(r, "lm-count", 1)
    assert "temporary files in" in line and str(tdir) in line
    assert os.listdir(tdir) == []
    assert not out.exists() and [p for p in os.listdir(tmp_path) if p.endswith(".part")] == []


def test_temp_dir_vanishes(slice_path, tmp_path, monkeypatch):
    from lmtools.errors import LmError

    monkeypatch.setenv(BUDGET_ENV, "1")
    gone = tmp_path / "gone"
    gone.mkdir()
    with SpillDir(str(gone)) as sp:
        gone.rmdir()  # removed after -T was checked, before the first spill
        with pytest.raises(LmError, match="No such file or directory; the temporary directory was removed"):
            count_levels_budget([str(slice_path)], 3, 300_000, sp)


def test_temp_dir_unwritable(slice_path, tmp_path, monkeypatch):
    """(The tests may run as root, whom permissions do not stop: the refusal is simulated.)"""
    from lmtools.errors import LmError
    from lmtools.io import countstream

    monkeypatch.setenv(BUDGET_ENV, "1")

    def refuse(path, mode=0o777):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(countstream.os, "mkdir", refuse)
    with SpillDir(str(tmp_path)) as sp:
        with pytest.raises(LmError, match="Permission denied; give a writable temporary directory with -T"):
            count_levels_budget([str(slice_path)], 3, 300_000, sp)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_the_merge_leaves_nothing(tmp_path, signum):
    tdir = tmp_path / "t"
    tdir.mkdir()
    out = tmp_path / "out.lm"
    env = dict(os.environ, **{BUDGET_ENV: "1500000"})
    env.pop("LMTOOLS_DEBUG", None)
    p = subprocess.Popen([sys.executable, "-m", "lmtools.cli.count", "-n", "5", "-T", str(tdir), str(SHAKESPEARE),
                          "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    files = most = 0
    while time.time() < deadline and p.poll() is None:  # the merge has begun when runs are deleted
        files = sum(len(fs) for _, _, fs in os.walk(tdir))
        most = max(most, files)
        if most >= 20 and files < most:
            break
        time.sleep(0.02)
    assert most >= 20 and files < most and p.poll() is None, "the count ended before its merge was seen"
    p.send_signal(signum)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signum, err
    assert os.listdir(tdir) == []
    assert not out.exists() and [x for x in os.listdir(tmp_path) if x != "t"] == []


@pytest.mark.parametrize("top", [50, 1 << 31])
def test_runs_are_packed_at_the_bits_they_need(tmp_path, top):
    """A run holds its ids and counts at the bit lengths of each chunk's largest (a 3-gram of ids
    below 64 and counts below 2**32: 3 * 6 + 32 bits, not 3 * 32 + 64) and reads back exactly what
    was written, across chunk and block boundaries, counts of 2**32 and more included; a negative
    count is refused, never cut."""
    from lmtools.io import countstream
    from lmtools.io.countstream import RunFile, SpillDir
    from lmtools.kernels.bitpack import HEADER_WORDS

    rng = np.random.default_rng(7)
    m = countstream.CHUNK_ROWS + 3000
    rows = rng.integers(0, min(top, 64), size=(m, 3)).astype(np.int32)
    rows = rows[np.lexsort(rows.T[::-1])]  # (columns 2 and 3 of every chunk reach 63: 6 bits)
    counts = rng.integers(1 << 30, 1 << 31, size=m).astype(np.int64) * 2  # 32 bits
    if top > 64:
        rows[-1] = top - 1
        counts[-5:] = [1 << 32, 1 << 40, (1 << 62) + 5, 3, (1 << 63) - 1]
    with SpillDir(str(tmp_path)) as spill:
        run = RunFile(spill, 3)
        run.append(rows[:1000], counts[:1000])
        run.append(rows[1000:], counts[1000:])
        run.finish()
        if top == 50:  # chunks of 1000, CHUNK_ROWS and 2000 records: 3 * 6 + 32 bits each, plus headers
            words = sum(-(-k * 50 // 64) + HEADER_WORDS for k in (1000, countstream.CHUNK_ROWS, 2000))
            assert os.path.getsize(run.path) == 8 * words == run.nbytes
        reader = run.reader()
        got_rows, got = np.empty((700, 3), np.int32), np.empty(700, np.int64)
        seen_rows, seen = [], []
        while (k := reader.read_into(got_rows, got)):
            seen_rows.append(got_rows[:k].copy())
            seen.append(got[:k].copy())
        reader.close()
        assert np.array_equal(np.concatenate(seen_rows), rows) and np.array_equal(np.concatenate(seen), counts)
        with pytest.raises(ValueError):
            RunFile(spill, 3).append(rows[:1], np.array([-1], np.int64))
