"""N-gram estimation in a memory budget: counts spilled to disk by partition, estimated one partition
at a time, merged back in order (lm-train -S).

The stages are those of ``lmtools.ngram.partitioned`` (the same model as the in-memory estimation,
bit for bit); this module decides where their data lives:

1. scatter: the sorted counts, read as a stream of blocks (order by order, rows in lexicographic
   order), go to one pair of raw files (rows, counts) per partition and order; each partition's
   files are a filter of a sorted stream, so they are sorted too. Only the unigrams stay in memory.
2. pass 1: each partition is read back alone; its share of the global sums (counts of counts,
   distinct left extensions of the words) is added up as it comes.
3. pass 2: each partition again: its log10 probabilities and its contexts' backoffs go to raw files.
4. merge: per order, a k-way merge of the partitions' sorted rows (one block per partition in
   memory), their backoffs joined on the way from the merged stream of contexts, done when the model
   is written (``OrderMerge``): straight into the places of the order's arrays in the model file when
   it goes to a regular file, else into raw files (``lmtools.io.spill.DiskArray``) that the model
   writers stream (a pipe, ARPA output, pruning, the query tables).

What is in memory at once: one partition and its working arrays (the number of partitions is chosen
from the budget and the counts' sizes), or one block per partition while merging, plus the
vocabulary-sized arrays.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Iterator

import numpy as np

from lmtools.errors import LmError
from lmtools.io.countstream import PackedRows, RunFile
from lmtools.io.spill import ArrayShape, BlockWriter, DiskArray
from lmtools.ngram.model import NGramModel
from lmtools.ngram.partition import partition_of_rows
from lmtools.ngram.partitioned import (
    ADJUSTED, Partition, Unigrams, combine, estimate_partition, merge_streams, model_info, model_provenance,
    partition_index, partition_stats, plan, sum_stats,
)

# Bytes of working memory per n-gram while a partition is estimated (its rows and counts, the context
# and suffix indexes, adjusted counts, float64 probabilities and the temporaries of numpy's steps), and
# per n-gram of lm-train in memory (the whole estimation and the query tables): measured on a 10M-token
# sampled 5-gram (23.3M n-grams): in memory, 2512 MiB peak RSS (113 bytes per n-gram with the
# interpreter); on disk, 83 bytes per n-gram of a partition that tracemalloc sees (PTB 5-gram, 4
# partitions) and 24 more in numba's index arrays, which it does not; rounded up. The partitions are
# sized so that the average one uses a quarter of the budget: the next-to-last words are hashed, so the
# largest partition was 1.2 times the average at 10M tokens, and the interpreter, the vocabulary-sized
# arrays, the writes in flight and the merge take the rest. (With a third, 100M tokens at -S 1G peaked
# at 1283-1376 MiB in pass 2, past the budget + 300 MB.) Fewer, larger partitions are no faster (at 10M
# tokens and -S 1G, 5 partitions took as long as 11, with a peak RSS 320 MiB higher).
BYTES_PER_NGRAM = 112
MAX_PARTS = 4096
MIN_BLOCK_ROWS = 1 << 12


def choose_parts(sizes: list[int] | None, budget: int) -> int:
    """Number of partitions for counts of these sizes (orders 2..N summed) in ``budget`` bytes."""
    if not sizes:
        return 64
    need = BYTES_PER_NGRAM * sum(int(s) for s in sizes[1:])
    return int(min(MAX_PARTS, max(1, math.ceil(4 * need / max(budget, 1)))))


def _block_reader(arrays: list[DiskArray], rows: int) -> Iterator[tuple]:
    """Blocks of ``rows`` rows of parallel DiskArrays, as tuples."""
    m = len(arrays[0])
    for a in range(0, m, rows):
        yield tuple(x.read(a, a + rows) for x in arrays)


def estimate_bounded(head, blocks: Iterable[tuple], space, budget: int, **options) -> NGramModel:
    """Estimate from a sorted count stream (``io.countstream.iter_sorted_counts``): ``head`` (a
    ``CountsHeader``: vocab, order, sizes, tokens, sentences, provenance, text), then ``blocks`` of
    (n, rows (k, n) int32, counts int64), orders ascending (order 1: every word id once, in order),
    keeping the work within about ``budget`` bytes; the files go to ``space`` (an
    io.countstream.SpillDir, which the caller removes). ``options``: those of ``smooth`` (method,
    order, interpolate, discount, k, alpha, prune, kenlm_compat), ``parts`` (default: from the budget),
    ``warn`` and ``progress`` (callables taking a message).

    The returned model's arrays of orders >= 2 are ``MergedArray``s: merged from files of ``space``
    (which must outlive the model's writing) when the model is written or an array is read (the
    interface of io.spill.DiskArray); order 1 is in memory. A failure to write or read the temporary
    files (a full disk, a vanished directory) is one LmError."""
    from lmtools.io.countstream import temp_error
    from lmtools.memory import keep_freed_memory

    keep_freed_memory()  # one partition after another reuses the memory of the one before
    try:
        return _estimate(head, blocks, space, budget, **options)
    except OSError as e:
        raise temp_error(space.base, e) from None


def _estimate(head, blocks: Iterable[tuple], space, budget: int, *,
              method: str = "kn-modified", order: int | None = None, interpolate: bool | None = None,
              discount=None, k: float = 1.0, alpha: float = 0.4, prune=None, kenlm_compat: bool = False,
              parts: int | None = None, warn: Callable[[str], None] | None = None,
              progress: Callable[[str], None] | None = None) -> NGramModel:
    note = progress or (lambda msg: None)
    N = head.order if order is None else int(order)
    if N < 1 or N > head.order:
        raise LmError(f"order {N} is larger than the counts' order {head.order}",
                      f"count with lm-count -n {N} or train with -n {head.order}")
    spec = plan(method, N, interpolate=interpolate, discount=discount, k=k, alpha=alpha, prune=prune,
                kenlm_compat=kenlm_compat)
    P = parts or choose_parts(head.sizes[:N] if head.sizes else None, budget)
    V = len(head.vocab)

    # 1. scatter
    unigrams = None
    writers: dict = {}
    seen_orders = set()
    # an n-gram is counted at most once per token or sentence end
    positions = int(head.tokens) + int(head.sentences)
    for n, rows, counts in blocks:
        if n > N:
            continue
        seen_orders.add(n)
        if n == 1:
            unigrams = counts.astype(np.int64) if unigrams is None else np.concatenate([unigrams, counts])
            continue
        if counts.size and ((positions > 0 and int(counts.max()) > positions) or int(counts.min()) < 0):
            raise LmError(f"the counts are inconsistent: an n-gram of order {n} is counted more often than "
                          f"the {positions} tokens and sentence ends of the header", "recreate them with lm-count")
        pid = partition_of_rows(rows, P).astype(np.int16 if P <= 32767 else np.int32)
        perm = np.argsort(pid, kind="stable")  # stable (a radix sort of small ints): each partition's rows keep the stream's order
        bounds = np.searchsorted(pid[perm], np.arange(P + 1))
        for p in range(P):
            lo, hi = bounds[p], bounds[p + 1]
            if lo == hi:
                continue
            key = (p, n)
            if key not in writers:  # rows and counts packed at the bits they need
                writers[key] = RunFile(space, n, f"count-p{p}-o{n}", behind=True)
            sel = perm[lo:hi]
            writers[key].append(rows[sel], counts[sel])
    if unigrams is None or unigrams.shape[0] != V:
        raise LmError("the counts are inconsistent: unigrams must list every word id once, in order",
                      "recreate them with lm-count")
    stored = {key: w.finish() for key, w in writers.items()}
    uni = Unigrams(vocab=list(head.vocab), counts=unigrams, order=N, tokens=int(head.tokens),
                   sentences=int(head.sentences), provenance=dict(head.provenance or {}), text=head.text)
    largest = max((sum(stored[k].nbytes for k in stored if k[0] == p) for p in range(P)),
                  default=0)
    note(f"{P} partitions on disk; the largest holds {largest / 2**20:.0f} MiB of counts")
    top = max((sum(stored[k].m for k in stored if k[0] == p) for p in range(P)), default=0)
    if BYTES_PER_NGRAM * top > budget and warn is not None:
        # one next-to-last word's n-grams cannot be split: a partition is read whole, whatever its size
        warn(f"the largest partition ({top} n-grams) needs about {BYTES_PER_NGRAM * top / 2**20:.0f} MiB, "
             f"more than the budget (-S {budget / 2**20:.0f} MiB): it is estimated in memory all the same")

    def load(p: int) -> Partition:
        g, c = [], []
        for n in range(2, N + 1):
            if (p, n) in stored:
                rows, counts = stored[(p, n)].load()
                g.append(rows)
                c.append(counts)
            else:
                g.append(np.zeros((0, n), np.int32))
                c.append(np.zeros(0, np.int64))
        return Partition(p, P, g, c)

    # 2. pass 1, the sums over partitions added up as they come (one partition loaded at a time); the
    # last one stays loaded, with its index, and is estimated first in pass 2
    kept = None

    def stats():
        nonlocal kept
        for p in range(P):
            part = load(p)
            index = partition_index(part, threads=search_threads()) if spec.method in ADJUSTED else None
            yield partition_stats(part, spec, V, index)
            if p == P - 1:
                kept = (p, part, index)
            elif index is not None:  # pass 2 reads them rather than search for them again
                for n in range(3, N + 1):
                    w = BlockWriter(space, f"suf-p{p}-o{n}", np.int32)
                    w.append(index.suf[n].astype(np.int32))
                    suffixes[(p, n)] = w.close()
            del part, index

    suffixes: dict = {}

    total = sum_stats(stats())
    glob = combine(uni, [total], spec, warn)

    # 3. pass 2
    results: dict = {}
    reused: set = set()  # (p, n) whose counts' rows file is also the result's
    enlarged = [0] * (N - 1)  # katz: contexts whose denominator was enlarged, per order 2..N
    for p in ([kept[0]] if kept else []) + [q for q in range(P) if not kept or q != kept[0]]:
        if kept is not None and kept[0] == p:
            part, index = kept[1], kept[2]
            kept = None
        else:
            part, index = load(p), None
            if all((p, n) in suffixes for n in range(3, N + 1)) and spec.method in ADJUSTED:
                index = partition_index(part, {n: suffixes[(p, n)].load() for n in range(3, N + 1)})
        for n in range(3, N + 1):
            if (p, n) in suffixes:
                suffixes.pop((p, n)).remove()
        res = estimate_partition(part, glob, index)
        for i, e in enumerate(res.enlarged):
            enlarged[i] += e
        for n, o in enumerate(res.orders, start=2):
            out = []
            for what, arr in zip(RESULT_PARTS, result_arrays(o)):
                if arr is None:
                    out.append(None)
                    continue
                if what == "rows" and (p, n) in stored and arr is part.ngrams[n - 2]:
                    # nothing pruned: the rows are the partition's own, already on disk (the merge
                    # reads and removes that file: 1.4 GB less written at 40M tokens)
                    run = stored[(p, n)]
                    out.append(PackedRows(space, "", run.n, run=run))
                    reused.add((p, n))
                    continue
                if what in ("rows", "ctx"):  # rows of word ids: packed (io.countstream.PackedRows), half the bytes
                    w = PackedRows(space, f"model-p{p}-o{n}-{what}", arr.shape[1])
                else:
                    w = BlockWriter(space, f"model-p{p}-o{n}-{what}", arr.dtype, arr.shape[1] if arr.ndim == 2 else None)
                w.append(arr)
                out.append(w.close())
            results[(p, n)] = out
        del part, res, index
    for key, run in stored.items():
        if key not in reused:
            run.delete()

    # 4. merge, order by order, when the model is written
    return merge_results(results, uni, glob, enlarged, P, space, merge_block(budget, P, N))


def search_threads() -> int:
    """Threads for a partition's suffix search (its largest step): numba's thread count, which is the
    CPUs this process may use unless NUMBA_NUM_THREADS says fewer (lmplz also uses every core)."""
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def merge_block(budget: int, P: int, N: int) -> int:
    """Rows per partition held while merging P partitions' results of order N within ``budget``."""
    return max(MIN_BLOCK_ROWS, budget // (8 * P * (4 * N + 16)))


RESULT_PARTS = ("rows", "lp", "ctx", "bo")


def result_arrays(o) -> tuple:
    """What pass 2 leaves of one order of a partition (a ``partitioned.OrderResult``) for the merge, in
    the order of RESULT_PARTS: its rows, their log10 p, its contexts and their log10 backoffs (None:
    stupid backoff's constant)."""
    return (o.ngrams, o.logprob, o.contexts, o.ctx_backoff)


def merge_results(results: dict, uni: Unigrams, glob, enlarged: list, P: int, space, block: int) -> NGramModel:
    """The model from the partitions' pass-2 results on disk: ``results[(p, n)]`` is the list of
    DiskArrays (or None) of ``result_arrays`` for partition p and order n >= 2 (absent: the partition
    has no n-gram of that order); ``enlarged``: katz's enlarged contexts per order 2..N, summed. Shared
    by lm-train -S (this module) and lm-train --dask (lmtools.cluster_train).

    Orders >= 2 are merged when first needed (``OrderMerge``): per order, a k-way merge of the
    partitions' sorted rows (``block`` rows per partition in memory) with the backoffs joined on the
    way from the merged stream of contexts, straight into the model file when it is written to a
    regular file (io.modelwrite's ``_put_group``), else into DiskArrays of ``space``; the results'
    files are removed as they are merged. ``space`` must outlive the model's writing."""
    spec = glob.spec
    N, V = spec.order, uni.size
    ngrams: list = [np.arange(V, dtype=np.int32).reshape(V, 1)]
    logprob: list = [glob.logprob1]
    backoff: list = []
    stupid = spec.form == "stupid"
    if N == 1:
        backoff.append(np.zeros(V, np.float32))
    elif stupid:
        backoff.append(np.full(V, math.log10(spec.alpha), np.float32))
    else:
        bo = np.zeros(V, np.float32)
        for p in range(P):
            if (p, 2) in results:
                ctx_rows, ctx_bo = (a.load() for a in results[(p, 2)][2:])
                bo[ctx_rows[:, 0]] = ctx_bo
        backoff.append(bo)
    for p in range(P):  # the contexts of order 2 are joined: done
        for a in results.get((p, 2), ())[2:]:
            if a is not None:
                a.remove()
    for n in range(2, N + 1):
        merge = OrderMerge(n, spec, [results[(p, n)][:2] for p in range(P) if (p, n) in results],
                           [results[(p, n + 1)][2:] for p in range(P) if (p, n + 1) in results]
                           if n < N and not stupid else None, space, block)
        ngrams.append(merge.arrays[0])
        logprob.append(merge.arrays[1])
        backoff.append(merge.arrays[2])
    info = model_info(glob, enlarged)
    prov = model_provenance(uni)
    model = NGramModel(vocab=list(uni.vocab), ngrams=ngrams, logprob=logprob, backoff=backoff, method=spec.method,
                       info=info, provenance=prov, scores_only=stupid)
    model.text = uni.text  # how the text was read, kept from the counts (as smoothing.smooth keeps it)
    return model


class OrderMerge:
    """The merge of one order n >= 2 of the partitions' pass-2 results into three model arrays (rows,
    log10 p, log10 backoffs), run once, when first needed: by the model writer through ``write_into``
    (io.modelwrite: the arrays written straight into their places in the model file, no temporary
    copy: 1.9 GB less written at 40M tokens), or by anything that reads an array (``MergedArray``),
    into DiskArrays of ``space``. ``sources``: per partition, its DiskArrays of rows and log10 p of
    order n; ``contexts``: per partition, its contexts of order n (rows of order n) and their backoffs
    (None: the highest order, or stupid backoff, whose backoffs are constants)."""

    def __init__(self, n: int, spec, sources: list, contexts: list | None, space, block: int):
        self.n, self.spec, self.space, self.block = n, spec, space, block
        self.sources, self.contexts = sources, contexts
        m = sum(len(rows) for rows, _ in sources)
        self.arrays = (MergedArray(self, 0, np.int32, (m, n)), MergedArray(self, 1, np.float32, (m,)),
                       MergedArray(self, 2, np.float32, (m,)))
        self.done = False
        self._disk: tuple | None = None

    def write_into(self, sinks) -> None:
        """Merge, appending each block of rows, log10 p and backoffs to ``sinks[0..2]`` (objects with
        ``append(block)``); the results' files are removed once merged. A temporary file that cannot
        be read or written is one LmError (a sink's own errors are its own)."""
        from lmtools.io.countstream import temp_error

        if self.done:
            raise ValueError(f"order {self.n} is merged already")
        self.done = True
        try:
            self._merge(sinks)
        except OSError as e:
            raise temp_error(self.space.base, e) from None

    def _merge(self, sinks) -> None:
        rows_w, lp_w, bo_w = sinks
        N, stupid = self.spec.order, self.spec.form == "stupid"
        check = not self.spec.thresholds
        ctx = _Contexts([_block_reader(c, self.block) for c in self.contexts]) if self.contexts is not None \
            else None
        for rows, lp in merge_streams([_block_reader(s, self.block) for s in self.sources]):
            rows_w.append(rows)
            lp_w.append(lp)
            if self.n == N:
                bo_w.append(np.zeros(rows.shape[0], np.float32))
            elif stupid:
                bo_w.append(np.full(rows.shape[0], math.log10(self.spec.alpha), np.float32))
            else:
                bo_w.append(ctx.join(rows, check=check))
        if ctx is not None:
            ctx.finish(check=check)
        for group in self.sources + (self.contexts or []):
            for a in group:
                if a is not None:
                    a.remove()
        self.sources, self.contexts = [], None

    def on_disk(self) -> tuple:
        """The three arrays as DiskArrays of ``space`` (merged now if not yet)."""
        if self._disk is None:
            # their checksums made as they are written (the model writer's); rows packed: half the bytes
            sinks = (PackedRows(self.space, f"final-o{self.n}-rows", self.n, checksum=True),
                     BlockWriter(self.space, f"final-o{self.n}-lp", np.float32, checksum=True),
                     BlockWriter(self.space, f"final-o{self.n}-bo", np.float32, checksum=True))
            self.write_into(sinks)
            self._disk = tuple(w.close() for w in sinks)
            self.space.settle()  # written before anything reads them
        return self._disk


class MergedArray(ArrayShape):
    """One of an ``OrderMerge``'s arrays: its dtype and shape known before the merge; the model writer
    writes the merge's arrays straight into the model file (``write_group``); reading it (the
    interface of io.spill.DiskArray) merges into temporary files first."""

    def __init__(self, merge: OrderMerge, which: int, dtype, shape: tuple):
        super().__init__(dtype, shape)
        self.merge, self.which = merge, which

    @property
    def write_group(self) -> OrderMerge | None:
        """The merge, for a writer that can write its arrays at their places (io.modelwrite); None once
        it has run."""
        return None if self.merge.done else self.merge

    def _on_disk(self):
        return self.merge.on_disk()[self.which]

    @property
    def crc32(self):
        return self._on_disk().crc32

    def read(self, start: int, stop: int) -> np.ndarray:
        return self._on_disk().read(start, stop)

    def load(self) -> np.ndarray:
        return self._on_disk().load()

    def chunks(self, max_bytes: int = 64 << 20):
        return self._on_disk().chunks(max_bytes)

    def remove(self) -> None:
        if self.merge._disk is not None:
            self.merge._disk[self.which].remove()


class _Contexts:
    """The merged stream of contexts (rows of one order that have extensions) with their backoffs,
    consumed in step with the merged rows of that order."""

    def __init__(self, sources: list):
        self._it = merge_streams(sources) if sources else iter(())
        self._buf = None  # (rows, backoffs) not yet joined

    def _next(self) -> bool:
        try:
            self._buf = next(self._it)
            return True
        except StopIteration:
            self._buf = None
            return False

    def join(self, rows: np.ndarray, check: bool) -> np.ndarray:
        """Backoffs of the next merged block of rows: the contexts not above its last row."""
        from lmtools.kernels.partitioned import count_not_above, find_rows, first_id_starts

        bo = np.zeros(rows.shape[0], np.float32)
        if rows.shape[0] == 0:
            return bo
        last = np.ascontiguousarray(rows[-1:])
        starts = None
        while True:
            if self._buf is None or self._buf[0].shape[0] == 0:
                if not self._next():
                    return bo
            ctx, val = self._buf
            take = count_not_above(ctx, last, 0)
            if take:
                starts = first_id_starts(rows) if starts is None else starts
                pos = find_rows(np.ascontiguousarray(ctx[:take]), rows, starts)
                found = pos >= 0
                if check and not found.all():
                    _inconsistent(rows.shape[1])
                bo[pos[found]] = val[:take][found]
                self._buf = (ctx[take:], val[take:])
            if self._buf[0].shape[0]:
                return bo  # the rest lies beyond this block

    def finish(self, check: bool) -> None:
        """Every context must have been joined (each is a row of its order)."""
        while self._buf is not None and self._buf[0].shape[0] == 0:
            self._next()
        if check and self._buf is not None and self._buf[0].shape[0]:
            _inconsistent(self._buf[0].shape[1])


def _inconsistent(n: int) -> None:
    raise LmError(f"the counts are inconsistent: a {n + 1}-gram's first {n} words are not a {n}-gram",
                  "recreate them with lm-count")
