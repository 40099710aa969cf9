"""The option types and shared options of the lm-* programs: 64-bit integer limits, finite numbers,
the options given on the command line, deprecated spellings, and the text-reading options
(--lower, --chars, --encoding-errors, --max-line). Imports only click and the standard library."""

from __future__ import annotations

import math
from typing import Callable

import click

from lmtools.messages import warn

INT_MAX = 2**63 - 1  # an integer option holds a 64-bit signed integer (numpy, numba and the model file)


class Limit(click.IntRange):
    """An integer option that is an upper limit (at most N epochs, words, ...): a value beyond 64 bits
    means no limit and is taken as INT_MAX, which no count reaches; below ``min`` it is refused."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lstrip("+").isdigit() and int(value) > INT_MAX:
            value = INT_MAX
        elif isinstance(value, int) and value > INT_MAX:
            value = INT_MAX
        return super().convert(value, param, ctx)


class Number(click.FloatRange):
    """A float option that must be a finite number (nan and inf are refused), optionally in a range:
    ``type=common.Number(0, min_open=True)`` for x > 0."""

    name = "number"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


def given_options(*names: str) -> list[str]:
    """The flags (as written in --help) of those parameter ``names`` given on the command line of the
    running command: for refusing an option that its other options make meaningless."""
    ctx = click.get_current_context()
    return [p.opts[0] for p in ctx.command.params if p.name in names
            and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]


# ----------------------------------------------------------------------------------------------
# Old spellings


def deprecated(old: str, new: str) -> None:
    """One warning line for an old spelling that still works: ``OLD is deprecated; use NEW``."""
    warn(f"{old} is deprecated; use {new}")


def deprecated_alias(*decls: str, dest: str, **kwargs) -> Callable:
    """A hidden option for an old spelling (listed in the man page as deprecated); the program reads it
    under ``dest`` and warns with ``deprecated`` when it is given."""
    return click.option(*decls, dest, hidden=True, default=None, **kwargs)


# ----------------------------------------------------------------------------------------------
# Shared options


MAX_LINE = 64 << 20  # --max-line: bytes in one line of text, at most (lmtools.io.text.DEFAULT_MAX_LINE)


def _max_line(ctx, param, value):
    """Parse --max-line (bytes, or with a K/M/G suffix) and keep it for make_text_options."""
    global MAX_LINE
    if value is None:
        return None
    import re

    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(value))
    n = int(m.group(1)) << (10 * " KMGT".index(m.group(2).upper() or " ")) if m else 0
    if n < 1:
        raise click.BadParameter(f"{value!r} is not a size in bytes (e.g. 1000000, 64M, 1G)", ctx, param)
    MAX_LINE = n
    return n


def max_line() -> int:
    """The --max-line of this run (the default when not given)."""
    return MAX_LINE


def text_options(func: Callable, option: Callable = click.option) -> Callable:
    """--lower, --chars, --encoding-errors and --max-line: how text is read (every program that reads text);
    ``option``: the decorator factory (an option group's ``option`` puts them in that group)."""
    func = option("--max-line", metavar="BYTES", expose_value=False, callback=_max_line,
                  help="Refuse a line longer than BYTES (suffixes K, M, G; default 64M): a line is held in "
                       "memory whole, about twice its size.")(func)
    func = option("--encoding-errors", type=click.Choice(["strict", "replace"]), default="strict",
                  show_default=True,
                  help="On invalid UTF-8: stop with an error naming the line (strict), or replace the bad "
                       "bytes with U+FFFD and go on, counting the lines (replace).")(func)
    func = option("--chars", is_flag=True,
                  help="Character tokens: every character is a token, runs of whitespace become <sp>.")(func)
    func = option("--lower", is_flag=True, help="Lower-case the text before tokenizing.")(func)
    return func


def make_text_options(lower: bool, chars: bool, encoding_errors: str):
    from lmtools.io.text import TextOptions

    return TextOptions(lower=lower, chars=chars, encoding_errors=encoding_errors, max_line=MAX_LINE)
