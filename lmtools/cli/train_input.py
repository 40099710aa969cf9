"""lm-train's input for the n-gram methods: a model file (counts model, n-gram model, ARPA), text
counts, or text FILES to count first, as lmplz does in one process (the rule telling them apart:
lmtools.cli.inputs). Text FILES are counted exactly as ``lm-count`` with the same options counts
them, so that ``lm-train -n 5 corpus.txt`` gives the bytes of ``lm-count -n 5 corpus.txt | lm-train``.
"""

from __future__ import annotations

from lmtools.cli import common, count_options, inputs
from lmtools.errors import LmError

DEFAULT_ORDER = 3  # lm-count's default -n, so that lm-train FILE counts what lm-count FILE would
# The options of reading and counting text: refused with counts or a model (already counted).
TEXT_ONLY = (("min_count", "--min-count"), ("vocab_size", "--vocab-size"), ("lower", "--lower"),
             ("chars", "--chars"), ("encoding_errors", "--encoding-errors"), ("max_line", "--max-line"))


def read_ngram_input(paths: list[str], order: int | None, *, lower: bool, chars: bool, encoding_errors: str,
                     min_count: int, vocab_size: int, kinds: list | None = None, memory: int | None = None,
                     spill=None):
    """(the input object: ``Counts``, ``NGramModel``; whether it was counted here from text FILES).

    With text FILES, ``order`` (default 3) is the order counted; with counts or a model the caller
    applies it (orders 1..N of the counts). ``kinds``: the inputs' kinds when the caller looked at
    them already (stdin can be looked at once). ``memory`` and ``spill``: count text in that budget
    (lm-count -S): counts that did not fit come back on disk (lmtools.ngram.external.SortedCounts)."""
    if paths.count("-") > 1:
        raise common.UsageError("stdin ('-') given more than once", "name it once")
    if kinds is None:
        kinds = [inputs.input_kind(p) for p in paths]
    names = ["<stdin>" if p == "-" else p for p in paths]
    for name, kind in zip(names[1:], kinds[1:]):
        if kind != kinds[0]:
            raise LmError(f"{names[0]} is {inputs.KIND_NAMES[kinds[0]]}, {name} {inputs.KIND_NAMES[kind]}",
                          "give text FILES to count, or one counts input")
    if kinds[0] != inputs.TEXT:
        if len(paths) > 1:
            raise common.UsageError(f"{len(paths)} {'counts' if kinds[0] == inputs.COUNTS else 'model'} inputs "
                                    "given; the n-gram methods read one counts input",
                                    "merge count files with lm-merge first (several text FILES are counted "
                                    "together)")
        given = common.given_options(*(name for name, _ in TEXT_ONLY))
        if given:  # the input decides: a data error
            raise LmError(f"{given[0]} applies to text FILES (counted here), not to {inputs.KIND_NAMES[kinds[0]]} "
                          f"({names[0]})", f"drop {given[0]}, or give it to lm-count")
    if kinds[0] == inputs.TEXT:
        n = DEFAULT_ORDER if order is None else order
        count_options.check_order(n)
        count_options.check_vocabulary(min_count, vocab_size)
        common.stdin_note(paths)
        levels = count_options.count_corpus(paths, n, min_count=min_count, vocab_size=vocab_size,
                                            lower=lower, chars=chars, encoding_errors=encoding_errors,
                                            memory=memory, spill=spill)
        if not hasattr(levels, "levels"):  # on disk (SortedCounts): the record lm-count's file would hold
            from lmtools import __version__

            levels.provenance = dict(levels.provenance)
            levels.provenance.setdefault("version", __version__)
            return levels, True
        return _as_stored(levels), True
    if kinds[0] == inputs.COUNTS:
        from lmtools.io.countstext import read_text_counts

        common.compile_note("countstext")
        return read_text_counts(paths[0], max_line=common.max_line()).to_counts(), False
    from lmtools.io.models import load_model

    return load_model(paths[0]), False


def refuse_text_options(what: str) -> None:
    """A usage error for an option of reading text given with ``what`` (an input that is never text)."""
    given = common.given_options(*(name for name, _ in TEXT_ONLY))
    if given:
        raise common.UsageError(f"{given[0]} applies to text FILES, not to {what}", f"drop {given[0]}")


def _as_stored(levels):
    """The ``Counts`` that lm-train reads back from lm-count's file: sorted, with the record the file
    holds (the provenance with lmtools' version, the text kind)."""
    from lmtools import __version__

    provenance = dict(levels.provenance)
    provenance.setdefault("version", __version__)
    counts = levels.to_counts(provenance)
    counts.text = levels.text
    return counts
