"""Counting text, shared by lm-count and lm-train (which counts a text corpus itself, as lmplz does):
the vocabulary options (--min-count, --vocab-size), their checks, and the counting run with its
warnings and provenance. One definition, so that ``lm-train -n 5 corpus.txt`` and
``lm-count -n 5 corpus.txt | lm-train`` take the same options and give the same counts.

Only click is imported at module level (``--help`` stays fast).
"""

from __future__ import annotations

from typing import Callable

import click

from lmtools.cli import common
from lmtools.errors import LmError

MAX_ORDER = 1000  # every order costs tables of its own: beyond this an order is a typo, not a model
SMALL_INPUT_BYTES = 1 << 16  # lmtools.ngram.counting.SMALL_INPUT_BYTES (not imported: it imports numpy)

MIN_COUNT_HELP = "Words seen fewer than K times become <unk>."
VOCAB_SIZE_HELP = "Keep only the V most frequent words (0: all); the rest become <unk>."


def vocabulary_options(func: Callable, option: Callable = click.option, *, min_count_help: str = MIN_COUNT_HELP,
                       vocab_size_help: str = VOCAB_SIZE_HELP) -> Callable:
    """--min-count K and --vocab-size V (parameters ``min_count``, ``vocab_size``); ``option``: the
    decorator factory (an option group's ``option`` puts them in that group); the helps may add what
    another use of the same option (lm-train --method ffnn) does."""
    func = option("--vocab-size", type=common.Limit(0), default=0, show_default=True, metavar="V",
                  help=vocab_size_help)(func)
    func = option("--min-count", type=common.Limit(1), default=1, show_default=True, metavar="K",
                  help=min_count_help)(func)
    return func


def check_order(order: int) -> None:
    """-n: 1..MAX_ORDER (a usage error otherwise)."""
    if not 1 <= order <= MAX_ORDER:
        raise common.UsageError(f"order must be 1 to {MAX_ORDER}, got -n {order}",
                                "use -n 1 or more (3 and 5 are usual)")


def check_vocabulary(min_count: int, vocab_size: int) -> None:
    if min_count < 1:
        raise common.UsageError(f"--min-count must be at least 1, got {min_count}",
                                "use --min-count 1 to keep every word")
    if vocab_size < 0:
        raise common.UsageError(f"--vocab-size must be 0 (all) or positive, got {vocab_size}",
                                "use --vocab-size 10000, say")


def count_corpus(paths: list[str], order: int, *, min_count: int = 1, vocab_size: int = 0,
                 vocab_file: str | None = None, lower: bool = False, chars: bool = False,
                 encoding_errors: str = "strict", memory: int | None = None, spill=None):
    """Count text FILES as lm-count does: the ``Levels`` with lm-count's provenance (the same record
    whichever program counts, so that a model trained in one process equals the pipe's), warnings on
    stderr as lm-count gives them. With a budget (``memory`` bytes and ``spill``, a SpillDir from
    budget_options.spill_space): the same ``Levels`` where the counts fitted, else the counts on disk
    (lmtools.ngram.external.SortedCounts, runs in ``spill``)."""
    size = common.input_size(paths)
    if size is None or size > SMALL_INPUT_BYTES:  # a small text is counted without the kernels
        common.compile_note("count")

    from lmtools.kernels import skip_blas

    skip_blas()  # counting never calls BLAS; saves start-up time in every pipe
    from lmtools.ngram.counting import VocabOptions, count_levels

    closed = read_vocab_file(vocab_file, lower) if vocab_file else None
    text_opts = common.make_text_options(lower, chars, encoding_errors)
    vocab_opts = VocabOptions(min_count=min_count, vocab_size=vocab_size, closed=closed)
    provenance = {"program": "lm-count", "inputs": paths,
                  "options": {"order": order, "min_count": min_count, "vocab_size": vocab_size,
                              "vocab": vocab_file, "lower": lower, "chars": chars,
                              "encoding_errors": encoding_errors}}
    stats = {"dropped": 0, "replaced": 0}

    with common.progress("counting", total=size) as bar:
        def on_chunk(chunk):
            stats["dropped"] += chunk.n_dropped
            stats["replaced"] += chunk.replaced_lines
            bar.advance(chunk.n_bytes)

        if memory is None:
            counts = count_levels(paths, order, text_opts=text_opts, vocab_opts=vocab_opts, on_chunk=on_chunk)
        else:
            from lmtools.ngram.external import count_levels_budget

            counts = count_levels_budget(paths, order, memory, spill, text_opts=text_opts, vocab_opts=vocab_opts,
                                         on_chunk=on_chunk)
    if stats["dropped"]:
        common.warn(f"dropped {stats['dropped']} literal <s>/</s> tokens inside lines")
    if stats["replaced"]:
        common.warn(f"replaced invalid UTF-8 in {stats['replaced']} lines (--encoding-errors=replace)")
    provenance["tokens"] = counts.tokens
    counts.provenance = provenance
    return counts


def summary(counts) -> str:
    """lm-count's summary line of a ``Levels`` (or of counts on disk: ``SortedCounts``)."""
    per_order = counts.sizes() if hasattr(counts, "runs") else [len(counts.vocab)] + [len(lv[0]) for lv in counts.levels]
    sizes = " ".join(str(s) for s in per_order)
    return (f"{counts.sentences} sentences, {counts.tokens} tokens, vocabulary {len(counts.vocab)}, "
            f"n-grams per order: {sizes}")


def read_vocab_file(path: str, lower: bool = False) -> list[str]:
    """The words of a --vocab FILE (whitespace-separated; lower-cased with --lower)."""
    from lmtools.io.text import TextOptions, read_sentences

    words: list[str] = []
    for toks in read_sentences([path], TextOptions(lower=lower)):
        words.extend(toks)
    if not words:
        raise LmError(f"{path}: the vocabulary file has no words", "list one word per line")
    return words
