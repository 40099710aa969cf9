"""lm-train --dask ADDRESS|local:N: n-gram estimation on a Dask cluster (lmtools.cluster_train), with
lm-train's model, bit for bit.

Inputs: a directory of count shards (lm-count --dask --shards: each worker reads its own partition
from the directory, which must be on a filesystem every worker sees: the scalable path), or a counts
FILE, which this process reads and splits into 2 partitions per worker (so it holds the counts).
Pass 2's results go to a private temporary directory beside -o FILE (or in -T DIR; with the model
on stdout, in $TMPDIR), which the workers must see too; the model is merged here from them.

Only click and the standard library at module level (``lm-train --help`` stays fast).
"""

from __future__ import annotations

import contextlib
import os

from lmtools.cli import common

DASK_HELP = ("Estimate on a Dask cluster: ADDRESS of a running scheduler (tcp://host:8786), or local:N to start "
             "N worker processes here. Input: a directory of count shards (lm-count --dask --shards), each worker "
             "reading its partition, or a counts FILE, read and split here. The workers write their results to "
             "a temporary directory beside -o FILE (or -T DIR) that they must all see; the model is merged here "
             "from them, the same model as without --dask. Needs pip install 'lmtools[dask]'.")
PARTS_PER_WORKER = 2  # partitions of a counts FILE per worker


def check(dask_address: str | None, paths: list[str], vocab_file, from_arpa) -> None:
    """The usage errors of --dask, before any work (exit 2)."""
    if dask_address is None:
        return
    from lmtools.cluster import MissingDask, import_distributed, parse_address

    try:
        parse_address(dask_address)
    except ValueError:
        raise common.UsageError(f"--dask {dask_address}: local:N needs N >= 1 worker processes",
                                "use --dask local:2, or a scheduler address tcp://host:8786") from None
    if from_arpa is not None:
        raise common.UsageError("--dask estimates from counts; --from-arpa reads a model", "drop one of them")
    if len(paths) != 1 or paths[0] == "-":
        raise common.UsageError("--dask estimates from one directory of count shards or one counts FILE, not "
                                + ("stdin" if "-" in paths else f"{len(paths)} inputs"),
                                "count with lm-count --dask --shards -o DIR, then lm-train --dask ADDRESS DIR")
    if vocab_file is not None:
        raise common.UsageError("--vocab (a closed vocabulary) is not applied with --dask",
                                "restrict the vocabulary when counting (lm-count --vocab FILE)")
    try:
        import_distributed()
    except MissingDask:
        raise common.UsageError("--dask needs dask and distributed", "pip install 'lmtools[dask]'") from None


def results_dir(output: str | None, temp_dir: str | None) -> str:
    """Where the workers write pass 2's results: -T DIR, else beside -o FILE, else $TMPDIR."""
    from lmtools.cli import budget_options

    if temp_dir is None and output not in (None, "-"):
        return os.path.dirname(os.path.abspath(output))
    return budget_options.check_temp_dir(temp_dir)


SHARDS_HELP = ("With --dask and -o DIR: leave the model as the cluster's partitions, each written by its worker "
               "into DIR (on a filesystem they all see) with a meta file, instead of merging them into one file "
               "here. lm-ppl, lm-score, lm-gen and lm-info open DIR as the one model (merging it in memory).")


def estimated_provenance(options: dict, source, name: str) -> dict:
    """An estimated model's provenance: lm-train's options and input ``name``, and from ``source`` (the
    counts, or their unigram part) the tokens, sentences and the counts' own provenance."""
    return {"program": "lm-train", "input": name, "options": options, "tokens": int(source.tokens),
            "sentences": int(source.sentences), "counts": dict(source.provenance)}


def check_shards(shards: bool, dask_address, output, arpa_out, trie, prune_entropy, prune_size) -> None:
    """The usage errors of --shards (exit 2)."""
    if not shards:
        return
    if dask_address is None:
        raise common.UsageError("--shards writes the partitions a cluster estimated", "add --dask ADDRESS|local:N")
    if output in (None, "-"):
        raise common.UsageError("--shards writes a directory", "name it with -o DIR")
    for given, what in ((arpa_out, "--arpa"), (trie is not None, "--trie"),
                        (prune_entropy is not None or prune_size is not None, "entropy pruning")):
        if given:
            raise common.UsageError(f"{what} needs the one merged model, not shards", f"drop --shards or {what}")


def run(dask_address: str, path: str, output, temp_dir, memory, options: dict, write, quiet: bool,
        shards_target=None) -> None:
    """Estimate the counts at ``path`` on the cluster and ``write(model, query_tables_fit, source, name)``;
    with ``shards_target`` (a DirectoryOutput) leave the model there as shards instead."""
    from lmtools import cluster
    from lmtools.cli import budget_options, train_bounded
    from lmtools.bounded import merge_block
    from lmtools.cluster_train import estimate_job, shard_unigrams, split_job
    from lmtools.errors import LmError
    from lmtools.io.countshards import is_shard_dir

    budget = budget_options.resolve_memory(memory)
    base = results_dir(output, temp_dir)
    shards = is_shard_dir(path)
    if shards:
        uni, N, P = shard_unigrams(path, options["order"])
    elif os.path.isdir(path):
        raise LmError(f"{path}: is a directory, not a directory of count shards",
                      "give a directory written by lm-count --dask --shards, or a counts FILE")
    else:
        from lmtools.io.models import load_model
        from lmtools.ngram.counts import Counts

        counts = load_model(path)
        if not isinstance(counts, Counts):
            raise LmError(f"{path}: is a {type(counts).__name__}, not n-gram counts", "give a counts model from lm-count")
    with budget_options.spill_space(base) as space, contextlib.ExitStack() as stack:
        out_dir = stack.enter_context(shards_target.open()) if shards_target is not None else None
        conn = cluster.connect(dask_address)
        try:
            workers = max(1, conn.workers())
            if not quiet and conn.dashboard:
                common.info(f"dashboard at {conn.dashboard}")
            if shards:
                sources: list = [os.path.abspath(path)] * P
            else:
                P = PARTS_PER_WORKER * workers
                uni, sources = split_job(counts, options["order"], P)
                del counts
            with common.progress(f"estimating on {workers} workers", total=2 * P, unit="") as bar:
                model = estimate_job(
                    conn, sources, uni, space, method=options["method"], interpolate=options["interpolate"],
                    discount=options["discount"], k=options["k"], alpha=options["alpha"], prune=options["prune"],
                    kenlm_compat=options["kenlm_compat"], block=merge_block(budget, P, uni.order),
                    warn=common.warn, on_step=lambda what: bar.advance(1), out_dir=out_dir)
        finally:
            conn.close()
        if out_dir is None:
            write(model, train_bounded.tables_fit(model, budget), uni, path)
            return
        from lmtools.io.modelshards import meta_record, write_meta
        from lmtools.ngram.partitioned import model_info

        spec = model.glob.spec
        provenance = estimated_provenance(options, uni, path)
        write_meta(out_dir, meta_record(
            vocab=uni.vocab, text=uni.text, order=spec.order, method=spec.method, form=spec.form, alpha=spec.alpha,
            pruned=bool(spec.thresholds), logprob1=model.glob.logprob1, info=model_info(model.glob, model.enlarged),
            provenance=provenance, arrays=model.shapes))
