"""lm-merge: sum count files (shards counted apart, in parallel or on other machines)."""

from __future__ import annotations

import click

from lmtools.cli import common
from lmtools.errors import LmError


@common.command("lm-merge", short_help="sum count files")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, allow_dash=True, path_type=str))  # a directory: count shards
@click.option("-o", "--output", metavar="FILE", help="Write the merged counts to FILE (atomically) instead of stdout (an -o of digits only "
                   "that is not a file is refused: write ./5 for a file named 5).")
@click.option("--text", "as_text", is_flag=True,
              help="Write the sum as text counts, one 'w1 .. wn<TAB>count' per line (as lm-count --text), "
                   "instead of a counts model.")
def main(files, output, as_text):
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
    """
    common.refuse_order_as_output(output, None)
    if list(files).count("-") > 1:
        raise common.UsageError("stdin ('-') given more than once", "name it once")
    target = common.output_target(output, inputs=list(files), binary=not as_text)  # before reading any input
    common.compile_note("count")
    from lmtools.kernels import skip_blas

    skip_blas()
    from lmtools.cli import inputs
    from lmtools.io.countstext import read_text_counts, write_text_counts
    from lmtools.io.models import load_levels, save_model
    from lmtools.ngram.merge import merge_levels

    parts = []
    for f in files:
        kind = inputs.input_kind(f)
        if kind == inputs.TEXT:
            raise LmError(f"{'<stdin>' if f == '-' else f}: neither a counts model nor text counts (no TAB in its "
                          "first line)", "count text with lm-count first")
        if kind == inputs.COUNTS:
            common.compile_note("countstext")
        parts.append(load_levels(f) if kind == inputs.MODEL else read_text_counts(f, max_line=common.max_line()))
    merged = merge_levels(parts, list(files))
    shared = merged.provenance.get("options", {})
    if len(parts) > 1 and (shared.get("min_count", 1) > 1 or shared.get("vocab_size", 0) > 0):
        common.warn("the shards were counted with --min-count or --vocab-size: each chose its own vocabulary, so "
                    "the sum is not the counts of the whole text with that option (count the shards without it)")
    merged.provenance = {"program": "lm-merge", "inputs": list(files), "tokens": merged.tokens,
                         "options": {"order": len(merged.levels) + 1, **merged.provenance.get("options", {})}}
    with target.open() as out:
        (write_text_counts if as_text else save_model)(merged, out)


if __name__ == "__main__":
    main()
