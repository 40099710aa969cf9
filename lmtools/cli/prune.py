"""lm-prune: entropy-based pruning of an n-gram model (Stolcke 1998), to a threshold or a size."""

from __future__ import annotations

import click

from lmtools.cli import common
from lmtools.cli.output import write_model_to


@common.command("lm-prune", short_help="prune an n-gram model by relative entropy (Stolcke)")
@click.argument("model", default="-", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("--threshold", "threshold", type=common.Number(0), metavar="T",
              help="Remove the n-grams whose removal raises the model's perplexity by a relative amount below T "
                   "(e.g. 1e-8; 0 removes nothing).")
@click.option("--size", "size", type=click.IntRange(1), metavar="N",
              help="Prune to at most N n-grams in all orders (at least the unigram count): the smallest "
                   "threshold that fits.")
@click.option("--arpa", "arpa_out", is_flag=True, help="Write ARPA text instead of an lmtools model file.")
@click.option("-o", "--output", metavar="FILE",
              help="Write the model to FILE (atomically) instead of stdout; with --arpa a FILE ending in .gz is "
                   "gzipped.")
@click.option("-q", "--quiet", is_flag=True, help="No summary of the n-grams kept on stderr.")
def main(model, threshold, size, arpa_out, output, quiet):
    """Prune the n-gram MODEL (default: stdin) by relative entropy: drop the n-grams whose removal
    changes the model least, and recompute the backoff weights so that every distribution still sums
    to one (Stolcke 1998; SRILM's ngram -prune). Give exactly one of --threshold and --size.

    MODEL is an lmtools n-gram model (lm-train) or an ARPA file (plain or compressed); the pruned
    model goes to stdout or -o FILE, as an lmtools model file or, with --arpa, as ARPA text. Unigrams
    are never removed, nor an n-gram that is the context of a kept longer one. On stderr, the n-grams
    kept per order.

    \b
    Examples:
      lm-prune --threshold 1e-8 kn5.lm -o kn5.p8.lm
      lm-prune --size 1000000 --arpa kn5.lm -o kn5.1M.arpa.gz
      lm-count -n 4 train.txt | lm-train | lm-prune --threshold 1e-7 | lm-ppl -m - test.txt
    """
    if (threshold is None) == (size is None):
        raise common.UsageError("give exactly one of --threshold T and --size N"
                                + (" (both given)" if threshold is not None else ""),
                                "e.g. lm-prune --threshold 1e-8 MODEL")
    if model == "-" and _stdin_is_terminal():
        raise common.UsageError("no MODEL given and standard input is a terminal",
                                "give a model FILE, or pipe one in (lm-train ... | lm-prune)")
    target = common.output_target(output, inputs=[model], binary=not arpa_out,
                                  tty_hint="use -o FILE, --arpa, or pipe it into another program (lm-ppl, lm-info)")
    from lmtools.kernels import skip_blas

    skip_blas()  # no kernel here calls np.dot: numba need not probe scipy's BLAS (0.1 s)
    from lmtools.errors import LmError
    from lmtools.io.models import load_model
    from lmtools.ngram.model import NGramModel

    obj = load_model(model, warn=common.warn)
    name = "<stdin>" if model == "-" else model
    if type(obj).__name__ == "TrieModel":  # quantized, without the full n-gram arrays pruning reads
        raise LmError(f"{name}: holds the compact trie form only (lm-train --trie), which cannot be pruned",
                      "prune the full model, then convert it (lm-train PRUNED.lm --trie -o SMALL.lm)")
    if not isinstance(obj, NGramModel):
        kind = "n-gram counts" if type(obj).__name__ in ("Counts", "Levels") else "a neural model"
        raise LmError(f"{name}: holds {kind}, not an n-gram model",
                      "estimate a model first (lm-train), then prune it" if kind == "n-gram counts"
                      else "only n-gram models can be pruned")
    if size is not None and size < obj.sizes()[0]:
        raise common.UsageError(f"--size {size} is below the model's {obj.sizes()[0]} unigrams, which are never "
                                "pruned", f"give --size {obj.sizes()[0]} or more")
    common.compile_note("prune")
    pruned = entropy_prune(obj, threshold, size, quiet)
    pruned.provenance = {"program": "lm-prune", "input": model,
                         "options": {"threshold": threshold, "size": size}, "model": dict(obj.provenance)}
    write_model_to(pruned, target, arpa_out)


def _stdin_is_terminal() -> bool:
    return common.stdin_is_terminal()


def entropy_prune(model, threshold: float | None, size: int | None, quiet: bool):
    """The pruned model, with the n-grams kept per order on stderr (lm-prune and lm-train)."""
    from lmtools.ngram.prune import prune_entropy

    pruned = prune_entropy(model, threshold=threshold, size=size)
    if not quiet:
        before, after = model.sizes(), pruned.sizes()
        used = pruned.info["entropy_prune"]["threshold"]
        common.info(f"entropy pruning (threshold {used:.6g}): kept "
                    + " ".join(f"{a}/{b}" for a, b in zip(after, before))
                    + f" n-grams per order, {sum(after)} of {sum(before)}")
    return pruned


if __name__ == "__main__":
    main()
