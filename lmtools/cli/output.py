"""Where a program writes: the standard streams (a terminal or not, closed or not) and the -o output
targets.

Every program with -o makes its output target with ``output_target`` before any work (a wrong -o is
refused at once, not after a long training) and opens it with ``Output.open()`` at the end:
- stdout (no -o, or -o -): a binary model is refused when stdout is a terminal;
- a new path or an existing regular file (also through symlinks: the link's target is replaced and the
  link kept): written to a temporary ``.NAME.XXXX.part`` beside it and renamed over it only when all
  went well, keeping the mode of the file it replaces;
- an existing device, fifo or terminal (or the file that is already our stdout or stderr): opened and
  written in place, never renamed over; a binary model to a terminal is refused;
- a directory, '' or a path whose directory is missing or unwritable, and an output that is the same
  file as one of the inputs, are refused with one line naming the user's path.
A write error (a full disk or device) is an error (exit 1) naming the path, and a signal removes the
temporary file (see lmtools.cli.signals).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys

from lmtools.cli import signals
from lmtools.cli.signals import Interrupted
from lmtools.errors import LmError


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


class ClosedStream:
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

    # A model writer may write some arrays at their offsets (io.modelwrite._put_group), into a regular file.
    def fileno(self) -> int:
        return self.raw.fileno()

    def tell(self) -> int:
        return self.raw.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def write_error(self, e: OSError) -> Exception:
        """The error to raise for a failed write at an offset (``e``; a regular file: never a pipe)."""
        return _write_error(self.name, e)


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
        import tempfile  # here: a run that writes to stdout does without it

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
        if isinstance(sys.stdout, ClosedStream):
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
    import tempfile

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


def write_model_to(model, target: "Output", arpa_out: bool, query_tables: bool = True, trie=None) -> None:
    """A model to its output target: an lmtools model file (with the n-gram query tables unless
    ``query_tables`` is False; in the compact trie form alone with ``trie`` = (q, b)), or ARPA text,
    gzipped for a FILE ending in .gz."""
    if not arpa_out:
        from lmtools.io.models import save_model

        with target.open() as out:
            save_model(model, out, query_tables, trie=trie)
        return
    from lmtools.io.arpa import write_arpa

    with target.open() as raw:
        if target.name.endswith(".gz"):
            import gzip

            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
                write_arpa(model, gz)
        else:
            write_arpa(model, raw)


class DirectoryOutput:
    """A directory output (lm-count --shards -o DIR), checked by ``directory_target`` before the work;
    ``open()`` gives a temporary directory ``.NAME.XXXX.part`` beside DIR to fill, renamed to DIR only
    when the block ends well (an older DIR that ``replaceable`` accepted is replaced then), removed on
    an error or a signal: no half-written directory is ever left at DIR."""

    def __init__(self, name: str, real: str, replace: bool):
        self.name, self.real, self.replace = name, real, replace

    @contextlib.contextmanager
    def open(self):
        import shutil
        import tempfile

        directory, base = os.path.split(self.real)
        with signals.signals_held():
            try:
                tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".part", dir=directory)
            except OSError as e:
                raise LmError(f"{self.name}: cannot write ({e.strerror})",
                              "check that the directory exists and is writable") from None
            signals.TEMP_FILES.add(tmp)
        old = None
        try:
            yield tmp
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; give it the mode of any new directory
            if signals.signalled() is not None:
                raise Interrupted(signals.signalled())
            try:
                if self.replace and os.path.isdir(self.real):
                    old = tempfile.mkdtemp(prefix=f".{base}.", suffix=".old", dir=directory)
                    os.rename(self.real, os.path.join(old, base))
                os.rename(tmp, self.real)
            except OSError as e:
                raise LmError(f"{self.name}: cannot write ({e.strerror})", "check the path and its directory") \
                    from None
            signals.TEMP_FILES.discard(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            signals.TEMP_FILES.discard(tmp)
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)


def directory_target(path: str | None, replaceable, what: str = "a directory") -> DirectoryOutput:
    """Check -o DIR of a program writing a directory, before its work: DIR is new, or an existing
    directory that ``replaceable(DIR)`` accepts (one this kind of run wrote); its parent must exist and
    be writable."""
    if path is None or path in ("", "-"):
        raise LmError(f"{what} cannot go to stdout", "name it with -o DIR")
    name = path
    real = os.path.realpath(path.rstrip(os.sep) or path)
    replace = False
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise LmError(f"{name}: exists and is not a directory", f"name a new directory for {what}, or remove it")
        if os.listdir(path) and not replaceable(path):
            raise LmError(f"{name}: exists and does not hold {what}; refusing to replace it",
                          "name a new directory, or empty it")
        replace = True
    parent = os.path.dirname(real)
    if not os.path.isdir(parent):
        raise LmError(f"{name}: cannot write: the directory {os.path.dirname(path.rstrip(os.sep)) or '.'} does not "
                      "exist", "create it first (mkdir -p) or write elsewhere")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LmError(f"{name}: cannot write (Permission denied)", f"check that {parent} is writable")
    return DirectoryOutput(name, real, replace)
