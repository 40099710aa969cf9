"""lm-merge: sum count files (shards counted apart, in parallel or on other machines)."""

from __future__ import annotations

import click

from lmtools.cli import common


@common.command("lm-merge", short_help="sum count files")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("-o", "--output", metavar="FILE", help="Write the merged counts to FILE (atomically) instead of stdout (an -o of digits only "
                   "that is not a file is refused: write ./5 for a file named 5).")
def main(files, output):
    """Sum the counts models FILES (all of the same order) into one counts model.

    The result equals counting the concatenation of the shards' texts, in the order given, so a
    large corpus can be counted in parallel and merged exactly.

    \b
    Examples:
      split -n l/4 corpus.txt shard.
      ls shard.* | xargs -P 2 -I{} sh -c 'lm-count -n 5 {} > {}.lm'
      lm-merge shard.*.lm -o counts.lm
    """
    common.refuse_order_as_output(output, None)
    if list(files).count("-") > 1:
        raise common.UsageError("stdin ('-') given more than once", "name it once")
    target = common.output_target(output, inputs=list(files))  # before reading any input
    common.compile_note("count")
    from lmtools.kernels import skip_blas

    skip_blas()
    from lmtools.io.models import load_levels, save_model
    from lmtools.ngram.merge import merge_levels

    parts = [load_levels(f) for f in files]
    merged = merge_levels(parts, list(files))
    shared = merged.provenance.get("options", {})
    if len(parts) > 1 and (shared.get("min_count", 1) > 1 or shared.get("vocab_size", 0) > 0):
        common.warn("the shards were counted with --min-count or --vocab-size: each chose its own vocabulary, so "
                    "the sum is not the counts of the whole text with that option (count the shards without it)")
    merged.provenance = {"program": "lm-merge", "inputs": list(files), "tokens": merged.tokens,
                         "options": {"order": len(merged.levels) + 1, **merged.provenance.get("options", {})}}
    with target.open() as out:
        save_model(merged, out)


if __name__ == "__main__":
    main()
