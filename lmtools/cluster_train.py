"""Estimating an n-gram model on a Dask cluster (lm-train --dask): the stages of
lmtools.ngram.partitioned run as tasks, the model is merged here (lmtools.bounded.merge_results).

The job, for P partitions (each one estimation partition: the n-grams of one set of next-to-last
words, lmtools.ngram.partition):

1. pass 1: P tasks, each loading its partition (a count shard read from the directory every worker
   sees, or a partition the client split from a counts file and put in the task graph) and
   computing its share of the global sums (``partition_stats``); the shares are summed as a tree of
   ``sum_stats`` tasks (each vocabulary-sized), so the client receives one. For the Kneser-Ney
   methods a pass-1 task also writes its partition's suffix rows (orders >= 3) to files in the shared
   temporary directory: searching for them is most of a partition's index, and pass 2 reads them
   instead of searching again (about a quarter of the workers' time at 40M tokens);
2. the client combines them (``combine``: discounts, the unigram level) into the Globals of pass 2,
   put in the graph once (a task returning it), so that every worker fetches it from its holder;
3. pass 2: P tasks, each loading its partition again and estimating it (``estimate_partition``); the
   worker writes the result's arrays (``bounded.result_arrays``) as raw files to paths the client
   chose in its temporary directory (on a filesystem every worker sees) and returns their shapes;
4. the client merges the results order by order into one model (``bounded.merge_results``).

Every task is a plain function of its inputs (data or other tasks' keys), so distributed recomputes
what a lost worker held, and a retried pass-2 task rewrites its files whole: a worker killed mid-job
changes nothing in the model. The stages are bit-identical to the single-process estimation, so the
model is too.

dask and distributed are imported inside the functions that need them (lmtools.cluster).
"""

from __future__ import annotations

import functools
import os
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lmtools.bounded import RESULT_PARTS, merge_results, result_arrays
from lmtools.cluster import write_whole
from lmtools.errors import LmError
from lmtools.io.spill import DiskArray
from lmtools.ngram.partitioned import (
    ADJUSTED, Partition, Unigrams, combine, estimate_partition, partition_index, partition_stats, plan,
    split_counts, sum_stats,
)

TREE_FAN_IN = 8  # partial sums added per reduce task


# ----------------------------------------------------------------------------------------------
# Where a partition comes from


def shard_unigrams(directory: str, order: int | None) -> tuple[Unigrams, int, int]:
    """(the unigrams of a count-shard directory, the order estimated, the shards' partition count)."""
    from lmtools.io.countshards import read_meta

    meta = read_meta(directory)
    N = meta["order"] if order is None else int(order)
    _check_order(N, meta["order"])
    uni = Unigrams(vocab=list(meta["vocab"]), counts=np.asarray(meta["unigrams"], np.int64), order=N,
                   tokens=int(meta["tokens"]), sentences=int(meta["sentences"]),
                   provenance=dict(meta.get("provenance") or {}), text=meta.get("text"))
    return uni, N, int(meta["partitions"])


def _check_order(N: int, have: int) -> None:
    if N < 1 or N > have:
        raise LmError(f"order {N} is larger than the counts' order {have}",
                      f"count with lm-count -n {N} or train with -n {have}")


@functools.lru_cache(maxsize=4)
def _meta(directory: str, stamp: tuple) -> dict:
    """A worker's copy of a shard directory's meta record (read once per directory and version)."""
    from lmtools.io.countshards import read_meta

    return read_meta(directory)


def load_shard(directory: str, p: int, order: int) -> Partition:
    """Partition ``p`` of a count-shard directory, orders 2..order (run on a worker)."""
    from lmtools.io.countshards import META, read_partition

    st = os.stat(os.path.join(directory, META))
    meta = _meta(directory, (st.st_mtime_ns, st.st_size, st.st_ino))
    rows, counts = read_partition(directory, p, meta)
    return Partition(p, meta["partitions"], rows, counts).upto(order)


def _load(source, p: int, order: int) -> Partition:
    """A task's partition: ``source`` is a shard directory, or the partition itself."""
    if isinstance(source, Partition):
        return source
    return load_shard(source, p, order)


# ----------------------------------------------------------------------------------------------
# The tasks (module-level functions: workers import them by name)


def stats_task(source, p: int, spec, vocab_size: int, suffix_paths: dict | None = None):
    """Pass 1 of partition ``p``; with ``suffix_paths`` ({n: path}, Kneser-Ney methods) its suffix rows
    of orders >= 3 are also written there for pass 2."""
    part = _load(source, p, spec.order)
    index = partition_index(part) if spec.method in ADJUSTED and spec.order >= 2 else None
    if index is not None and suffix_paths:
        for n, path in suffix_paths.items():
            write_whole(path, index.suf[n].astype(np.int32).tofile)
    return partition_stats(part, spec, vocab_size, index)


def _read_suffixes(part: Partition, suffix_paths: dict | None):
    """The suffix rows pass 1 wrote for ``part`` ({n: int32 array}), or None where a file is missing or
    not of the order's length (then pass 2 searches for them itself: the same rows)."""
    if not suffix_paths:
        return None
    out = {}
    for n, path in suffix_paths.items():
        rows = part.ngrams[n - 2].shape[0]
        try:
            if os.path.getsize(path) != 4 * rows:
                return None
            out[n] = np.fromfile(path, dtype=np.int32, count=rows)
        except OSError:
            return None
    return out


def sum_task(*stats):
    return sum_stats(stats)


def hold_task(value):
    """A value put in the task graph (recomputable, unlike scattered data a lost worker held)."""
    return value


def estimate_task(source, p: int, glob, paths: dict, suffix_paths: dict | None = None) -> dict:
    """Pass 2 of partition ``p``: its result's arrays written to ``paths[(n, what)]`` (raw, native byte
    order, C order: what io.spill.DiskArray reads); returns {(n, what): (dtype, shape)} and katz's
    enlarged contexts per order. ``suffix_paths``: where pass 1 wrote the partition's suffix rows."""
    part = _load(source, p, glob.spec.order)
    index = None
    if glob.spec.method in ADJUSTED and glob.spec.order >= 2:
        suffixes = _read_suffixes(part, suffix_paths)
        index = partition_index(part, suffixes) if suffixes is not None else None
    res = estimate_partition(part, glob, index)
    shapes = {}
    for n, o in enumerate(res.orders, start=2):
        for what, arr in zip(RESULT_PARTS, result_arrays(o)):
            if arr is None:
                continue
            path = paths[(n, what)]
            with open(path, "wb") as f:  # a retried task writes the file again, whole
                np.ascontiguousarray(arr).tofile(f)
            shapes[(n, what)] = (arr.dtype.str, tuple(arr.shape))
    return {"shapes": shapes, "enlarged": list(res.enlarged)}


# ----------------------------------------------------------------------------------------------
# The job


def estimate_job(conn, sources: list, uni: Unigrams, space, *, method: str = "kn-modified",
                 interpolate=None, discount=None, k: float = 1.0, alpha: float = 0.4, prune=None,
                 kenlm_compat: bool = False, block: int = 1 << 16, warn: Callable[[str], None] | None = None,
                 on_step: Callable[[str], None] | None = None, out_dir: str | None = None):
    """The model of ``uni`` (its order is the one estimated) and the partitions ``sources`` (one per
    partition, in partition order: a shard directory's path, read by the worker, or a Partition),
    estimated on the cluster of ``conn`` (lmtools.cluster.Connection); the results' files go to
    ``space`` (an io.countstream.SpillDir on a filesystem the workers share; the caller removes it).
    The returned model's arrays of orders >= 2 are DiskArrays of ``space``. ``on_step(what)`` is called
    as each task of pass 1 ("stats") and pass 2 ("estimate") finishes.

    With ``out_dir`` (a directory every worker sees: model shards, lmtools.io.modelshards) the workers
    write pass 2's results there under their final names and nothing is merged: the return value is a
    ``ShardedResult`` (the Globals, katz's enlarged contexts, each partition's array shapes)."""
    distributed = _distributed()
    client = conn.client
    note = on_step or (lambda what: None)
    N, V, P = uni.order, uni.size, len(sources)
    spec = plan(method, N, interpolate=interpolate, discount=discount, k=k, alpha=alpha, prune=prune,
                kenlm_compat=kenlm_compat)
    tag = uuid.uuid4().hex[:10]
    futures: list = []
    try:
        held = [client.submit(hold_task, s, key=f"lm-train-part-{p}-{tag}") if isinstance(s, Partition) else s
                for p, s in enumerate(sources)]
        futures += [h for h in held if not isinstance(h, str)]
        # 1. pass 1, summed as a tree; the suffix rows' files chosen here (in the space the caller
        # removes, and a signal's handler)
        reuse = spec.method in ADJUSTED and N >= 3
        suffix_paths = [{n: space.new_file(f"suf-p{p}-o{n}") for n in range(3, N + 1)} if reuse else None
                        for p in range(P)]
        level = [client.submit(stats_task, s, p, spec, V, suffix_paths[p], key=f"lm-train-stats-{p}-{tag}")
                 for p, s in enumerate(held)]
        futures += level
        for f in distributed.as_completed(list(level), loop=client.loop):
            note("stats")
        depth = 0
        while len(level) > 1:
            depth += 1
            level = [client.submit(sum_task, *level[i:i + TREE_FAN_IN], key=f"lm-train-sum-{depth}-{i}-{tag}")
                     for i in range(0, len(level), TREE_FAN_IN)]
            futures += level
        total = level[0].result()
        pass1 = [f for f in futures if f.key.startswith(("lm-train-stats-", "lm-train-sum-"))]
        client.cancel(pass1)  # done with: nothing recomputes them (and rewrites suffix files) now
        futures = [f for f in futures if not f.key.startswith(("lm-train-stats-", "lm-train-sum-"))]
        del level, pass1
        glob = combine(uni, [total], spec, warn)
        glob_f = client.submit(hold_task, glob, key=f"lm-train-globals-{tag}")
        futures.append(glob_f)
        # 3. pass 2: the files' paths chosen here (in the space the caller removes, and a signal's handler)
        if out_dir is None:
            paths = [{(n, what): space.new_file(f"model-p{p}-o{n}-{what}") for n in range(2, N + 1)
                      for what in RESULT_PARTS} for p in range(P)]
        else:
            from lmtools.io.modelshards import result_file

            paths = [{(n, what): os.path.join(out_dir, result_file(p, n, what)) for n in range(2, N + 1)
                      for what in RESULT_PARTS} for p in range(P)]
        shapes: list = [None] * P
        est = [client.submit(estimate_task, s, p, glob_f, paths[p], suffix_paths[p],
                             key=f"lm-train-estimate-{p}-{tag}")
               for p, s in enumerate(held)]
        futures += est
        index = {f.key: p for p, f in enumerate(est)}
        results: dict = {}
        enlarged = [0] * (N - 1)
        for f in distributed.as_completed(est, loop=client.loop):
            p = index[f.key]
            out = f.result()
            f.release()
            for i, e in enumerate(out["enlarged"]):
                enlarged[i] += e
            shapes[p] = out["shapes"]
            if out_dir is None:  # the files become the merge's inputs (shards: they are the output)
                _merge_inputs(results, p, out["shapes"], paths[p], space, N)
            for path in (suffix_paths[p] or {}).values():  # read by the partition's pass 2: done with
                space.delete(path)
            note("estimate")
    except BaseException:
        client.cancel([f for f in futures if not isinstance(f, str)])
        raise
    client.cancel([f for f in futures if not isinstance(f, str)])  # release the partitions and Globals
    del futures, held, glob_f
    if out_dir is not None:
        return ShardedResult(glob, enlarged, shapes)
    # 4. the merge, here
    return merge_results(results, uni, glob, enlarged, P, space, block)


def _merge_inputs(results: dict, p: int, shapes: dict, paths: dict, space, N: int) -> None:
    """Partition p's pass-2 files as the DiskArrays merge_results reads (``results[(p, n)]``); the
    files a method leaves unwritten (stupid backoff: no backoffs) are forgotten."""
    for n in range(2, N + 1):
        if (n, "rows") not in shapes:
            continue
        arrays = []
        for what in RESULT_PARTS:
            if (n, what) not in shapes:
                arrays.append(None)
                continue
            dtype, shape = shapes[(n, what)]
            a = DiskArray(paths[(n, what)], np.dtype(dtype), shape, space)
            space.wrote(a.nbytes)
            arrays.append(a)
        results[(p, n)] = arrays
    for key, path in paths.items():
        if key not in shapes:
            space.delete(path)


@dataclass
class ShardedResult:
    """An estimation left as model shards: what their meta file records besides the counts' unigrams."""

    glob: object  # partitioned.Globals
    enlarged: list  # katz: enlarged contexts per order 2..N
    shapes: list  # per partition, {(n, part): (dtype, shape)} of the files written


def split_job(counts, order: int | None, parts: int) -> tuple[Unigrams, list[Partition]]:
    """A counts model (in this process) split into ``parts`` estimation partitions of orders 2..N."""
    N = counts.order if order is None else int(order)
    _check_order(N, counts.order)
    uni, split = split_counts(counts, parts)
    uni.order = N
    return uni, [part.upto(N) for part in split]


def _distributed():
    from lmtools.cluster import import_distributed

    return import_distributed()
