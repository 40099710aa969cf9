"""lm-train in a memory budget (-S/--memory, -T/--temp-dir): when the counts would not fit, they are
estimated one partition at a time with the partitions on disk (lmtools.bounded), and the model is
written from disk; when they fit, lm-train works in memory as it always has (the same model: the
partitioned estimation is equal to it, bit for bit).

When the budget applies (documented in lm-train(1)):
- a counts model given by path: its header says how many n-grams it holds, so the budget (-S, default
  that of budget_options) decides between memory and disk;
- a counts model on stdin (``lm-count | lm-train``): with -S given, the stream is read a block at a
  time and the budget decides; without -S it is read whole, as before;
- text FILES and text counts are read as before (lm-count -S counts text in a budget).
"""

from __future__ import annotations

import contextlib

from lmtools.cli import budget_options, common, inputs
from lmtools.errors import LmError


def budget_source(paths: list[str], memory: str | None) -> tuple[tuple[int, bool] | None, list | None]:
    """((budget in bytes, whether -S was given) when the input is one counts model whose estimation the
    budget may move to disk, else None; the input kinds when they were looked at, for the reader that
    follows: stdin can be looked at once)."""
    import os

    forced = bool(os.environ.get(budget_options.TEST_BUDGET_ENV, "").strip())
    explicit = memory is not None or forced
    budget = budget_options.resolve_memory(memory)  # an impossible -S is refused whatever the input
    if paths == ["-"] and not explicit:
        return None, None  # a counts model on stdin is read whole (text on stdin is read by read_ngram_input)
    if paths.count("-") > 1:
        return None, None  # (refused by the reader)
    kinds = [inputs.input_kind(p) for p in paths]
    if len(paths) != 1 or kinds[0] != inputs.MODEL or os.path.isdir(paths[0]):
        return None, kinds
    return (budget, explicit), kinds


@contextlib.contextmanager
def text_spill(kinds: list | None, memory: str | None, temp_dir: str | None):
    """(budget, spill space) for counting text FILES here in a budget (as lm-count -S counts them: the
    default budget too), removed at the end; (None, None) for any other input."""
    if not kinds or kinds[0] != inputs.TEXT:
        yield None, None
        return
    budget = budget_options.resolve_memory(memory)
    with budget_options.spill_space(budget_options.check_temp_dir(temp_dir)) as space:
        yield budget, space


def on_disk(obj) -> bool:
    """Counts that counting in the budget left on disk (lmtools.ngram.external.SortedCounts)."""
    return hasattr(obj, "iter_sorted") and hasattr(obj, "runs")


def estimate_on_disk(counts, space, budget: int, options: dict, quiet: bool):
    """(model, whether its query tables fit in the budget) from counts on disk (SortedCounts), estimated
    in the budget: partitions on disk, or in memory when the counts turn out to fit."""
    stream = counts.iter_sorted()
    head = next(stream)
    return _estimate_stream(head, stream, space, budget, options, quiet)


def header_sizes(path: str) -> tuple[str | None, list[int] | None]:
    """(kind, n-grams per order) from a model file's header when it can be read without reading the
    file (a regular uncompressed file), else (None, None)."""
    from lmtools.io.modelfile import map_model

    if path == "-":
        return None, None
    try:
        mapped = map_model(path)
    except LmError:
        return None, None  # the reader that follows gives the error
    if mapped is None:
        return None, None
    h = mapped.header
    sizes = h.get("sizes")
    return h.get("kind"), ([int(s) for s in sizes] if isinstance(sizes, list) else None)


def in_memory_bytes(sizes: list[int], order: int | None) -> int:
    """What estimating counts of these sizes in memory takes (the whole estimation and the query tables)."""
    from lmtools.bounded import BYTES_PER_NGRAM

    N = len(sizes) if order is None else min(order, len(sizes))
    return BYTES_PER_NGRAM * sum(sizes[:N])


def estimate_in_budget(path: str, budget: int, explicit: bool, temp_dir: str | None, estimate, options: dict,
                       write, quiet: bool) -> bool:
    """Estimate from the counts at ``path`` within ``budget`` and write the model (``write(model,
    query_tables_fit)``), or return False when the counts fit in memory and were not read (the caller
    goes on as before). ``estimate(counts)``: the in-memory estimation, for counts that turn out to
    fit once read from a pipe. ``write(model, query_tables_fit, source, name)``: ``source`` has the
    counts' provenance, tokens and sentences; ``name`` is the input's."""
    kind, sizes = header_sizes(path)
    if kind != "counts" and not (path == "-" and explicit):
        return False  # an n-gram model, an ARPA file, a compressed file: read as before
    if sizes is not None and in_memory_bytes(sizes, options.get("order")) <= budget:
        return False
    temp = budget_options.check_temp_dir(temp_dir)
    from lmtools.io.countstream import iter_sorted_counts

    stream = iter_sorted_counts(path)
    head = next(stream)
    if in_memory_bytes(head.sizes, options.get("order")) <= budget:
        counts = _gather(head, stream)
        write(estimate(counts), True, counts, path)
        return True
    with budget_options.spill_space(temp) as space:
        model, fits = _estimate_stream(head, stream, space, budget, options, quiet)
        write(model, fits, head, path)
    return True


def _estimate_stream(head, stream, space, budget: int, options: dict, quiet: bool):
    if options.get("vocab") is not None:
        raise LmError("--vocab (a closed vocabulary) is not applied in a memory budget",
                      "restrict the vocabulary when counting (lm-count --vocab FILE), or give a larger -S")
    note = (lambda msg: None) if quiet else (lambda msg: common.info(msg))
    note(f"estimating on disk in {space.base} (-S {budget / 2**20:.0f} MiB; the counts need about "
         f"{in_memory_bytes(head.sizes, options.get('order')) / 2**20:.0f} MiB in memory)")
    from lmtools.bounded import estimate_bounded

    model = estimate_bounded(head, stream, space, budget, method=options["method"], order=options["order"],
                             interpolate=options["interpolate"], discount=options["discount"],
                             k=options["k"], alpha=options["alpha"], prune=options["prune"],
                             kenlm_compat=options["kenlm_compat"], warn=common.warn, progress=note)
    return model, tables_fit(model, budget)


def tables_fit(model, budget: int) -> bool:
    """Whether the query tables of a model estimated on disk can be built in ``budget`` bytes."""
    from lmtools import memory

    return memory.estimate_query(model.sizes()) + sum(model_bytes(model)) <= budget


def model_bytes(model) -> list[int]:
    return [int(a.nbytes) for arrays in (model.ngrams, model.logprob, model.backoff) for a in arrays]


def _gather(head, stream):
    """The Counts of a sorted count stream read whole (it fits in the budget)."""
    import numpy as np

    from lmtools.ngram.counts import Counts

    rows: dict = {}
    counts: dict = {}
    for n, r, c in stream:
        rows.setdefault(n, []).append(r)
        counts.setdefault(n, []).append(c)
    ngrams = [np.ascontiguousarray(np.concatenate(rows[n]), dtype=np.int32) for n in range(1, head.order + 1)]
    cnts = [np.concatenate(counts[n]).astype(np.int64) for n in range(1, head.order + 1)]
    return Counts(vocab=list(head.vocab), ngrams=ngrams, counts=cnts, tokens=int(head.tokens),
                  sentences=int(head.sentences), provenance=dict(head.provenance or {}), text=head.text)


def materialize(model):
    """The model with every array in memory (arrays on disk read whole)."""
    for arrays in (model.ngrams, model.logprob, model.backoff):
        for i, a in enumerate(arrays):
            if hasattr(a, "chunks"):
                arrays[i] = a.load()
    return model
