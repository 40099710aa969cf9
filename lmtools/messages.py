"""Messages on stderr for every layer: warnings, information lines and the --debug switch.

``lm-x: warning: message``, with the program name the CLI sets through ``set_program`` (the
command decorator in lmtools.cli.common does it). A leaf module: standard library only, no lmtools
import, so that library code (io, ngram, nn, kernels) may use it without importing the CLI.
"""

from __future__ import annotations

import os
import sys

_program: str | None = None


def set_program(name: str) -> None:
    """The name warnings start with (``lm-train``...)."""
    global _program
    _program = name


def program() -> str:
    if _program:
        return _program
    base = os.path.basename(sys.argv[0] if sys.argv else "")
    return base if base.startswith("lm-") else "lmtools"


def debug_enabled() -> bool:
    """True under --debug or LMTOOLS_DEBUG=1 (show tracebacks, do not hide best-effort failures)."""
    return os.environ.get("LMTOOLS_DEBUG", "") not in ("", "0")


def _line(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: a message is not worth failing for
        pass


def warn(message: str) -> None:
    """One warning line on stderr: ``<program>: warning: message``."""
    _line(f"{program()}: warning: {message}")


def info(message: str) -> None:
    """One informational line on stderr (statistics, discounts): ``<program>: message``."""
    _line(f"{program()}: {message}")
