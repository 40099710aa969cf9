"""The shell contract every lm-* program keeps, in one place.

- data on stdout only; progress (rich, only when stderr is a terminal), warnings and statistics on stderr;
- exit 0 on success, 1 on a data/runtime error printed as one line ``lm-x: error: what; what to do``,
  2 on a usage error (click's own);
- no traceback unless --debug or LMTOOLS_DEBUG=1;
- quiet on a closed pipe (``| head``) and on Ctrl-C; an output file given with -o is written to a
  temporary file and renamed, so no half-written file is ever left; a binary model is never written
  to a terminal.

This module imports only click and the standard library, so that ``--help`` and usage errors stay fast
(numpy and numba are imported inside the commands).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import tempfile
from typing import Callable

import click

from lmtools import __version__
from lmtools import messages
from lmtools.errors import LmError

PROG = "lmtools"  # set by each command to its own name, for messages
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def debug_enabled() -> bool:
    return os.environ.get("LMTOOLS_DEBUG", "") not in ("", "0")


def warn(message: str) -> None:
    """One warning line on stderr: ``lm-x: warning: message``."""
    click.echo(f"{PROG}: warning: {message}", err=True)


def info(message: str) -> None:
    """One informational line on stderr (statistics, discounts)."""
    click.echo(f"{PROG}: {message}", err=True)


def stderr_is_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def stdout_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False


class UsageError(click.UsageError):
    """An impossible option value or combination of options: one line ``lm-x: error: what; what to do``
    on stderr and exit 2, raised before any work (data and runtime errors are LmError, exit 1)."""

    def __init__(self, message: str, hint: str | None = None, ctx: click.Context | None = None):
        super().__init__(f"{message}; {hint}" if hint else message, ctx)

    def show(self, file=None) -> None:
        name = getattr(self, "prog", None) or (self.ctx.command.name if self.ctx is not None else None) or PROG
        click.echo(f"{name}: error: {self.format_message()}", file=file, err=file is None)


class _Command(click.Command):
    """A click command whose own usage errors (unknown option, a value out of its range) are one line
    like every other error, with a pointer to --help instead of click's usage block."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            if isinstance(e, UsageError):
                raise
            err = UsageError(e.format_message().rstrip("."), f"see {self.name} --help", e.ctx)
            err.prog = self.name
            raise err from None


class Number(click.FloatRange):
    """A float option that must be a finite number (nan and inf are refused), optionally in a range:
    ``type=common.Number(0, min_open=True)`` for x > 0."""

    name = "number"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


def command(name: str, **kwargs) -> Callable:
    """Decorator for a program's main function: a click command with --debug, --version, -h/--help,
    and the error/exit/signal contract around its body."""

    def decorate(func: Callable) -> click.Command:
        @functools.wraps(func)
        def body(*args, debug: bool = False, **kw):
            global PROG
            PROG = name
            messages.set_program(name)  # for warnings from library code (lmtools.messages.warn)
            if debug:
                os.environ["LMTOOLS_DEBUG"] = "1"
            return _run_guarded(func, args, kw)

        body = click.option("--debug", is_flag=True, help="Show the full traceback of an error (also LMTOOLS_DEBUG=1).")(body)
        body = click.version_option(__version__, "-V", "--version", prog_name=name,
                                    message="%(prog)s (lmtools) %(version)s")(body)
        kwargs.setdefault("cls", _Command)
        return click.command(name, context_settings=CONTEXT_SETTINGS, **kwargs)(body)

    return decorate


def _run_guarded(func, args, kw):
    # A closed pipe ends the program quietly, as for any Unix filter (`lm-score ... | head`).
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return func(*args, **kw)
    except LmError as e:
        if debug_enabled():
            raise
        click.echo(f"{PROG}: error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        sys.stderr.write("\n")
        sys.exit(130)
    except MemoryError:
        if debug_enabled():
            raise
        click.echo(f"{PROG}: error: out of memory; use a smaller order, a smaller vocabulary or less data", err=True)
        sys.exit(1)
    except OSError as e:
        if debug_enabled():
            raise
        import errno

        if e.errno == errno.EPIPE:
            sys.exit(141)
        where = f" {e.filename}:" if e.filename else ""
        click.echo(f"{PROG}: error:{where} {e.strerror or e}; check the path and free disk space", err=True)
        sys.exit(1)
    except (click.exceptions.Exit, click.exceptions.ClickException, SystemExit):
        raise
    except Exception as e:  # a bug: say so in one line, and how to see more
        if debug_enabled():
            raise
        click.echo(f"{PROG}: error: internal error ({type(e).__name__}: {e}); rerun with --debug and report it",
                   err=True)
        sys.exit(1)


# ----------------------------------------------------------------------------------------------
# Output


@contextlib.contextmanager
def binary_output(path: str | None):
    """A binary stream for a model: stdout (refused when it is a terminal) or FILE written atomically.

    On any error or Ctrl-C the temporary file is removed and FILE is left as it was.
    """
    if path in (None, "-"):
        if stdout_is_terminal():
            raise LmError("refusing to write a binary model to the terminal",
                          "use -o FILE or pipe it into another program (lm-info, lm-train, lm-ppl)")
        out = sys.stdout.buffer
        yield out
        out.flush()
        return
    with atomic_file(path, "wb") as f:
        yield f


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "wb"):
    """Write to a temporary file beside ``path``; rename it over ``path`` only when all went well."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=directory)
    except OSError as e:
        raise LmError(f"{path}: cannot write ({e.strerror})",
                      "check that the directory exists and is writable") from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
        # mkstemp creates the file private (0600); give it the permissions of any new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------------------
# Progress


class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, **kw) -> None:
        pass


@contextlib.contextmanager
def progress(description: str, total: float | None = None, unit: str = "B"):
    """A rich progress bar on stderr when it is a terminal; otherwise nothing at all."""
    if not stderr_is_terminal():
        yield _NoProgress()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

    columns = [TextColumn(f"{PROG}: {{task.description}}"), BarColumn(), TaskProgressColumn()]
    if unit == "B":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)

        class _Bar:
            def advance(self, n: int = 1) -> None:
                bar.advance(task, n)

            def update(self, **kw) -> None:
                bar.update(task, **kw)

        yield _Bar()


def input_size(paths: list[str]) -> int | None:
    """Total bytes of the inputs when all are regular files (for a progress total), else None."""
    total = 0
    for p in paths or ["-"]:
        if p == "-":
            return None
        try:
            total += os.stat(p).st_size
        except OSError:
            return None
    return total


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


def text_options(func: Callable) -> Callable:
    """--lower, --chars, --encoding-errors and --max-line: how text is read (every program that reads text)."""
    func = click.option("--max-line", metavar="BYTES", expose_value=False, callback=_max_line,
                        help="Refuse a line longer than BYTES (suffixes K, M, G; default 64M): a line is held in "
                             "memory whole, about twice its size.")(func)
    func = click.option("--encoding-errors", type=click.Choice(["strict", "replace"]), default="strict",
                        show_default=True,
                        help="On invalid UTF-8: stop with an error naming the line (strict), or replace the bad "
                             "bytes with U+FFFD and go on, counting the lines (replace).")(func)
    func = click.option("--chars", is_flag=True,
                        help="Character tokens: every character is a token, runs of whitespace become <sp>.")(func)
    func = click.option("--lower", is_flag=True, help="Lower-case the text before tokenizing.")(func)
    return func


def make_text_options(lower: bool, chars: bool, encoding_errors: str):
    from lmtools.io.text import TextOptions

    return TextOptions(lower=lower, chars=chars, encoding_errors=encoding_errors, max_line=MAX_LINE)


def stdin_note(paths: list[str]) -> None:
    """Tell a user at a terminal that we are waiting for text on stdin (instead of seeming to hang)."""
    if (not paths or "-" in paths) and os.isatty(0):
        click.echo(f"{PROG}: reading text from the terminal; end with Ctrl-D (see --help)", err=True)
