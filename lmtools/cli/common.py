"""The shell contract every lm-* program keeps, in one place.

- data on stdout only; progress (rich, only when stderr is a terminal), warnings and statistics on stderr;
- exit 0 on success, 1 on a data/runtime error printed as one line ``lm-x: error: what; what to do``,
  2 on a usage error (click's own);
- no traceback unless --debug or LMTOOLS_DEBUG=1;
- quiet on a closed pipe (``| head``) and on Ctrl-C, SIGTERM and SIGHUP (exit 130, 143, 129), leaving no
  temporary file; -o is checked before the work (``output_target``): a regular file is written to a
  temporary file and renamed, so no half-written file is ever left, a device or fifo is written in place,
  an output that is an input is refused; a binary model is never written to a terminal.

This module imports only click and the standard library, so that ``--help`` and usage errors stay fast
(numpy and numba are imported inside the commands).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import signal
import stat
import sys
import tempfile
from typing import Callable

import click

from lmtools import __version__
from lmtools import messages
from lmtools.cli import signals
from lmtools.cli.signals import Interrupted
from lmtools.errors import LmError
from lmtools.messages import debug_enabled, info, warn  # noqa: F401  (the programs import them from here)

# the option types and shared options, which the programs read from here
from lmtools.cli.options import (  # noqa: F401, E402
    INT_MAX, Limit, Number, deprecated, deprecated_alias, given_options, make_text_options, max_line, text_options,
)

PROG = "lmtools"  # set by each command to its own name, for messages
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def is_terminal(stream) -> bool:
    """True when ``stream`` (a file object or a descriptor) is a terminal; False for anything without
    a descriptor (click's CliRunner streams) or a closed one."""
    try:
        return os.isatty(stream if isinstance(stream, int) else stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def stderr_is_terminal() -> bool:
    return is_terminal(sys.stderr)


def stdout_is_terminal() -> bool:
    return is_terminal(sys.stdout)


def stdin_is_terminal() -> bool:
    return is_terminal(sys.stdin)


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


class _ClosedStream:
    """Stands for a standard stream the program was started without (``>&-``, ``<&-``): reading or
    writing data there is one error line; asking whether it is a terminal says no."""

    closed = False
    encoding = "utf-8"
    errors = "strict"

    def __init__(self, what: str, hint: str):
        self.what, self.hint = what, hint

    def _closed(self, *args, **kw):
        raise LmError(f"standard {self.what} is closed", self.hint)

    read = read1 = readline = readlines = readinto = peek = write = writelines = _closed

    def __iter__(self):
        self._closed()

    @property
    def buffer(self):
        return self

    def fileno(self) -> int:
        raise io.UnsupportedOperation(f"standard {self.what} is closed")

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return self.what == "input"

    def writable(self) -> bool:
        return self.what == "output"

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _standard_streams() -> None:
    """A program started with a standard stream closed: its descriptor is given /dev/null, so that no
    file opened later becomes, say, descriptor 2 and takes the C libraries' messages into a model file;
    and reading or writing data on a closed stdin or stdout is one error line (see _ClosedStream)."""
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
            sys.stdin = _ClosedStream("input", "give a FILE, or redirect standard input (< FILE or a pipe)")
        elif fd == 1:
            has_o = PROG in ("lm-count", "lm-merge", "lm-train")
            sys.stdout = _ClosedStream("output", "redirect standard output (> FILE or a pipe)"
                                                 + (", or use -o FILE" if has_o else ""))


def _run_guarded(func, args, kw):
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
# Output
#
# Every program with -o makes its output target with ``output_target`` before any work (a wrong -o is
# refused at once, not after a long training) and opens it with ``Output.open()`` at the end:
# - stdout (no -o, or -o -): a binary model is refused when stdout is a terminal;
# - a new path or an existing regular file (also through symlinks: the link's target is replaced and the
#   link kept): written to a temporary ``.NAME.XXXX.part`` beside it and renamed over it only when all
#   went well, keeping the mode of the file it replaces;
# - an existing device, fifo or terminal (or the file that is already our stdout or stderr): opened and
#   written in place, never renamed over; a binary model to a terminal is refused;
# - a directory, '' or a path whose directory is missing or unwritable, and an output that is the same
#   file as one of the inputs, are refused with one line naming the user's path.
# A write error (a full disk or device) is an error (exit 1) naming the path, and a signal removes the
# temporary file (see lmtools.cli.signals).

def refuse_binary_to_terminal(stream, hint: str | None = None) -> None:
    """The one check that a binary model is never written to a terminal: LmError when ``stream`` (a
    file object or a descriptor) is one."""
    if is_terminal(stream):
        raise LmError("refusing to write a binary model to the terminal",
                      hint or "use -o FILE or pipe it into another program (lm-info, lm-train, lm-ppl)")


def _fstat(fd: int):
    try:
        return os.fstat(fd)
    except (OSError, ValueError):
        return None


def _same_file(a, b) -> bool:
    return a is not None and b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _check_not_an_input(st, name: str, inputs) -> None:
    """Refuse an output that is the file of one of ``inputs`` (by device and inode, so through symlinks
    and hard links too): writing it would destroy the input. A character device (/dev/null) may be both."""
    if st is None or stat.S_ISCHR(st.st_mode):
        return
    for p in inputs:
        if p is None or p == "":
            continue
        if p == "-":
            other = _fstat(0)
        else:
            try:
                other = os.stat(p)
            except (OSError, ValueError):
                continue
        if _same_file(st, other):
            shown = "stdin" if p == "-" else p
            raise LmError(f"{name}: the output is the input file {shown}",
                          "write the output to another file (the input would be destroyed)")


def _write_error(name: str, e: OSError) -> LmError:
    hint = ("free some disk space or write elsewhere" if e.errno in (errno.ENOSPC, errno.EDQUOT)
            else "check the path and the device")
    return LmError(f"{name}: cannot write ({e.strerror or e})", hint)


class _Stream:
    """A binary stream that reports a write error (a full disk, a full device) as one error line naming
    the user's path, not the temporary file; a closed pipe still ends the program quietly (SIGPIPE)."""

    def __init__(self, raw, name: str):
        self.raw = raw
        self.name = name

    def write(self, data) -> int:
        try:
            return self.raw.write(data)
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise
            raise _write_error(self.name, e) from None

    def flush(self) -> None:
        try:
            self.raw.flush()
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise
            raise _write_error(self.name, e) from None

    def writable(self) -> bool:
        return True


class Output:
    """An output target checked by ``output_target``; ``open()`` gives the binary stream to write."""

    def __init__(self, name: str, kind: str, *, real: str | None = None, fd: int | None = None,
                 keep: os.stat_result | None = None):
        self.name = name  # the user's path ('-' for stdout), for messages
        self.kind = kind  # "stdout", "fd" (our stderr), "device" (opened at check), "fifo", "file"
        self.real = real  # the path to open or replace (symlinks resolved)
        self.fd = fd
        self.keep = keep  # stat of the regular file being replaced: its mode (and owner) are kept

    @property
    def is_stdout(self) -> bool:
        return self.kind == "stdout"

    @contextlib.contextmanager
    def open(self):
        """The binary stream of this output; a file is renamed into place only when the block ends well."""
        if self.kind == "stdout":
            sys.stdout.flush()
            out = _Stream(sys.stdout.buffer, "stdout" if self.name == "-" else self.name)
            yield out
            out.flush()
            return
        if self.kind == "file":
            with self._atomic() as f:
                yield f
            return
        if self.kind == "fd":
            fd = os.dup(self.fd)
        elif self.fd is not None:  # a device, opened when checked
            fd, self.fd = self.fd, None
        else:  # a fifo: opening blocks until a reader comes, as for any writer of a named pipe
            try:
                fd = os.open(self.real, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError as e:
                raise LmError(f"{self.name}: cannot open ({e.strerror})", "check the path") from None
        raw = os.fdopen(fd, "wb")
        out = _Stream(raw, self.name)
        try:
            yield out
            out.flush()
        finally:
            with contextlib.suppress(OSError):
                raw.close()  # already flushed; an error here was reported by the flush

    @contextlib.contextmanager
    def _atomic(self):
        directory, base = os.path.split(self.real)
        with signals.signals_held():
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=directory)
            except OSError as e:
                raise LmError(f"{self.name}: cannot write ({e.strerror})",
                              "check that the directory exists and is writable") from None
            signals.TEMP_FILES.add(tmp)
        try:
            raw = os.fdopen(fd, "wb")
            with raw:
                out = _Stream(raw, self.name)
                yield out
                out.flush()
            if self.keep is not None:  # replacing a file: keep its permissions (and owner, when we may)
                os.chmod(tmp, stat.S_IMODE(self.keep.st_mode))
                if hasattr(os, "geteuid") and os.geteuid() == 0:
                    with contextlib.suppress(OSError):
                        os.chown(tmp, self.keep.st_uid, self.keep.st_gid)
            else:  # mkstemp creates the file private (0600); give it the permissions of any new file
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
            if signals.signalled() is not None:  # a signal whose exception was swallowed: never replace the output
                raise Interrupted(signals.signalled())
            try:
                os.replace(tmp, self.real)
            except OSError as e:
                raise LmError(f"{self.name}: cannot write ({e.strerror})", "check the path and its directory") \
                    from None
            signals.TEMP_FILES.discard(tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            signals.TEMP_FILES.discard(tmp)
            raise


def output_target(path: str | None, *, inputs=(), binary: bool = True, tty_hint: str | None = None) -> Output:
    """Check the -o PATH of a program before its work; refuse what cannot or must not be written.

    ``inputs``: every file the program reads (text or counts files, --valid, --vocab, '-' for stdin);
    an output that is one of them is refused. ``binary``: a model, refused on a terminal.
    """
    if path is None or path == "-":
        if isinstance(sys.stdout, _ClosedStream):
            sys.stdout.write(b"")  # the error line, before the work
        if binary:
            refuse_binary_to_terminal(sys.stdout, tty_hint)
        st = _fstat(1)
        if st is not None and stat.S_ISREG(st.st_mode):  # `lm-count a.txt >> a.txt`
            _check_not_an_input(st, "stdout", inputs)
        return Output("-", "stdout")
    name = path
    if path == "":
        raise LmError("-o '' is an empty file name", "name the output file, or use -o - for stdout")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except (OSError, ValueError) as e:
        raise LmError(f"{name}: cannot write ({getattr(e, 'strerror', None) or e})", "check the path") from None
    if st is not None:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            raise LmError(f"{name}: is a directory", "give a file name, e.g. -o " + os.path.join(path, "model.lm"))
        _check_not_an_input(st, name, inputs)
        if _same_file(st, _fstat(1)):  # /dev/stdout, /proc/self/fd/1, or the file stdout already writes
            if binary:
                refuse_binary_to_terminal(sys.stdout, tty_hint)
            return Output(name, "stdout")
        if _same_file(st, _fstat(2)):
            if binary:
                refuse_binary_to_terminal(sys.stderr, tty_hint)
            return Output(name, "fd", fd=2)
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            # A device is written in place: open it now (a write-protected one fails before the work).
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError as e:
                raise LmError(f"{name}: cannot write ({e.strerror})", "check the device and its permissions") \
                    from None
            if binary:
                try:
                    refuse_binary_to_terminal(fd, tty_hint)
                except LmError:
                    os.close(fd)
                    raise
            return Output(name, "device", real=path, fd=fd)
        if stat.S_ISFIFO(mode):
            if not os.access(path, os.W_OK):
                raise LmError(f"{name}: cannot write (Permission denied)", "check the permissions of the fifo")
            return Output(name, "fifo", real=path)
        if stat.S_ISSOCK(mode):
            raise LmError(f"{name}: is a socket, which cannot be opened as a file", "give a file, fifo or device")
        if not stat.S_ISREG(mode):
            raise LmError(f"{name}: is not a regular file", "give a file name")
    elif path.endswith(("/", os.sep)) or os.path.basename(path) in (".", ".."):
        raise LmError(f"{name}: names a directory, not a file", "give a file name, e.g. -o out.lm")
    real = os.path.realpath(path)  # a symlink (even a dangling one): its target is written, the link kept
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        shown = os.path.dirname(path) or "."
        raise LmError(f"{name}: cannot write: the directory {shown} does not exist",
                      "create it first (mkdir -p) or write elsewhere")
    # Probe the directory now: an unwritable one (permissions, a read-only file system) fails before the work.
    try:
        with signals.signals_held():
            fd, probe = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".part", dir=directory)
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise LmError(f"{name}: cannot write ({e.strerror})",
                      f"check that the directory {os.path.dirname(path) or '.'} is writable") from None
    return Output(name, "file", real=real, keep=st)


@contextlib.contextmanager
def binary_output(path: str | None, inputs=()):
    """A binary stream for a model: stdout (refused when it is a terminal) or FILE (see ``output_target``).
    Programs check their target before the work with ``output_target`` and open it at the end instead."""
    with output_target(path, inputs=inputs).open() as f:
        yield f


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "wb"):
    """Write ``path`` through ``output_target`` (a regular file is replaced atomically), as a binary stream."""
    if mode != "wb":
        raise ValueError("atomic_file writes binary streams only")
    with output_target(path, binary=False).open() as f:
        yield f


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
