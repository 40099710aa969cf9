"""lm-count: count all n-grams of orders 1..N in text and write an exact counts model."""

from __future__ import annotations


import click

from lmtools.cli import common
from lmtools.errors import LmError


SMALL_INPUT_BYTES = 1 << 16  # lmtools.ngram.counting.SMALL_INPUT_BYTES (not imported: it imports numpy)
MAX_ORDER = 1000  # every order costs tables of its own: beyond this an order is a typo, not a model


@common.command("lm-count", short_help="count n-grams of orders 1..N in text")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("-n", "--order", type=int, default=3, show_default=True, metavar="N",
              help="Count n-grams of orders 1..N (1 <= N <= 1000).")
@click.option("-o", "--output", metavar="FILE",
              help="Write the counts model to FILE (atomically) instead of stdout. An -o of digits only that is "
                   "not a file is refused (lmplz's -o is the order: -n here).")
@click.option("--min-count", type=common.Limit(1), default=1, show_default=True, metavar="K",
              help="Words seen fewer than K times become <unk>.")
@click.option("--vocab-size", type=common.Limit(0), default=0, show_default=True, metavar="V",
              help="Keep only the V most frequent words (0: all); the rest become <unk>.")
@click.option("--vocab", "vocab_file", metavar="FILE",
              help="Closed vocabulary: whitespace-separated words in FILE; every other word becomes <unk>.")
@common.text_options
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
def main(files, order, output, min_count, vocab_size, vocab_file, lower, chars, encoding_errors, quiet):
    """Count all n-grams of orders 1..N in FILES (default: stdin) and write a counts model.

    Text is UTF-8, one sentence per line, tokens separated by ASCII whitespace; <s> and </s> are
    added around every line. Files may be gzip, bzip2 or xz compressed; '-' is stdin.
    The counts model is exact (integers) and goes to stdout or -o FILE.

    \b
    Examples:
      lm-count -n 3 corpus.txt > counts.lm
      cat corpus.txt | lm-count -n 5 -o counts.lm
      lm-count -n 5 -o counts.lm a.txt b.txt.gz
      lm-count -n 3 train.txt | lm-ppl test.txt
    """
    common.refuse_order_as_output(output)
    if not 1 <= order <= MAX_ORDER:
        raise common.UsageError(f"order must be 1 to {MAX_ORDER}, got -n {order}",
                                "use -n 1 or more (3 and 5 are usual)")
    if min_count < 1:
        raise common.UsageError(f"--min-count must be at least 1, got {min_count}",
                                "use --min-count 1 to keep every word")
    if vocab_size < 0:
        raise common.UsageError(f"--vocab-size must be 0 (all) or positive, got {vocab_size}",
                                "use --vocab-size 10000, say")
    ignored = common.given_options("min_count", "vocab_size") if vocab_file else []
    if ignored:
        raise common.UsageError(f"{ignored[0]} has no effect with --vocab (the vocabulary is the file's words)",
                                f"drop {ignored[0]} or --vocab")
    paths = list(files) or ["-"]
    if paths.count("-") > 1:
        raise common.UsageError("stdin ('-') given more than once", "name it once")
    # Check the output (a terminal, a missing directory, an input file) before reading any input.
    target = common.output_target(output, inputs=paths + [vocab_file])
    common.stdin_note(paths)
    size = common.input_size(paths)
    if size is None or size > SMALL_INPUT_BYTES:  # a small text is counted without the kernels
        common.compile_note("count")

    from lmtools.kernels import skip_blas

    skip_blas()  # counting never calls BLAS; saves start-up time in every pipe
    from lmtools.io.models import save_model
    from lmtools.ngram.counting import VocabOptions, count_levels

    closed = _read_vocab_file(vocab_file, lower) if vocab_file else None
    text_opts = common.make_text_options(lower, chars, encoding_errors)
    vocab_opts = VocabOptions(min_count=min_count, vocab_size=vocab_size, closed=closed)
    provenance = {"program": "lm-count", "inputs": paths,
                  "options": {"order": order, "min_count": min_count, "vocab_size": vocab_size,
                              "vocab": vocab_file, "lower": lower, "chars": chars,
                              "encoding_errors": encoding_errors}}
    stats = {"dropped": 0, "replaced": 0}

    with common.progress("counting", total=common.input_size(paths)) as bar:
        def on_chunk(chunk):
            stats["dropped"] += chunk.n_dropped
            stats["replaced"] += chunk.replaced_lines
            bar.advance(chunk.n_bytes)

        counts = count_levels(paths, order, text_opts=text_opts, vocab_opts=vocab_opts, on_chunk=on_chunk)
    if stats["dropped"]:
        common.warn(f"dropped {stats['dropped']} literal <s>/</s> tokens inside lines")
    if stats["replaced"]:
        common.warn(f"replaced invalid UTF-8 in {stats['replaced']} lines (--encoding-errors=replace)")
    provenance["tokens"] = counts.tokens
    counts.provenance = provenance
    with target.open() as out:
        save_model(counts, out)
    if not quiet and common.stderr_is_terminal():
        sizes = " ".join(str(s) for s in [len(counts.vocab)] + [len(lv[0]) for lv in counts.levels])
        common.info(f"{counts.sentences} sentences, {counts.tokens} tokens, vocabulary {len(counts.vocab)}, "
                    f"n-grams per order: {sizes}")


def _read_vocab_file(path: str, lower: bool) -> list[str]:
    from lmtools.io.text import TextOptions, read_sentences

    words: list[str] = []
    for toks in read_sentences([path], TextOptions(lower=lower)):
        words.extend(toks)
    if not words:
        raise LmError(f"{path}: the vocabulary file has no words", "list one word per line")
    return words


if __name__ == "__main__":
    main()
