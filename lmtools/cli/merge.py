"""lm-merge: sum count files (shards counted apart, in parallel or on other machines)."""

from __future__ import annotations

import click

from lmtools.cli import budget_options, common
from lmtools.errors import LmError


@common.command("lm-merge", short_help="sum count files")
# a directory: count shards
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, allow_dash=True, path_type=str))
@click.option("-o", "--output", metavar="FILE", help="Write the merged counts to FILE (atomically) instead of stdout (an -o of digits only "
                   "that is not a file is refused: write ./5 for a file named 5).")
@click.option("--text", "as_text", is_flag=True,
              help="Write the sum as text counts, one 'w1 .. wn<TAB>count' per line (as lm-count --text), "
                   "instead of a counts model.")
@budget_options.memory_options
def main(files, output, as_text, memory, temp_dir):
    """Sum the counts FILES (all of the same order) into one counts model.

    The result equals counting the concatenation of the shards' texts, in the order given, so a
    large corpus can be counted in parallel and merged exactly. A FILE is a counts model (lm-count's)
    or text counts ('w1 .. wn<TAB>count' lines, as lm-count --text and SRILM's ngram-count -write
    give them: a TAB in the first line); one FILE with --text turns a counts model into text.

    \b
    Examples:
      split -n l/4 corpus.txt shard.
      ls shard.* | xargs -P 2 -I{} sh -c 'lm-count -n 5 {} > {}.lm'
      lm-merge shard.*.lm -o counts.lm
      lm-merge --text counts.lm | sort -t "$(printf '\\t')" -k2,2nr | head
      lm-merge -S 4G -T /var/tmp shard.*.lm -o counts.lm

    Where the inputs' n-grams would not fit in -S (default 40% of physical memory) the sum is taken
    by a k-way merge of sorted runs in a private directory in -T DIR, one input read at a time, and
    written as a sorted count stream.
    """
    common.refuse_order_as_output(output, None)
    if list(files).count("-") > 1:
        raise common.UsageError("stdin ('-') given more than once", "name it once")
    budget = budget_options.resolve_memory(memory)
    tmp = budget_options.check_temp_dir(temp_dir)
    target = common.output_target(output, inputs=list(files), binary=not as_text)  # before reading any input
    common.compile_note("count")
    from lmtools.kernels import skip_blas

    skip_blas()
    from lmtools.cli import inputs
    from lmtools.io.countstext import read_text_counts, write_text_counts
    from lmtools.io.models import load_levels, save_model
    from lmtools.ngram.merge import merge_levels

    kinds = []
    for f in files:
        kind = inputs.input_kind(f)
        if kind == inputs.TEXT:
            raise LmError(f"{'<stdin>' if f == '-' else f}: neither a counts model nor text counts (no TAB in its "
                          "first line)", "count text with lm-count first")
        if kind == inputs.COUNTS:
            common.compile_note("countstext")
        kinds.append(kind)
    budget = budget_options.fit_available(budget)
    if _needs_disk(files, kinds, budget):
        return _merge_external(files, kinds, budget, tmp, target, as_text)
    parts = []
    for f, kind in zip(files, kinds):
        parts.append(load_levels(f) if kind == inputs.MODEL else read_text_counts(f, max_line=common.max_line()))
    merged = merge_levels(parts, list(files))
    _warn_vocabulary(merged, len(parts))
    merged.provenance = {"program": "lm-merge", "inputs": list(files), "tokens": merged.tokens,
                         "options": {"order": len(merged.levels) + 1, **merged.provenance.get("options", {})}}
    with target.open() as out:
        (write_text_counts if as_text else save_model)(merged, out)


def _warn_vocabulary(merged, n_inputs: int) -> None:
    shared = merged.provenance.get("options", {})
    if n_inputs > 1 and (shared.get("min_count", 1) > 1 or shared.get("vocab_size", 0) > 0):
        common.warn("the shards were counted with --min-count or --vocab-size: each chose its own vocabulary, so "
                    "the sum is not the counts of the whole text with that option (count the shards without it)")


# Bytes per n-gram of an input that says nothing of its size, from its file size: lm-count's trie
# layout takes 12 (prefix, word, count), text counts some 20 and more.
_FILE_BYTES_PER_NGRAM = 12


def _needs_disk(files, kinds, budget: int) -> bool:
    """Whether the inputs' n-grams may not fit in the budget in memory (merge_levels' tables): from the
    sizes in their headers, else from their file sizes; stdin counts as fitting (its size is unknown)."""
    import os

    from lmtools import memory
    from lmtools.ngram.external import TABLE_SHARE, test_budget

    if test_budget() is not None:
        return True
    total = 0
    for f, kind in zip(files, kinds):
        sizes = _header_sizes(f) if kind == "model" else None
        if sizes is not None:
            total += sum(sizes[1:])
        elif f != "-" and os.path.isfile(f):
            total += os.path.getsize(f) // _FILE_BYTES_PER_NGRAM
    return memory.estimate_counting_tables([total]) > budget * TABLE_SHARE


def _header_sizes(path: str) -> list[int] | None:
    """The n-grams per order a model file's header gives (a mapped file: nothing else is read)."""
    if path == "-":
        return None
    from lmtools.io.modelfile import map_model

    mapped = map_model(path)
    sizes = None if mapped is None else mapped.header.get("sizes")
    return sizes if isinstance(sizes, list) and all(type(x) is int for x in sizes) else None


def _merge_external(files, kinds, budget: int, tmp: str, target, as_text: bool) -> None:
    """lm-merge beyond the budget: lmtools.ngram.external.merge_external over the inputs' sorted
    streams (each input read when its turn comes), written as a sorted count stream."""
    import os

    from lmtools.io.countstext import read_text_counts, write_text_count_blocks
    from lmtools.io.countstream import iter_sorted_blocks, iter_sorted_counts, write_sorted_counts
    from lmtools.io.models import load_levels
    from lmtools.ngram.external import merge_external

    def source(f, kind):
        if kind == "model" and f != "-" and os.path.isdir(f):
            yield from iter_sorted_blocks(load_levels(f))
        elif kind == "model":
            yield from iter_sorted_counts(f)
        else:
            yield from iter_sorted_blocks(read_text_counts(f, max_line=common.max_line()))

    names = ["<stdin>" if f == "-" else f for f in files]
    with budget_options.spill_space(tmp) as spill:
        merged = merge_external((source(f, k) for f, k in zip(files, kinds)), budget, spill, names)
        _warn_vocabulary(merged, len(files))
        merged.provenance = {"program": "lm-merge", "inputs": list(files), "tokens": merged.tokens,
                             "options": {"order": merged.order, **merged.provenance.get("options", {})}}
        with target.open() as out:
            if as_text:
                write_text_count_blocks(merged.vocab, ((r, c) for _, r, c in merged.blocks(first=1)), out)
            else:
                write_sorted_counts(out, merged.header(), merged.blocks())


if __name__ == "__main__":
    main()
