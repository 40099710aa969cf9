"""Signals: SIGINT (Ctrl-C), SIGTERM (kill, timeout, cron) and SIGHUP (a closed terminal) end a program
quietly with exit 128 + the signal's number, leaving no temporary file (``TEMP_FILES``), whatever it is
doing. ``lmtools.cli.common`` installs the handlers around a program's body. Imports only the standard
library."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

_EXIT_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
_SIGNALLED: int | None = None  # the first exit signal received
_HANDLED = 0  # how many times the Python-level handler ran (a second signal ends the program at once)
_WATCHER = None  # the thread that learns of a signal even while the main thread is busy in C code
_GUARDED = False  # inside a program's body, where the signal's exception is caught by _run_guarded
_GRACE_S = 3.0  # how long the program may take to stop after a signal before it is made to


class Interrupted(KeyboardInterrupt):
    """Raised by a SIGINT, SIGTERM or SIGHUP (a KeyboardInterrupt, so that Ctrl-C code paths apply)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def exit_now(status: int) -> None:
    """End the process at once: no flush of standard output, which may be a full pipe that nobody reads
    (a flush there would block the exit for ever, where the signal's default action would have ended it)."""
    remove_temp_files()
    os._exit(status)


def _on_signal(signum, frame) -> None:
    global _SIGNALLED, _HANDLED
    _HANDLED += 1
    if _SIGNALLED is None:
        _SIGNALLED = signum
    remove_temp_files()  # first of all: whatever happens next, no .part file is left
    _quiet_logging()
    if _HANDLED > 1 or not _GUARDED:
        exit_now(128 + _SIGNALLED)  # a second signal, or one outside the body (start-up, shutdown)
    # The exception may be swallowed where Python cannot pass it on (a ctypes callback during numba's
    # compilation: see _unraisable) or by a library's own `except BaseException`: then the program is
    # stopped after a grace period (by _watch_signals, or this timer without it), and meanwhile no output
    # is renamed into place (see Output._atomic).
    if _WATCHER is None:
        import threading

        timer = threading.Timer(_GRACE_S, exit_now, (128 + _SIGNALLED,))
        timer.daemon = True
        timer.start()
    if _HOLD:
        return  # raised when the held block ends
    raise Interrupted(_SIGNALLED)


def _quiet_logging() -> None:
    """After an exit signal, nothing more from libraries' loggers: a Dask client's callbacks and its
    scheduler log errors as the connections they were using close under them (distributed's sync()
    cancelling a future it has not made yet, a comm closed while writing), none of which is the user's
    to read; the program ends with the signal's status alone. Kept under LMTOOLS_DEBUG."""
    logging = sys.modules.get("logging")  # not imported: nothing logs
    if logging is not None and os.environ.get("LMTOOLS_DEBUG", "") in ("", "0"):
        logging.disable(logging.CRITICAL)


def _watch_signals(fd: int, signums: set[int]) -> None:
    """A thread: Python runs a signal's handler in the main thread only between two bytecodes, which
    can be half a minute away while numba compiles a kernel in LLVM (C code). Told of the signal at
    once through the wakeup fd, this thread removes the temporary files and, if the program has not
    ended by then, ends it after a grace period."""
    global _SIGNALLED
    import time

    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        if not data:
            return
        hits = [s for s in data if s in signums]
        if hits:
            if _SIGNALLED is None:
                _SIGNALLED = hits[0]
            remove_temp_files()
            _quiet_logging()
            time.sleep(_GRACE_S)
            exit_now(128 + _SIGNALLED)


_HOLD = 0  # > 0 while a temporary file is being created and registered: a signal waits for the end


@contextlib.contextmanager
def signals_held():
    """Let a signal's exception wait until the block ends (its temporary file is registered by then)."""
    global _HOLD
    _HOLD += 1
    try:
        yield
    finally:
        _HOLD -= 1
    if _HOLD == 0 and _SIGNALLED is not None and _GUARDED:
        remove_temp_files()
        raise Interrupted(_SIGNALLED)


def _unraisable(unraisable) -> None:
    """Where Python cannot pass a signal's exception on (a ctypes callback during numba's compilation, a
    __del__), it would print "Exception ignored ..." and carry on: stop the program there instead."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _SIGNALLED is not None:
        exit_now(128 + _SIGNALLED)
    sys.__unraisablehook__(unraisable)


_WAKEUP_FD = -1  # the write end of the pipe _WATCHER reads


def install_signal_handlers() -> dict:
    """Our handlers for SIGINT, SIGTERM and SIGHUP (and the watcher thread); returns what they replaced,
    for restore_signal_handlers when a program runs inside another process (click's CliRunner)."""
    global _WATCHER, _WAKEUP_FD
    saved = {"hook": sys.unraisablehook, "handlers": {}, "wakeup": None}
    sys.unraisablehook = _unraisable
    for name in _EXIT_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN:
                continue  # ignored by whoever started us (nohup, a background job): stay so
            signal.signal(signum, _on_signal)
        except (ValueError, OSError):  # not the main thread (a program run inside another one)
            return saved
        saved["handlers"][signum] = previous
    if saved["handlers"]:
        try:
            if _WATCHER is None:
                import threading

                r, w = os.pipe()
                os.set_blocking(w, False)
                signums = {int(getattr(signal, n)) for n in _EXIT_SIGNALS if hasattr(signal, n)}
                _WATCHER = threading.Thread(target=_watch_signals, args=(r, signums), name="lmtools-signals",
                                            daemon=True)
                _WATCHER.start()
                _WAKEUP_FD = w
            saved["wakeup"] = signal.set_wakeup_fd(_WAKEUP_FD, warn_on_full_buffer=False)
        except (ValueError, OSError):
            pass  # the timer in _on_signal stands in
    return saved


def restore_signal_handlers(saved: dict) -> None:
    sys.unraisablehook = saved["hook"]
    for signum, previous in saved["handlers"].items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
    if saved["wakeup"] is not None:
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(saved["wakeup"])


def signalled() -> int | None:
    """The first exit signal received, or None."""
    return _SIGNALLED


def set_guarded(guarded: bool) -> None:
    """Whether a program's body is running, where the signal's exception is caught (by common's guard)."""
    global _GUARDED
    _GUARDED = guarded


TEMP_FILES: set[str] = set()  # temporary files (or directories: count shards) of outputs being written: removed on a signal


def remove_temp_files() -> None:
    for tmp in list(TEMP_FILES):
        with contextlib.suppress(OSError):
            if os.path.isdir(tmp) and not os.path.islink(tmp):
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.unlink(tmp)
        TEMP_FILES.discard(tmp)
