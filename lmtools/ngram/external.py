"""Counting and merging counts in a fixed memory budget: sorted runs spilled to disk, merged by a
streaming k-way merge (lmtools.kernels.merge_runs) that sums equal n-grams.

Counting (``SpillingCounter``): the per-order hash tables of ``NgramCounter`` grow as text comes in;
before a block of text would grow them past their share of the budget (``TABLE_SHARE``), the tables
are spilled: each order's n-grams are sorted (word ids, lexicographic, as ``Levels.to_counts`` sorts
them) and written as one run, and the tables are emptied (their memory kept for the next run). The
unigram counts and the vocabulary stay in memory: they are vocabulary-sized. Word ids are stable for
the whole count (one ``TokenTable``), so runs of different spills compare by their ids. At the end the
last tables are spilled too, and per order the runs are merged into one sorted run, reading each run
in blocks (``merge_block_rows``: memory is the blocks, not the runs). The result (``SortedCounts``) is
the same ``Counts`` as counting in memory, held on disk order by order; lm-count writes it as a sorted
count stream (lmtools.io.countstream). Where nothing spilled, ``count_levels_budget`` returns the
``Levels`` of today's in-memory path, the same arrays at the same speed, and touches no disk.

A spill between two blocks of one chunk must keep the history that the next block continues (the
n-grams ending at the token before it, whose table ids the counter carries): they are put back into
the emptied tables with a count of 0 (``_restore_history``), and rows whose counts sum to 0 are dropped
when a table is sorted.

Vocabulary restriction (--min-count, --vocab-size, --vocab) needs the final unigram counts, so with
spills it is applied after counting: the merged rows of each order are mapped to the new ids (dropped
words to <unk>) and sorted again by ``ExternalSorter`` (in memory up to its share of the budget, then
runs on disk and one more merge), summing the n-grams that became equal.

Merging count files (``merge_external``, lm-merge -S): each input is read order by order (a sorted
count stream a block at a time; lm-count's trie layout or text counts whole, one input at a time),
its ids mapped into the merged vocabulary (words in order of first occurrence over the inputs, as
counting their concatenation gives them), and its rows fed to one ``ExternalSorter`` per order.

This module reads and writes no file itself: the runs are lmtools.io.countstream's ``RunFile``s in a
``SpillDir`` that the caller makes (and removes, whatever happens).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from lmtools.io.countstream import BLOCK_ROWS, CountsHeader, RunFile, SpillDir
from lmtools.ngram.counting import (BYTES_PER_TOKEN, NgramCounter, OrderTable, VocabOptions,
                                    vocabulary_restriction)
from lmtools.ngram.counts import Counts, Levels

TABLE_SHARE = 0.5  # of the budget, for the hash tables; the rest sorts a spill (about as much again)
MIN_BLOCK_TOKENS = 256  # a tiny (test) budget spills between blocks of this many tokens
MERGE_BLOCK_ROWS = 1 << 16  # rows buffered per run in a merge, at most
MIN_MERGE_ROWS = 256
ID_LIMIT = 1 << 31  # word ids are int32
TEST_BUDGET_ENV = "LMTOOLS_TEST_BUDGET"  # bytes: a budget below the documented minimum, for the tests


# ----------------------------------------------------------------------------------------------
# Sorting and merging runs


def row_bytes(n: int) -> int:
    """Bytes of one n-gram of order n in a run or a block: n int32 ids and an int64 count."""
    return 4 * n + 8


def chunk_bytes(n: int) -> int:
    """Bytes of a run reader's buffer for one packed chunk of order n, at most (31-bit ids and
    63-bit counts)."""
    from lmtools.io.countstream import CHUNK_ROWS
    from lmtools.kernels.bitpack import words_for

    return 8 * words_for(CHUNK_ROWS, n, 31, 63)


def merge_block_rows(k: int, n: int, budget: int) -> int:
    """Rows buffered per run when k runs of order n are merged in ``budget`` bytes (and the output);
    each run's reader also holds one packed chunk (``chunk_bytes``)."""
    rows = max(0, budget - k * chunk_bytes(n)) // max(1, (k + 1) * row_bytes(n))
    return int(min(MERGE_BLOCK_ROWS, max(MIN_MERGE_ROWS, rows)))


def merge_sorted_runs(sources: list, n: int, block_rows: int,
                      id_bound: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Merge sorted sources of order-n rows (each a RunReader, or anything with ``read_into(rows,
    counts) -> rows read``), summing equal rows: yields (rows, counts) blocks of at most
    ``block_rows`` rows in increasing order (fresh arrays: the caller may keep them). ``id_bound``:
    every word id is below it (the vocabulary's size; the merge packs that many bits per id into its
    keys); None: any int32 id."""
    from lmtools.kernels.merge_runs import key_bits, merge_step

    k = len(sources)
    B = block_rows
    rows = np.empty((k * B, n), np.int32)
    counts = np.empty(k * B, np.int64)
    pos = np.arange(k, dtype=np.int64) * B
    hi = pos.copy()
    more = np.ones(k, np.bool_)

    def refill(i: int) -> None:
        lo = i * B
        got = sources[i].read_into(rows[lo:lo + B], counts[lo:lo + B])
        pos[i], hi[i] = lo, lo + got
        more[i] = got == B  # a short read: the source is done (a full one may be its last: checked next time)

    for i in range(k):
        refill(i)
    out_rows = np.empty((B + 1, n), np.int32)  # B rows out, plus the last one kept to sum into
    out_counts = np.empty(B + 1, np.int64)
    heap = np.zeros(k, np.int64)
    state = np.zeros(k + 1, np.int64)
    keys = np.zeros(k, np.int64)
    bits = key_bits(min(id_bound or ID_LIMIT, ID_LIMIT))
    n_out = 0
    while True:
        n_out, need = merge_step(rows, counts, pos, hi, more, heap, state, keys, bits, out_rows, out_counts,
                                 n_out)
        if need >= 0:
            refill(need)
            continue
        if n_out == out_rows.shape[0]:  # full: hand out all but the last row (an equal row may follow)
            yield out_rows[:n_out - 1].copy(), out_counts[:n_out - 1].copy()
            out_rows[0] = out_rows[n_out - 1]
            out_counts[0] = out_counts[n_out - 1]
            n_out = 1
            continue
        break
    if n_out:
        yield out_rows[:n_out].copy(), out_counts[:n_out].copy()


class _MemorySource:
    """Sorted rows in memory, read as a run."""

    def __init__(self, rows: np.ndarray, counts: np.ndarray):
        self.rows, self.counts, self.at = rows, counts, 0

    def read_into(self, rows: np.ndarray, counts: np.ndarray) -> int:
        k = min(rows.shape[0], self.rows.shape[0] - self.at)
        rows[:k] = self.rows[self.at:self.at + k]
        counts[:k] = self.counts[self.at:self.at + k]
        self.at += k
        return k


def sort_and_sum(rows: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows in any order: sorted lexicographically, equal rows summed, rows summing to 0 dropped."""
    from lmtools.kernels.merge_runs import sum_sorted

    if rows.shape[0] > 1:
        order = np.lexsort(rows.T[::-1])
        rows, counts = rows[order], counts[order]
    else:
        rows, counts = rows.copy(), counts.copy()
    k = sum_sorted(rows, counts, rows, counts)
    return rows[:k], counts[:k]


class ExternalSorter:
    """Sorts and sums the rows of one order given in any order, within ``limit`` bytes of buffered
    rows: beyond it the buffer is sorted and written as a run. ``add_run`` takes rows already sorted
    and summed (a stream of blocks) straight to a run. ``result`` merges everything."""

    def __init__(self, n: int, spill: SpillDir, limit: int):
        self.n, self.spill, self.limit = n, spill, limit
        self.rows: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.buffered = 0
        self.runs: list[RunFile] = []

    def add(self, rows: np.ndarray, counts: np.ndarray) -> None:
        if rows.shape[0] == 0:
            return
        self.rows.append(rows)
        self.counts.append(counts)
        self.buffered += rows.shape[0] * row_bytes(self.n)
        if self.buffered > self.limit:
            self.flush()

    def flush(self) -> None:
        """Sort the buffer and write it as a run."""
        if not self.rows:
            return
        rows, counts = sort_and_sum(np.concatenate(self.rows), np.concatenate(self.counts))
        self.rows, self.counts, self.buffered = [], [], 0
        run = RunFile(self.spill, self.n)
        run.append(rows, counts)
        self.runs.append(run.finish())

    def add_run(self, blocks) -> None:
        """A sorted, summed stream of (rows, counts) blocks: written as one run."""
        run = RunFile(self.spill, self.n)
        self.runs.append(run)
        for rows, counts in blocks:
            run.append(rows, counts)
        run.finish()

    def result(self, budget: int, id_bound: int | None = None) -> RunFile:
        """Everything as one sorted run (the runs are deleted once merged); ``id_bound`` as
        ``merge_sorted_runs``."""
        sources: list = []
        if self.rows:
            rows, counts = sort_and_sum(np.concatenate(self.rows), np.concatenate(self.counts))
            self.rows, self.counts, self.buffered = [], [], 0
            if not self.runs:  # it all fitted: one run, written straight
                run = RunFile(self.spill, self.n)
                run.append(rows, counts)
                return run.finish()
            sources.append(_MemorySource(rows, counts))
        if len(self.runs) == 1 and not sources:
            return self.runs[0]
        readers = [r.reader() for r in self.runs]
        out = RunFile(self.spill, self.n)
        try:
            B = merge_block_rows(len(readers) + len(sources), self.n, budget)
            for rows, counts in merge_sorted_runs(readers + sources, self.n, B, id_bound):
                out.append(rows, counts)
            out.finish()
        finally:
            for r in readers:
                r.close()
        for r in self.runs:
            r.delete()
        self.runs = []
        return out


# ----------------------------------------------------------------------------------------------
# The counts on disk


@dataclass
class SortedCounts:
    """Counts held on disk, one sorted run per order >= 2 (the result of counting or merging that
    spilled); unigrams and vocabulary in memory. ``iter_sorted`` streams them as
    lmtools.io.countstream.iter_sorted_counts does a file; ``to_counts`` reads them whole."""

    vocab: list[str]
    unigrams: np.ndarray
    runs: list[RunFile]  # order 2..N
    tokens: int
    sentences: int
    provenance: dict = field(default_factory=dict)
    text: dict | None = None
    spills: int = 0  # how many times the tables were spilled
    spill: SpillDir | None = None

    @property
    def order(self) -> int:
        return len(self.runs) + 1

    def sizes(self) -> list[int]:
        return [len(self.vocab)] + [r.m for r in self.runs]

    def header(self, block_rows: int = BLOCK_ROWS) -> CountsHeader:
        return CountsHeader(vocab=list(self.vocab), unigrams=self.unigrams, tokens=self.tokens,
                            sentences=self.sentences, order=self.order, sizes=self.sizes(),
                            provenance=dict(self.provenance or {}), text=self.text, block_rows=block_rows)

    def blocks(self, block_rows: int = BLOCK_ROWS, first: int = 2) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(n, rows, counts) for orders ``first``..N, blocks of ``block_rows`` rows (an order's last
        fewer), at least one block per order; order 1 is the vocabulary and ``unigrams``."""
        if first <= 1:
            V = len(self.vocab)
            yield 1, np.arange(V, dtype=np.int32).reshape(V, 1), self.unigrams
        for n, run in enumerate(self.runs, start=2):
            if run.m == 0:
                yield n, np.zeros((0, n), np.int32), np.zeros(0, np.int64)
                continue
            reader = run.reader()
            try:
                while True:
                    rows = np.empty((block_rows, n), np.int32)
                    counts = np.empty(block_rows, np.int64)
                    k = reader.read_into(rows, counts)
                    if k == 0:
                        break
                    yield n, rows[:k], counts[:k]
            finally:
                reader.close()

    def iter_sorted(self, block_rows: int = BLOCK_ROWS):
        """A ``CountsHeader``, then (n, rows, counts) for n = 1..N: the protocol of iter_sorted_counts."""
        yield self.header(block_rows)
        yield from self.blocks(block_rows, first=1)

    def to_counts(self) -> Counts:
        ngrams, counts = [np.arange(len(self.vocab), dtype=np.int32).reshape(-1, 1)], [self.unigrams]
        parts: dict[int, list] = {}
        for n, rows, cnt in self.blocks():
            parts.setdefault(n, []).append((rows, cnt))
        for n in range(2, self.order + 1):
            ngrams.append(np.concatenate([r for r, _ in parts[n]]))
            counts.append(np.concatenate([c for _, c in parts[n]]))
        return Counts(vocab=list(self.vocab), ngrams=ngrams, counts=counts, tokens=self.tokens,
                      sentences=self.sentences, provenance=dict(self.provenance or {}), text=self.text)


# ----------------------------------------------------------------------------------------------
# Counting


def table_bytes(t: OrderTable) -> int:
    return t.table.nbytes + t.prefix.nbytes + t.word.nbytes + t.count.nbytes


def bytes_after_room(t: OrderTable, extra: int) -> int:
    """The bytes of ``t`` after ``t.ensure_room(extra)`` (the same rule of growth)."""
    need = t.n + extra
    cap = t.prefix.shape[0]
    if need > cap:
        cap = max(need, 2 * cap)
    slots2 = t.table.shape[0]
    if 2 * need > slots2 // 2:
        slots2 = 2 << int(np.ceil(np.log2(2 * need + 1)))
    return 8 * slots2 + 16 * cap


def _room_for(grow: int) -> bool:
    """Whether ``grow`` more bytes fit in the memory this process can still get (lmtools.memory's
    check, which the tables' growth would otherwise fail): under a limit that tightens as the program
    runs (ulimit -v and the kernels' code, other processes' memory) the tables spill instead."""
    from lmtools import memory

    if grow <= 0 or not memory.check_enabled():
        return True
    avail, _ = memory.available()
    return avail is None or grow <= avail


def alloc_for_room(t: OrderTable, extra: int) -> int:
    """The bytes ``t.ensure_room(extra)`` allocates anew (what its memory check asks for)."""
    need = t.n + extra
    out = 0
    if need > t.prefix.shape[0]:
        out += 16 * max(need, 2 * t.prefix.shape[0])
    if 2 * need > t.table.shape[0] // 2:
        out += 8 * (2 << int(np.ceil(np.log2(2 * need + 1))))
    return out


class SpillingCounter(NgramCounter):
    """An ``NgramCounter`` whose tables stay within ``budget`` bytes (TABLE_SHARE of it), spilling
    sorted runs into ``spill`` as needed."""

    def __init__(self, order: int, budget: int, spill: SpillDir):
        from lmtools.memory import keep_freed_memory

        keep_freed_memory()  # each spill sorts into the memory the spill before used
        super().__init__(order)
        self.budget = budget
        self.limit = int(budget * TABLE_SHARE)
        self.spill = spill
        self.runs: list[list[RunFile]] = [[] for _ in range(order - 1)]
        self.spills = 0
        # A block may add up to its tokens of new n-grams per order (16 bytes of arrays and at least
        # 32 of table each): blocks small enough that one never takes the tables far past the limit.
        # (Where less memory is available than the budget, blocks follow what is available.)
        per_token = 48 * max(1, order - 1)
        room = self.limit
        if not _room_for(room):
            from lmtools import memory

            room = min(room, int((memory.available()[0] or room) * TABLE_SHARE))
        self.block_tokens = int(min(self.block_tokens, max(MIN_BLOCK_TOKENS, room // (4 * per_token))))
        self.before_block = self._before_block

    def reserve(self, tokens: int) -> None:
        # Reserve no more than the budget holds: the tables grow by doubling from there.
        def fits(k: int) -> bool:
            after = sum(bytes_after_room(t, min(k, 1 << 20)) for t in self.tables)
            return after <= self.limit and _room_for(sum(alloc_for_room(t, min(k, 1 << 20)) for t in self.tables))

        while tokens > 1024 and not fits(tokens):
            tokens //= 2
        if fits(tokens):
            from lmtools.errors import LmError

            try:
                super().reserve(tokens)
            except LmError:  # the kernels' code, loaded meanwhile, took the room: the tables grow as needed
                pass

    def _before_block(self, size: int, carry: list[int]) -> list[int]:
        if not self.tables:
            return carry
        after = sum(bytes_after_room(t, size) for t in self.tables)
        if not any(t.n for t in self.tables):
            return carry
        if after > self.limit or not _room_for(sum(alloc_for_room(t, size) for t in self.tables)):
            carry = self._spill(carry)
        return carry

    def _history(self, carry: list[int]) -> np.ndarray:
        """The word ids of the longest n-gram ending at the carried position (oldest first)."""
        top = max((k for k, c in enumerate(carry) if c >= 0), default=-1)
        if top < 0:
            return np.zeros(0, np.int32)
        words = []
        g = carry[top]
        for k in range(top, -1, -1):  # table k holds order k + 2
            t = self.tables[k]
            words.append(int(t.word[g]))
            g = int(t.prefix[g])
        words.append(g)  # order 2's prefix is a word id
        return np.array(words[::-1], np.int32)

    def _restore_history(self, history: np.ndarray, carry: list[int]) -> list[int]:
        """Put the n-grams of ``history`` back into the emptied tables with a count of 0; the carried
        ids in the new tables."""
        from lmtools.kernels.count import add_weighted

        new = [-1] * len(carry)
        prev = history
        for k, t in enumerate(self.tables):
            m = prev.shape[0] - 1
            if m <= 0:
                break
            out = np.empty(m, np.int32)
            t.ensure_room(m)
            t.n = add_weighted(prev[:-1].astype(np.int32), history[-m:].astype(np.int32), np.zeros(m, np.int64),
                               t.table, t.shift, t.prefix, t.word, t.count, t.n, out)
            if carry[k] >= 0:
                new[k] = int(out[-1])
            prev = out
        return new

    def _spill(self, carry: list[int]) -> list[int]:
        history = self._history(carry)
        self.spill_tables()
        return self._restore_history(history, carry)

    def spill_tables(self, reuse: bool = True) -> None:
        """Sort the tables (orders 2..N) into one run each and empty them (``reuse``: for more
        counting; the last spill leaves them as they are, their memory going to the merge)."""
        from lmtools.kernels.count import build_sorted
        from lmtools.kernels.merge_runs import sum_sorted

        V = self.unigrams.shape[0]
        rows = np.arange(V, dtype=np.int32).reshape(V, 1)
        rank = np.arange(V, dtype=np.int64)
        for k, t in enumerate(self.tables):
            prefix, word, count = t.arrays()
            rows, rank, order = build_sorted(prefix, word, rank, rows, V, k + 1 < len(self.tables))
            cnt = count[order]
            keep_rows = rows
            if t.n and (cnt == 0).any():  # zero counts: history put back after a spill, never seen since
                keep_rows, cnt = rows.copy(), cnt.copy()
                m = sum_sorted(keep_rows, cnt, keep_rows, cnt)
                keep_rows, cnt = keep_rows[:m], cnt[:m]
            run = RunFile(self.spill, k + 2, behind=True)  # written by the writer thread while counting goes on
            run.append(keep_rows, cnt)
            self.runs[k].append(run.finish())
            del keep_rows, cnt, order
        del rows, rank
        for t in self.tables:
            if reuse:  # a pass over the whole table (2 GB at -S 4G): only when it is counted into again
                t.table.fill(-1)
            t.n = 0
        self.spills += 1

    def finish(self, vocab: list[str], vocab_opts: VocabOptions | None) -> Levels | SortedCounts:
        """``Levels`` (today's form) when nothing spilled, else ``SortedCounts``: every run merged per
        order, after the vocabulary restriction if any."""
        if self.spills == 0:
            return self.levels(vocab, vocab_opts)
        self.spill_tables(reuse=False)
        self.spills -= 1  # the last tables are not a spill of a full budget
        for t in self.tables:  # the tables' memory is the merge's now
            t.__init__()
        V = len(vocab)
        uni = np.zeros(V, np.int64)
        m = min(V, self.unigrams.shape[0])
        uni[:m] = self.unigrams[:m]
        merged = []
        remap = None
        if vocab_opts is not None and vocab_opts.restricts():
            remap, vocab = vocabulary_restriction(vocab, uni, vocab_opts)
            uni = np.bincount(remap, weights=uni, minlength=len(vocab)).astype(np.int64)
        for k, runs in enumerate(self.runs):
            n = k + 2
            sorter = ExternalSorter(n, self.spill, self.budget // 2)
            sorter.runs = runs
            run = sorter.result(self.budget, V)
            if remap is not None:
                run = _remapped(run, remap, self.spill, self.budget)
            merged.append(run)
        self.runs = []
        return SortedCounts(vocab=list(vocab), unigrams=uni, runs=merged, tokens=self.tokens,
                            sentences=self.sentences, spills=self.spills, spill=self.spill)


def _remapped(run: RunFile, remap: np.ndarray, spill: SpillDir, budget: int) -> RunFile:
    """A sorted run with its word ids mapped through ``remap``, sorted and summed again."""
    sorter = ExternalSorter(run.n, spill, budget // 2)
    reader = run.reader()
    B = merge_block_rows(1, run.n, budget)
    remap32 = remap.astype(np.int32)
    try:
        while True:
            rows = np.empty((B, run.n), np.int32)
            counts = np.empty(B, np.int64)
            k = reader.read_into(rows, counts)
            if k == 0:
                break
            sorter.add(remap32[rows[:k]], counts[:k])
    finally:
        reader.close()
    run.delete()
    return sorter.result(budget, int(remap.max()) + 1 if remap.size else None)


def test_budget() -> int | None:
    """The budget in bytes from LMTOOLS_TEST_BUDGET (tests force spills with it), else None."""
    v = os.environ.get(TEST_BUDGET_ENV, "").strip()
    return int(v) if v.isdigit() and int(v) > 0 else None


def count_levels_budget(paths: list[str], order: int, budget: int, spill: SpillDir, *, text_opts=None,
                        vocab_opts: VocabOptions | None = None, on_chunk: Callable | None = None):
    """Count as ``count_levels`` does within ``budget`` bytes: its ``Levels`` when everything fitted
    (nothing written to disk), else ``SortedCounts`` (runs in ``spill``)."""
    from lmtools.io.text import TokenTable, iter_text_chunks
    from lmtools.ngram.counting import SMALL_INPUT_BYTES, count_levels, count_small, input_bytes, text_kind

    size = input_bytes(paths)
    forced = test_budget() is not None
    if not forced and size is not None and size <= SMALL_INPUT_BYTES:
        return count_levels(paths, order, text_opts=text_opts, vocab_opts=vocab_opts, on_chunk=on_chunk)
    chunks = iter_text_chunks(paths, text_opts)
    if not forced:
        head, n_bytes = [], 0
        for chunk in chunks:
            head.append(chunk)
            n_bytes += len(chunk.data)
            if n_bytes > SMALL_INPUT_BYTES:
                break
        else:  # (what was read is counted: standard input cannot be read again)
            levels = count_small(head, order, vocab_opts, on_chunk)
            levels.text = text_kind(text_opts)
            return levels
        chunks = itertools.chain(head, chunks)
    counter = SpillingCounter(order, budget, spill)
    if size:
        counter.reserve(size // BYTES_PER_TOKEN)
    table = TokenTable()
    for chunk in chunks:
        enc = table.encode_chunk(chunk, grow=True)
        counter.add(enc.ids)
        if on_chunk is not None:
            on_chunk(enc)
    result = counter.finish(table.words(), vocab_opts)
    result.text = text_kind(text_opts)
    return result


# ----------------------------------------------------------------------------------------------
# Merging count sets


def merge_external(sources, budget: int, spill: SpillDir, names: list[str] | None = None) -> SortedCounts:
    """The sum of count sets within ``budget`` bytes, as ``ngram.merge.merge_levels`` gives it (the
    vocabulary in order of first occurrence over the inputs in turn, so the result equals counting
    the inputs' texts one after the other), held on disk as ``SortedCounts``.

    ``sources``: one iterator per input in the protocol of io.countstream.iter_sorted_counts (a
    ``CountsHeader``, then (n, rows, counts) blocks, orders ascending), consumed one after the other.
    An input's ids are mapped into the merged vocabulary: where the map keeps their order (the first
    input, or one with the same words in the same order) its sorted blocks go straight to a run,
    else its rows are sorted again (``ExternalSorter``)."""
    from lmtools.errors import LmError
    from lmtools.ngram.merge import check_same_reading
    from lmtools.vocab import SPECIALS

    from lmtools.memory import keep_freed_memory

    keep_freed_memory()  # (as SpillingCounter)
    names = list(names or [])
    vocab = list(SPECIALS)
    index = {w: i for i, w in enumerate(vocab)}
    uni = np.zeros(len(vocab), np.int64)
    heads: list[CountsHeader] = []
    sorters: list[ExternalSorter] = []
    tokens = sentences = 0
    order = 0
    for i, src in enumerate(sources):
        name = names[i] if i < len(names) else f"input {i + 1}"
        while len(names) <= i:
            names.append(f"input {len(names) + 1}")
        head = next(src)
        if i == 0:
            order = head.order
            share = max(1, budget // (2 * max(1, order - 1)))
            sorters = [ExternalSorter(n, spill, share) for n in range(2, order + 1)]
        elif head.order != order:
            raise LmError(f"{name} has order {head.order}, {names[0]} has order {order}",
                          "merge count files of the same order (count all shards with the same -n)")
        heads.append(head)
        check_same_reading(heads, names[:i + 1])
        remap = np.empty(len(head.vocab), np.int64)
        for j, w in enumerate(head.vocab):
            k = index.get(w)
            if k is None:
                k = index[w] = len(vocab)
                vocab.append(w)
            remap[j] = k
        if len(vocab) > uni.shape[0]:
            uni = np.concatenate([uni, np.zeros(len(vocab) - uni.shape[0], np.int64)])
        np.add.at(uni, remap, np.asarray(head.unigrams, np.int64))
        tokens += head.tokens
        sentences += head.sentences
        keeps_order = bool(np.all(np.diff(remap) > 0))
        remap32 = remap.astype(np.int32)
        run, run_n = None, 0
        for n, rows, counts in src:
            if n == 1 or rows.shape[0] == 0:
                continue
            mapped = remap32[rows]
            if not keeps_order:
                sorters[n - 2].add(mapped, np.asarray(counts, np.int64))
                continue
            if run is None or run_n != n:  # this input's order-n rows, in order: one run
                if run is not None:
                    run.finish()
                run, run_n = RunFile(spill, n), n
                sorters[n - 2].runs.append(run)
            run.append(mapped, counts)
        if run is not None:
            run.finish()
        head.unigrams = None  # the vocabulary stays (the reading check compares closed vocabularies)
    if not heads:
        raise LmError("nothing to merge", "give two or more count files")
    reading = check_same_reading(heads, names)
    text = {k: reading[k] for k in ("chars", "lower")} if "chars" in reading else None
    provenance = {"options": {k: v for k, v in reading.items() if k not in ("chars", "lower")}}
    if text is not None:
        provenance["options"].update(text)
    runs = [s.result(budget, len(vocab)) for s in sorters]
    return SortedCounts(vocab=vocab, unigrams=uni, runs=runs, tokens=tokens, sentences=sentences,
                        provenance=provenance, text=text, spill=spill)
