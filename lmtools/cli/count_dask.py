"""lm-count --dask ADDRESS|local:N: counting on a Dask cluster (lmtools.cluster), with lm-count's numbers.

The counts equal lm-count's on the concatenated inputs, n-gram for n-gram and id for id. They go to
one counts file (stdout or -o FILE: the client sums the partitions, so it holds all the counts at
the end) or, with --shards, to a directory of count shards (-o DIR: lmtools.io.countshards) whose
partition files the workers write (the client receives their sizes and writes the meta file).

Only click and the standard library at module level (``lm-count --help`` stays fast).
"""

from __future__ import annotations

import contextlib

import re

import click

from lmtools.cli import common

DASK_HELP = ("Count on a Dask cluster: ADDRESS of a running scheduler (tcp://host:8786), or local:N to start "
             "N worker processes here. Inputs are FILES, globs or fsspec URLs every worker can read (not stdin); "
             "large files are cut into byte ranges at line boundaries. Needs pip install 'lmtools[dask]'.")
SHARDS_HELP = ("With --dask: write a directory of count shards to -o DIR (one sorted counts file per partition "
               "and a meta file; lm-train, lm-merge, lm-ppl and lm-info read it as one counts model) instead of "
               "one counts file. The workers write the partitions' files: DIR must be on a filesystem they all see.")
RANGE_HELP = ("With --dask: bytes of text per task (suffixes K, M, G); a file is cut at line boundaries. "
              "Default: input/(2 x workers), between 1M and 64M.")
PARTITIONS_HELP = ("With --dask: the number of partitions the n-grams are hashed into (the shards). "
                   "Default: 2 per worker, and one per 128M of input beyond that.")


def dask_options(func):
    func = click.option("--partitions", type=common.Limit(1), default=None, metavar="P", help=PARTITIONS_HELP)(func)
    func = click.option("--range-size", metavar="SIZE", default=None, help=RANGE_HELP)(func)
    func = click.option("--shards", is_flag=True, help=SHARDS_HELP)(func)
    func = click.option("--dask", "dask_address", metavar="ADDRESS|local:N", default=None, help=DASK_HELP)(func)
    return func


def parse_size(text: str, option: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
    n = int(m.group(1)) << (10 * " KMGT".index(m.group(2).upper() or " ")) if m else 0
    if n < 1:
        raise common.UsageError(f"{option} {text!r} is not a size in bytes", "e.g. 64M, 1G or 1000000")
    return n


def check(dask_address, shards: bool, range_size, partitions, files, output, as_text) -> None:
    """The usage errors of the --dask options, before any work (exit 2)."""
    if dask_address is None:
        given = common.given_options("shards", "range_size", "partitions")
        if given:
            raise common.UsageError(f"{given[0]} applies to counting on a cluster", f"add --dask ADDRESS or drop {given[0]}")
        return
    from lmtools.cluster import parse_address

    try:
        parse_address(dask_address)
    except ValueError:
        raise common.UsageError(f"--dask {dask_address}: local:N needs N >= 1 worker processes",
                                "use --dask local:2, or a scheduler address tcp://host:8786") from None
    if not files or "-" in files:
        raise common.UsageError("--dask reads FILES that every worker opens, not stdin", "name the input files")
    budget = [o for o in common.given_options("memory", "temp_dir")]
    if budget:  # the budget of counting in this process; a cluster's workers have their own limits
        raise common.UsageError(f"{budget[0]} applies to counting in this process, not on a cluster",
                                f"drop {budget[0]} (each dask worker has its own --memory-limit)")
    if range_size is not None:
        parse_size(range_size, "--range-size")
    if shards and as_text:
        raise common.UsageError("--shards writes count shards, not text", "drop --text or --shards")
    if shards and (output is None or output == "-"):
        raise common.UsageError("--shards writes a directory", "name it with -o DIR")
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise common.UsageError("--dask needs dask and distributed", "pip install 'lmtools[dask]'") from None


def run(*, dask_address: str, files, order: int, output, shards: bool, range_size, partitions, min_count: int,
        vocab_size: int, vocab_file, as_text: bool, lower: bool, chars: bool, encoding_errors: str, quiet: bool) -> None:
    from lmtools.io.textranges import expand_inputs

    paths = expand_inputs(list(files))
    if shards:
        from lmtools.io.countshards import is_shard_dir

        from lmtools.cli.output import directory_target

        target = directory_target(output, is_shard_dir, "count shards")
    else:
        target = common.output_target(output, inputs=paths + [vocab_file], binary=not as_text)
    from lmtools.kernels import skip_blas

    skip_blas()
    from lmtools import cluster
    from lmtools.cli.count_options import read_vocab_file
    from lmtools.io.textranges import input_bytes
    from lmtools.ngram.counting import VocabOptions

    closed = read_vocab_file(vocab_file, lower) if vocab_file else None
    text_opts = common.make_text_options(lower, chars, encoding_errors)
    vocab_opts = VocabOptions(min_count=min_count, vocab_size=vocab_size, closed=closed)
    provenance = {"program": "lm-count", "inputs": paths,
                  "options": {"order": order, "min_count": min_count, "vocab_size": vocab_size,
                              "vocab": vocab_file, "lower": lower, "chars": chars,
                              "encoding_errors": encoding_errors}}
    total = input_bytes(paths)
    with contextlib.ExitStack() as stack:
        # count shards are written by the workers, into the directory that becomes -o DIR when all is well
        shard_dir = stack.enter_context(target.open()) if shards else None
        conn = cluster.connect(dask_address)
        stack.callback(conn.close)
        totals, sizes, n_ranges, parts = _count(conn, paths, total, order, range_size, partitions,
                                                text_opts, vocab_opts, provenance, target, shard_dir, as_text, quiet)
    if not quiet and common.stderr_is_terminal():
        common.info(f"{totals.sentences} sentences, {totals.tokens} tokens, vocabulary {len(totals.vocab)}, "
                    f"n-grams per order: {' '.join(str(s) for s in sizes)}, {n_ranges} ranges, {parts} partitions")


def _count(conn, paths, total, order, range_size, partitions, text_opts, vocab_opts, provenance,
           target, shard_dir, as_text, quiet):
    """The job on the cluster of ``conn``: the counts written to ``target`` (one file), or the shards'
    meta file written into ``shard_dir`` (the workers write the partitions' files)."""
    from lmtools import cluster
    from lmtools.io.textranges import plan_ranges

    workers = max(1, conn.workers())
    if not quiet and conn.dashboard:
        common.info(f"dashboard at {conn.dashboard}")
    step = parse_size(range_size, "--range-size") if range_size is not None else \
        cluster.default_range_bytes(total, workers)
    parts = partitions or cluster.default_partitions(total, workers)
    ranges = plan_ranges(paths, step)
    with common.progress(f"counting on {workers} workers", total=sum(r.size for r in ranges)) as bar:
        totals, finished = cluster.count_job(conn, ranges, order, text_opts=text_opts, vocab_opts=vocab_opts,
                                             parts=parts, on_range=lambda r: bar.advance(r.size),
                                             shard_dir=shard_dir)
    if totals.dropped:
        common.warn(f"dropped {totals.dropped} literal <s>/</s> tokens inside lines")
    if totals.replaced:
        common.warn(f"replaced invalid UTF-8 in {totals.replaced} lines (--encoding-errors=replace)")
    provenance["tokens"] = totals.tokens
    with common.progress("summing partitions", total=parts, unit="") as bar:
        if shard_dir is not None:
            sizes = _write_meta(target, shard_dir, totals, finished, order, parts, text_opts.kind(), provenance,
                                bar)
        else:
            counts = cluster.collect_counts(totals, finished, order, parts, text=text_opts.kind(),
                                            provenance=provenance, on_partition=lambda p: bar.advance(1))
    if shard_dir is None:
        with target.open() as out:
            if as_text:
                from lmtools.io.countstext import write_text_counts

                write_text_counts(counts, out)
            else:
                from lmtools.io.models import save_model

                save_model(counts, out)
        sizes = counts.sizes()
    return totals, sizes, len(ranges), parts


def _write_meta(target, tmp, totals, finished, order, parts, text, provenance, bar) -> list[int]:
    """The shards' meta file, once every worker has written its partition's file into ``tmp``."""
    import os

    from lmtools.errors import LmError
    from lmtools.io.countshards import meta_record, partition_file, write_meta

    sizes: list = [None] * parts
    for p, done in finished:
        path = os.path.join(tmp, partition_file(p))
        try:
            here = os.path.getsize(path)
        except OSError:
            here = None
        if here != done["bytes"]:  # written on a worker's own disk: -o DIR is not shared with it
            raise LmError(f"{target.name}: a worker's count shard {partition_file(p)} is not in the directory here",
                          "with --shards, -o DIR must be on a filesystem every worker sees (the workers write it)")
        sizes[p] = done["sizes"]
        bar.advance(1)
    meta = meta_record(vocab=totals.vocab, unigrams=totals.unigrams, tokens=totals.tokens,
                       sentences=totals.sentences, order=order, sizes=sizes, text=text, provenance=provenance)
    with open(os.path.join(tmp, "meta.json"), "wb") as f:
        write_meta(f, meta)
    return [len(totals.vocab)] + [sum(s[k] for s in sizes) for k in range(order - 1)]
