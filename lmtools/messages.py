"""Warning lines on stderr for library code (io, ngram, nn) that must not import the CLI.

``lm-x: warning: message``, with the program name the CLI sets through ``set_program`` (the
command decorator in lmtools.cli.common does it); standard library only.
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


def warn(message: str) -> None:
    """One warning line on stderr: ``<program>: warning: message``."""
    try:
        sys.stderr.write(f"{program()}: warning: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: a warning is not worth failing for
        pass
