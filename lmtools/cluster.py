"""Counting on a Dask cluster (lm-count --dask): the tasks and their order; the computations are in
lmtools.ngram.shuffle, the reading of byte ranges in lmtools.io.textranges.

The job, for R byte ranges and P partitions (every task a plain function of its inputs, so that
distributed recomputes what a lost worker held, from the task graph):

1. R count tasks: a range counted with lm-count's tokenizer and kernels, kept on its worker; R small
   tasks send the client each range's vocabulary and unigram counts;
2. the client joins the vocabularies (first occurrence, range by range: lm-count's ids), sums the
   unigrams and applies --min-count, --vocab-size or --vocab: vocabulary-sized work;
3. R split tasks map each range's n-grams to the final ids and cut them into P pieces by partition
   (the next-to-last word's hash, lmtools.ngram.partition); R x P getitem tasks pick the pieces;
4. P sum tasks, each gathering its partition's pieces from every range (the shuffle) and summing
   them into sorted rows. The client takes the partitions one at a time as they finish.

dask and distributed are imported here only inside the functions that need them (an optional extra:
``pip install 'lmtools[dask]'``); workers need lmtools installed to run the tasks.
"""

from __future__ import annotations

import json
import math
import operator
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from lmtools.errors import LmError
from lmtools.io.textranges import ByteRange, iter_range_chunks
from lmtools.ngram import shuffle

DEFAULT_RANGE_MAX = 64 << 20  # bytes of text per range at most, by default
RANGE_MIN = 1 << 20  # ranges are not made smaller than this by default (a task's fixed cost)
PARTITION_BYTES = 128 << 20  # by default one partition per this much input, at least 2 per worker


class MissingDask(ImportError):
    """dask or distributed is not installed."""


def import_distributed():
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError as e:
        raise MissingDask(str(e)) from None
    return distributed


def default_range_bytes(total: int, workers: int) -> int:
    """At most DEFAULT_RANGE_MAX, and small enough for 2 ranges per worker, but not below RANGE_MIN."""
    return max(RANGE_MIN, min(DEFAULT_RANGE_MAX, math.ceil(total / max(1, 2 * workers))))


def default_partitions(total: int, workers: int) -> int:
    return max(2 * max(1, workers), math.ceil(total / PARTITION_BYTES))


# ----------------------------------------------------------------------------------------------
# Connecting


@dataclass
class Connection:
    client: object
    cluster: object | None  # the LocalCluster started here, or None (a running scheduler)
    address: str
    opened: float = field(default_factory=time.time)
    sigpipe: object = None  # the disposition of SIGPIPE before connecting, put back by close()

    def __post_init__(self) -> None:
        if os.environ.get(TASK_LOG_ENV):  # the scheduler records tasks only once the stream is asked for
            try:
                self.client.get_task_stream()
            except Exception:
                pass

    @property
    def dashboard(self) -> str | None:
        return getattr(self.client, "dashboard_link", None)

    def workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def close(self) -> None:
        import logging

        # Stopping a cluster has its own races (a worker's heartbeat to a scheduler already gone; after
        # Ctrl-C, the scheduler writing to a client or worker comm already closed) that distributed logs as
        # errors, some as CRITICAL: nothing a user can act on after the work is done or abandoned.
        logging.getLogger("distributed").setLevel(logging.CRITICAL + 1)
        try:
            log = os.environ.get(TASK_LOG_ENV)
            if log:
                write_task_log(self.client, self.opened, log)
            if self.cluster is not None:
                try:
                    self.client.run(silence_logs)
                except Exception:  # a worker gone or restarting: it has nothing to say either
                    pass
            self.client.close()
        finally:
            try:
                if self.cluster is not None:
                    self.cluster.close()
            finally:
                _restore_sigpipe(self.sigpipe)


TASK_LOG_ENV = "LMTOOLS_DASK_TASKS"


def write_task_log(client, since: float, path: str) -> None:
    """Append the job's tasks, one JSON object per line, to ``path`` (LMTOOLS_DASK_TASKS=PATH: a
    diagnostic for measuring a cluster's stages; bench/scale.py --dask reads it): the task's key,
    worker, result size and seconds of compute, transfer and disk per the scheduler's task stream.
    Best effort: a scheduler that no longer keeps the records writes fewer lines, never an error."""
    try:
        records = client.get_task_stream(start=since)
    except Exception:
        return
    with open(path, "a") as f:
        for r in records:
            secs: dict[str, float] = {}
            for ss in r.get("startstops", ()):
                secs[ss["action"]] = secs.get(ss["action"], 0.0) + ss["stop"] - ss["start"]
            key = r.get("key")
            key = key if isinstance(key, str) else str(key)
            f.write(json.dumps({"key": key, "worker": r.get("worker"), "nbytes": r.get("nbytes"),
                                "status": r.get("status"), "seconds": secs,
                                "start": min((ss["start"] for ss in r.get("startstops", ())), default=None),
                                "stop": max((ss["stop"] for ss in r.get("startstops", ())), default=None)}) + "\n")


def parse_address(address: str) -> int | None:
    """N for ``local:N`` (N >= 1), None for a scheduler address; ValueError for a bad local:N."""
    if address.startswith("local:") or address == "local":
        n = address.partition(":")[2]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"{address!r}: local:N needs N >= 1 worker processes")
        return int(n)
    return None


def connect(address: str, wait_s: float = 60.0, timeout_s: float = 20.0) -> Connection:
    """A client of a LocalCluster of N worker processes (``local:N``: one thread each, logs below
    errors silenced) or of the scheduler at ``address`` (waiting up to ``wait_s`` for a worker)."""
    import logging

    distributed = import_distributed()
    import dask

    logging.getLogger("distributed").setLevel(logging.ERROR)
    n = parse_address(address)
    # A filter dies quietly by SIGPIPE when its reader goes (lmtools.cli.common), but a client's sockets must
    # see a closed peer as an error: a worker process of local:N ended by the same Ctrl-C as we are, whose
    # socket the scheduler here still writes to, would otherwise kill this process by SIGPIPE before it can
    # clean up and exit 130. A closed standard output is then an EPIPE error, which ends the program as 141.
    sigpipe = _ignore_sigpipe()
    try:
        conn = _connect(distributed, dask, address, n, wait_s, timeout_s)
    except BaseException:
        _restore_sigpipe(sigpipe)
        raise
    conn.sigpipe = sigpipe
    return conn


def _ignore_sigpipe():
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def _restore_sigpipe(saved) -> None:
    if saved is not None:
        signal.signal(signal.SIGPIPE, saved)


def _connect(distributed, dask, address: str, n: int | None, wait_s: float, timeout_s: float) -> Connection:
    import logging

    if n is not None:
        _quiet_resource_tracker()
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GB"}):
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", silence_logs=logging.ERROR)
        try:
            client = distributed.Client(cluster, set_as_default=False)
            # The workers share our stderr: a task's error comes back to the client as its own one line,
            # not also as the worker's multi-line log record.
            client.run(quiet_task_errors)
        except BaseException:
            cluster.close()
            raise
        return Connection(client, cluster, cluster.scheduler_address)
    try:
        client = distributed.Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise LmError(f"cannot reach the Dask scheduler at {address} ({e})",
                      "start one (dask scheduler; dask worker ADDRESS on each host), or use --dask local:N") from None
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except (TimeoutError, OSError):
        client.close()
        raise LmError(f"the Dask scheduler at {address} has no workers", "start some: dask worker " + address) \
            from None
    return Connection(client, None, address)


def _quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (the helper process that frees the semaphores of the
    worker processes we start) with its stderr on /dev/null: after Ctrl-C the program ends at once
    (lmtools.cli.signals), and the tracker's note about the semaphores it then frees is not ours to show."""
    import os
    from multiprocessing import resource_tracker

    saved = os.dup(2)
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
            resource_tracker.ensure_running()
        finally:
            os.dup2(saved, 2)
            os.close(null)
    finally:
        os.close(saved)


def silence_logs() -> None:
    """In a worker process that is about to stop: no more log records on the shared stderr."""
    import logging

    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _not_a_task_failure(record) -> bool:
    return not str(record.msg).startswith("Compute Failed")


def quiet_task_errors() -> None:
    """In a worker process: drop the log record of a task that raised (the client reports it)."""
    import logging

    logger = logging.getLogger("distributed.worker")
    if _not_a_task_failure not in logger.filters:
        logger.addFilter(_not_a_task_failure)


# ----------------------------------------------------------------------------------------------
# The tasks (module-level functions: workers import them by name)


def count_task(r: ByteRange, order: int, text_opts) -> shuffle.RangeCounts:
    return shuffle.count_range(iter_range_chunks(r, text_opts), order, r.size)


def summary_task(rc: shuffle.RangeCounts) -> shuffle.RangeSummary:
    return rc.summary()


def split_task(rc: shuffle.RangeCounts, id_map: np.ndarray, parts: int) -> list:
    return shuffle.split_range(rc, id_map, parts)


def sum_task(order: int, *pieces) -> list:
    return shuffle.sum_pieces(list(pieces), order)


def sum_write_task(order: int, path: str, *pieces) -> dict:
    """A partition summed and written by the worker as a count shard at ``path`` (lm-count --shards: the
    client never receives the counts); returns its sizes per order 2..N and the file's bytes."""
    from lmtools.io.countshards import write_partition

    part = shuffle.sum_pieces(list(pieces), order)
    sizes = write_whole(path, lambda f: write_partition(f, [r for r, _ in part], [c for _, c in part]))
    return {"sizes": sizes, "bytes": os.path.getsize(path)}


def write_whole(path: str, write: Callable):
    """``write(stream)`` into a temporary name beside ``path``, then renamed to it: a reader sees the
    old file whole or the new one whole, never a part (a task retried on another worker writes the
    same bytes again). Returns what ``write`` returns."""
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp"
    try:
        with open(tmp, "wb") as f:
            out = write(f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return out


# ----------------------------------------------------------------------------------------------
# The job


@dataclass
class Totals:
    """What the client knows after the map stage: the final vocabulary and unigram counts."""

    vocab: list[str]
    unigrams: np.ndarray
    tokens: int
    sentences: int
    dropped: int
    replaced: int


def count_job(conn: Connection, ranges: list[ByteRange], order: int, *, text_opts, vocab_opts, parts: int,
              on_range: Callable[[ByteRange], None] | None = None,
              shard_dir: str | None = None) -> tuple[Totals, Iterator[tuple[int, list]]]:
    """Run the map stage and the vocabulary (returns ``Totals``), and start the shuffle: the iterator
    gives (p, partition) as partitions finish, a partition being per order 2..N (rows, counts). With
    ``shard_dir`` (a directory every worker sees) the workers write the partitions there as count
    shards instead, and the iterator gives (p, {"sizes", "bytes"})."""
    distributed = import_distributed()
    client = conn.client
    tag = uuid.uuid4().hex[:10]
    counted = [client.submit(count_task, r, order, text_opts, key=f"lm-count-range-{r.index}-{tag}")
               for r in ranges]
    summary_f = [client.submit(summary_task, f, key=f"lm-count-vocab-{i}-{tag}") for i, f in enumerate(counted)]
    index = {f.key: i for i, f in enumerate(summary_f)}
    summaries: list = [None] * len(ranges)
    try:
        for fut in distributed.as_completed(summary_f, loop=client.loop):
            i = index[fut.key]
            summaries[i] = fut.result()
            if on_range is not None:
                on_range(ranges[i])
    except BaseException:
        client.cancel(counted + summary_f)
        raise
    del summary_f
    vocab, maps = shuffle.global_vocabulary([s.vocab for s in summaries])
    unigrams = shuffle.sum_unigrams(summaries, maps, len(vocab))
    vocab, unigrams, remap = shuffle.restrict(vocab, unigrams, vocab_opts)
    if remap is not None:
        maps = [remap[m] for m in maps]
    totals = Totals(vocab, unigrams, sum(s.tokens for s in summaries), sum(s.sentences for s in summaries),
                    sum(s.stats.get("dropped", 0) for s in summaries), sum(s.stats.get("replaced", 0) for s in summaries))
    del summaries
    split = [client.submit(split_task, f, m.astype(np.int32), parts, key=f"lm-count-split-{i}-{tag}")
             for i, (f, m) in enumerate(zip(counted, maps))]
    del counted  # the scheduler keeps them while the splits need them (and their recipe, for a lost worker)
    sums = []
    for p in range(parts):
        pieces = [client.submit(operator.getitem, s, p, key=f"lm-count-piece-{i}-{p}-{tag}")
                  for i, s in enumerate(split)]
        if shard_dir is None:
            sums.append(client.submit(sum_task, order, *pieces, key=f"lm-count-part-{p}-{tag}"))
        else:
            from lmtools.io.countshards import partition_file

            sums.append(client.submit(sum_write_task, order, os.path.join(shard_dir, partition_file(p)), *pieces,
                                      key=f"lm-count-part-{p}-{tag}"))
    del split, pieces
    return totals, _partitions(client, sums, distributed)


def _partitions(client, sums: list, distributed) -> Iterator[tuple[int, list]]:
    index = {f.key: p for p, f in enumerate(sums)}
    try:
        for fut in distributed.as_completed(sums, loop=client.loop):
            p = index[fut.key]
            part = fut.result()
            fut.release()
            yield p, part
    except BaseException:
        client.cancel(sums)
        raise


def collect_counts(totals: Totals, finished: Iterator[tuple[int, list]], order: int, parts: int, *,
                   text: dict | None = None, provenance: dict | None = None,
                   on_partition: Callable[[int], None] | None = None):
    """The ``Counts`` of the job in this process (all of them: the one-file output): the partitions
    as they finish, then per order their union, sorted."""
    from lmtools.ngram.counts import Counts

    got: list = [None] * parts
    for p, part in finished:
        got[p] = part
        if on_partition is not None:
            on_partition(p)
    ngrams, counts = shuffle.union_partitions(got, order)
    del got
    V = len(totals.vocab)
    return Counts(vocab=totals.vocab, ngrams=[np.arange(V, dtype=np.int32).reshape(V, 1)] + ngrams,
                  counts=[totals.unigrams] + counts, tokens=totals.tokens, sentences=totals.sentences,
                  provenance=dict(provenance or {}), text=text)
