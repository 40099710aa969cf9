"""lm-count: count all n-grams of orders 1..N in text and write an exact counts model."""

from __future__ import annotations

import click

from lmtools.cli import budget_options, common, count_dask, count_options

SMALL_INPUT_BYTES = count_options.SMALL_INPUT_BYTES  # below it the text is counted without the kernels
MAX_ORDER = count_options.MAX_ORDER


@common.command("lm-count", short_help="count n-grams of orders 1..N in text")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("-n", "--order", type=int, default=3, show_default=True, metavar="N",
              help="Count n-grams of orders 1..N (1 <= N <= 1000).")
@click.option("-o", "--output", metavar="FILE",
              help="Write the counts model to FILE (atomically) instead of stdout. An -o of digits only that is "
                   "not a file is refused (lmplz's -o is the order: -n here).")
@count_options.vocabulary_options
@click.option("--vocab", "vocab_file", metavar="FILE",
              help="Closed vocabulary: whitespace-separated words in FILE; every other word becomes <unk>.")
@click.option("--text", "as_text", is_flag=True,
              help="Write the counts as text, one 'w1 .. wn<TAB>count' per line (SRILM's count format), "
                   "instead of a counts model; lm-train and lm-merge read it back.")
@budget_options.memory_options
@common.text_options
@count_dask.dask_options
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
def main(files, order, output, min_count, vocab_size, vocab_file, as_text, memory, temp_dir, lower, chars,
         encoding_errors, dask_address, shards, range_size, partitions, quiet):
    """Count all n-grams of orders 1..N in FILES (default: stdin) and write a counts model.

    Text is UTF-8, one sentence per line, tokens separated by ASCII whitespace; <s> and </s> are
    added around every line. Files may be gzip, bzip2 or xz compressed; '-' is stdin.
    The counts model is exact (integers) and goes to stdout or -o FILE; with --text the same counts
    are written as text (orders 1..N in turn, every vocabulary word first).

    \b
    Examples:
      lm-count -n 3 corpus.txt > counts.lm
      cat corpus.txt | lm-count -n 5 -o counts.lm
      lm-count -n 5 -o counts.lm a.txt b.txt.gz
      lm-count -n 3 train.txt | lm-ppl test.txt
      lm-count -n 3 --text corpus.txt | sort -t "$(printf '\\t')" -k2,2nr | head
      lm-count -n 5 -S 2G -T /var/tmp big.txt | lm-train -o kn5.lm
      lm-count -n 5 --dask local:4 -o counts.lm 'corpus/*.txt'
      lm-count -n 5 --dask tcp://head:8786 --shards -o counts.d /shared/corpus/*.txt

    Counting keeps its tables within -S (default 40% of physical memory); beyond it, sorted runs
    go to a private directory in -T DIR and are merged at the end, and the counts are written as a
    sorted count stream (the same counts; every program reads both forms).
    """
    common.refuse_order_as_output(output)
    count_options.check_order(order)
    count_options.check_vocabulary(min_count, vocab_size)
    ignored = common.given_options("min_count", "vocab_size") if vocab_file else []
    if ignored:
        raise common.UsageError(f"{ignored[0]} has no effect with --vocab (the vocabulary is the file's words)",
                                f"drop {ignored[0]} or --vocab")
    count_dask.check(dask_address, shards, range_size, partitions, files, output, as_text)
    if dask_address is not None:
        return count_dask.run(dask_address=dask_address, files=files, order=order, output=output, shards=shards,
                              range_size=range_size, partitions=partitions, min_count=min_count,
                              vocab_size=vocab_size, vocab_file=vocab_file, as_text=as_text, lower=lower,
                              chars=chars, encoding_errors=encoding_errors, quiet=quiet)
    paths = list(files) or ["-"]
    if paths.count("-") > 1:
        raise common.UsageError("stdin ('-') given more than once", "name it once")
    # Check the output (a terminal, a missing directory, an input file) before reading any input.
    budget = budget_options.resolve_memory(memory)
    tmp = budget_options.check_temp_dir(temp_dir)
    target = common.output_target(output, inputs=paths + [vocab_file], binary=not as_text)
    common.stdin_note(paths)
    with budget_options.spill_space(tmp) as spill:
        counts = count_options.count_corpus(paths, order, min_count=min_count, vocab_size=vocab_size,
                                            vocab_file=vocab_file, lower=lower, chars=chars,
                                            encoding_errors=encoding_errors,
                                            memory=budget_options.fit_available(budget), spill=spill)
        spilled = hasattr(counts, "runs")  # counted with runs on disk: lmtools.ngram.external.SortedCounts
        with target.open() as out:
            if as_text:
                from lmtools.io.countstext import write_text_count_blocks, write_text_counts

                if spilled:  # a block at a time from the merged runs
                    write_text_count_blocks(counts.vocab, ((r, c) for _, r, c in counts.blocks(first=1)), out)
                else:
                    write_text_counts(counts, out)
            elif spilled:
                from lmtools.io.countstream import write_sorted_counts

                write_sorted_counts(out, counts.header(), counts.blocks())
            else:
                from lmtools.io.models import save_model

                save_model(counts, out)
        if spilled and common.debug_enabled():  # (what the measurements in man/lm-count.1 read)
            from lmtools.memory import human

            common.info(f"spilled the tables {counts.spills} times (and once at the end) to {tmp}; "
                        f"{human(spill.bytes_written)} written, {human(spill.peak_bytes)} on disk at most")
    if not quiet and common.stderr_is_terminal():
        common.info(count_options.summary(counts))


if __name__ == "__main__":
    main()
