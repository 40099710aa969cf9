"""The shell contract every lm-* program keeps, in one place.

- data on stdout only; progress (rich, only when stderr is a terminal), warnings and statistics on stderr;
- exit 0 on success, 1 on a data/runtime error printed as one line ``lm-x: error: what; what to do``,
  2 on a usage error (click's own);
- no traceback unless --debug or LMTOOLS_DEBUG=1;
- quiet on a closed pipe (``| head``) and on Ctrl-C, SIGTERM and SIGHUP (exit 130, 143, 129), leaving no
  temporary file; -o is checked before the work (``output_target``): a regular file is written to a
  temporary file and renamed, so no half-written file is ever left, a device or fifo is written in place,
  an output that is an input is refused; a binary model is never written to a terminal.

The signal handling lives in ``lmtools.cli.signals``, the standard streams and output targets in
``lmtools.cli.output``, the option types and shared options in ``lmtools.cli.options``; this module
keeps the command decorator and the guarded run, and re-exports what the programs use.

These modules import only click and the standard library, so that ``--help`` and usage errors stay fast
(numpy and numba are imported inside the commands).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import sys
from typing import Callable

import click

from lmtools import __version__
from lmtools import messages
from lmtools.cli import signals
from lmtools.cli.signals import Interrupted  # noqa: F401  (raised by a signal; read from here too)
from lmtools.cli.output import (  # noqa: F401  (the programs read them from here)
    ClosedStream, Output, atomic_file, binary_output, is_terminal, output_target, refuse_binary_to_terminal,
    stderr_is_terminal, stdin_is_terminal, stdout_is_terminal,
)
from lmtools.errors import LmError
from lmtools.messages import debug_enabled, info, warn  # noqa: F401  (the programs import them from here)

# the option types and shared options, which the programs read from here
from lmtools.cli.options import (  # noqa: F401, E402
    INT_MAX, Limit, Number, deprecated, deprecated_alias, given_options, make_text_options, max_line, text_options,
)

PROG = "lmtools"  # set by each command to its own name, for messages
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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
            ctx = super().make_context(info_name, args, parent=parent, **extra)
            _check_int_sizes(self, ctx)
            return ctx
        except click.UsageError as e:
            if isinstance(e, UsageError):
                raise
            err = UsageError(e.format_message().rstrip("."), f"see {self.name} --help", e.ctx)
            err.prog = self.name
            raise err from None


def _show_version(ctx: click.Context, param, value) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"{ctx.command.name} (lmtools) {__version__}")
        ctx.exit()


def _show_help(ctx: click.Context, param, value) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(ctx.get_help(), color=ctx.color)
        ctx.exit()


def _check_int_sizes(command: click.Command, ctx: click.Context) -> None:
    """Refuse an integer option beyond 64 bits (every option, whatever its type says)."""
    for p in command.params:
        value = ctx.params.get(p.name)
        for x in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(x, int) and not isinstance(x, bool) and not -INT_MAX <= x <= INT_MAX:
                raise UsageError(f"{p.opts[0]} {x} is too large (at most {INT_MAX})", f"see {command.name} --help",
                                 ctx)


def command(name: str, grouped: bool = False, **kwargs) -> Callable:
    """Decorator for a program's main function: a click command with --debug, --version, -h/--help,
    and the error/exit/signal contract around its body. These general options come last in --help;
    ``grouped``: the program's options are in option groups (click-option-group), and these go in a
    last group "General"."""

    def decorate(func: Callable) -> click.Command:
        @functools.wraps(func)
        def body(*args, debug: bool = False, **kw):
            global PROG
            PROG = name
            messages.set_program(name)  # for warnings from library code (lmtools.messages.warn)
            if debug:
                os.environ["LMTOOLS_DEBUG"] = "1"
            return _run_guarded(func, args, kw)

        settings = dict(CONTEXT_SETTINGS)
        option = click.option
        before = len(getattr(body, "__click_params__", []))
        if grouped:
            from click_option_group import OptionGroup

            option = OptionGroup("General (every method)" if name == "lm-train" else "General").option
            settings["help_option_names"] = []  # -h/--help is one of the group's options instead
            body = option("-h", "--help", is_flag=True, expose_value=False, is_eager=True, callback=_show_help,
                          help="Show this message and exit.")(body)
        body = option("-V", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
                      help="Show the version and exit.")(body)
        body = option("--debug", is_flag=True, help="Show the full traceback of an error (also LMTOOLS_DEBUG=1).")(body)
        added = len(body.__click_params__) - before
        kwargs.setdefault("cls", _Command)
        cmd = click.command(name, context_settings=settings, **kwargs)(body)
        cmd.params = cmd.params[added:] + cmd.params[:added]  # the general options after the program's own
        return cmd

    return decorate


def _signal_exit(signum: int | None = None) -> None:
    """After a signal: exit with its status and no message, whatever else went wrong since."""
    signum = signals.signalled() if signals.signalled() is not None else signum
    if signum is not None:
        if signum == signal.SIGINT and stderr_is_terminal():
            with contextlib.suppress(OSError):
                os.write(2, b"\n")  # end the line where the terminal echoed ^C
        signals.exit_now(128 + signum)


def _standard_streams() -> None:
    """A program started with a standard stream closed: its descriptor is given /dev/null, so that no
    file opened later becomes, say, descriptor 2 and takes the C libraries' messages into a model file;
    and reading or writing data on a closed stdin or stdout is one error line (see ClosedStream)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        except OSError:
            pass
        if fd == 0:
            sys.stdin = ClosedStream("input", "give a FILE, or redirect standard input (< FILE or a pipe)")
        elif fd == 1:
            has_o = PROG in ("lm-count", "lm-merge", "lm-train", "lm-prune")
            sys.stdout = ClosedStream("output", "redirect standard output (> FILE or a pipe)"
                                                 + (", or use -o FILE" if has_o else ""))


_AT_EXIT: list = []  # what this process registered with atexit (once, however often a test runs a program)


def _freeze_objects_at_exit() -> None:
    """At exit, leave every object out of the interpreter's last garbage collection (gc.freeze).

    That collection walks every object still alive: with numba and its loaded kernels, about 0.2 s
    here (0.02 s with numpy alone), at the end of every run and on the critical path of every pipe.
    Nothing of lmtools waits for it: outputs are closed (and renamed into place) before exit, and
    atexit's handlers (temporary files, weakref finalizers) run before it all the same."""
    import gc

    gc.freeze()


def _run_guarded(func, args, kw):
    if _freeze_objects_at_exit not in _AT_EXIT:
        import atexit

        atexit.register(_freeze_objects_at_exit)  # registered first: runs after the other handlers
        _AT_EXIT.append(_freeze_objects_at_exit)
    # A closed pipe ends the program quietly, as for any Unix filter (`lm-score ... | head`).
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _standard_streams()  # first: nothing may take the number of a closed standard descriptor
    saved = signals.install_signal_handlers()
    signals.set_guarded(True)
    try:
        result = func(*args, **kw)
        _signal_exit()  # a signal whose exception was swallowed still ends the program with its status
        return result
    except LmError as e:
        if debug_enabled():
            raise
        _signal_exit()
        click.echo(f"{PROG}: error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt as e:
        if debug_enabled():  # the traceback, and still the signal's status (click would make it 1)
            import traceback

            traceback.print_exc()
        _signal_exit(getattr(e, "signum", signal.SIGINT))
    except MemoryError:
        if debug_enabled():
            raise
        _signal_exit()
        click.echo(f"{PROG}: error: out of memory; use a smaller order, a smaller vocabulary or less data", err=True)
        sys.exit(1)
    except OSError as e:
        if debug_enabled():
            raise
        _signal_exit()
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
        _signal_exit()
        click.echo(f"{PROG}: error: internal error ({type(e).__name__}: {e}); rerun with --debug and report it",
                   err=True)
        sys.exit(1)
    finally:
        signals.set_guarded(False)
        # In its own process the program ends now; inside another one (tests), leave it as it was.
        signals.restore_signal_handlers(saved)


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
# One meaning per option: old spellings, and habits of other toolkits that would mean something else here


def refuse_order_as_output(output: str | None, order_flag: str | None = "-n") -> None:
    """``-o 5`` is the order in KenLM's lmplz but the output file here: an -o that is only digits and is
    not an existing file is refused (``-o ./5`` writes a file named 5). ``order_flag``: the program's order
    option (None: it has none, the order is its inputs')."""
    if output is not None and output.isdigit() and output.isascii() and not os.path.lexists(output):
        file = f"write -o ./{output} for a file named {output}"
        raise UsageError(f"-o {output} would write a file named {output}",
                         f"did you mean {order_flag} {output}? ({file})" if order_flag else
                         f"-o is the output here, and the order is the inputs' own (lm-count -n); {file}")


# The first run of a program compiles its numba kernels (up to half a minute, silent): say so once.


def _kernel_cache_dirs() -> list[str]:
    """Where numba keeps the compiled kernels of lmtools/kernels (see numba.core.caching's locators)."""
    import hashlib

    kernels = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")
    sub = "kernels_" + hashlib.sha1(kernels.encode()).hexdigest()
    if os.environ.get("NUMBA_CACHE_DIR"):
        return [os.path.join(os.environ["NUMBA_CACHE_DIR"], sub)]
    user = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [os.path.join(kernels, "__pycache__"), os.path.join(user, "numba", sub)]


def kernels_cached(*modules: str) -> bool:
    """True when numba's cache holds a compiled kernel of one of the kernel ``modules`` (e.g. "query"):
    one directory listing, numba not imported."""
    for d in _kernel_cache_dirs():
        try:
            names = os.listdir(d)
        except OSError:
            continue
        if any(n.endswith(".nbi") and n.split(".", 1)[0] in modules for n in names):
            return True
    return False


def compile_note(*modules: str) -> None:
    """On a terminal, before the work: one line saying that the kernels of ``modules`` are compiled now
    (the first run only; nothing when their cache is there, or when stderr is a log or a pipe)."""
    if stderr_is_terminal() and not kernels_cached(*modules):
        info("compiling kernels on first use (about 30 s, once)")


def stdin_note(paths: list[str]) -> None:
    """Tell a user at a terminal that we are waiting for text on stdin (instead of seeming to hang)."""
    if (not paths or "-" in paths) and is_terminal(0):
        click.echo(f"{PROG}: reading text from the terminal; end with Ctrl-D (see --help)", err=True)
