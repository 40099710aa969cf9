"""The memory budget options shared by the programs that count, merge or estimate in bounded memory:
``-S/--memory SIZE`` and ``-T/--temp-dir DIR`` (``memory_options``), the size parser (``parse_size``,
lmplz's syntax), and the private temporary directory that spilled runs go to (``spill_space``),
removed whatever happens (normal end, error, signal).

The default budget (-S absent) is ``DEFAULT_MEMORY``, 40% of physical memory: a pipe such as
``lm-count | lm-train`` runs two programs at once, and two at 40% together stay within the 80% that
lmplz takes for its one process. Where the counts fit in the budget nothing touches the disk, so the
default changes nothing for a corpus that fits; one that does not is counted with runs on disk instead
of failing when memory runs out.

Only click and the standard library are imported at module level (``--help`` stays fast).
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Callable

import click

from lmtools.cli import common

DEFAULT_MEMORY = "40%"
MIN_MEMORY = 1 << 20  # below this the tables could not hold one block of text; tests go lower through
TEST_BUDGET_ENV = "LMTOOLS_TEST_BUDGET"  # (bytes; lmtools.ngram.external.TEST_BUDGET_ENV) a hidden knob

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([bBkKmMgGtTpP%]?)\s*")
_UNITS = {"": 10, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "b": 0}

MEMORY_HELP = ("Memory budget for the n-gram tables and sorting: a size with a suffix b (bytes), K, M, G, T "
               "(powers of 1024; no suffix: K, as lmplz and sort take it) or % of physical memory. Beyond it "
               "sorted runs are written to -T DIR and merged. Default: 40% (two programs of a pipe together: "
               "80%).")
TEMP_HELP = "Directory for the temporary runs (a private directory is made in it and removed at the end). " \
            "Default: $TMPDIR, else /tmp."


def physical_memory() -> int | None:
    """Bytes of physical memory (MemTotal), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def parse_size(text: str, total: int | None = None) -> int:
    """Bytes of a size as lmplz's -S takes it: a number with a suffix b (bytes), K, M, G, T, P (powers
    of 1024, either case; none: K) or % (of ``total``, default physical memory). ValueError with the
    reason when it is not one."""
    m = _SIZE.fullmatch(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a size (a number with b, K, M, G, T or %)")
    number, suffix = float(m.group(1)), m.group(2).lower()
    if suffix == "%":
        if number > 100:
            raise ValueError(f"{text!r} is more than all of physical memory")
        total = physical_memory() if total is None else total
        if total is None:
            raise ValueError("physical memory is unknown here, so a percentage cannot be taken")
        return int(total * number / 100)
    return int(number * (1 << _UNITS[suffix]))


def resolve_memory(memory: str | None) -> int:
    """The budget in bytes of -S (None: the default); a usage error (exit 2) for an impossible size.
    LMTOOLS_TEST_BUDGET (bytes) overrides it, below the minimum too: the tests force spills with it."""
    forced = os.environ.get(TEST_BUDGET_ENV, "").strip()
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    text = DEFAULT_MEMORY if memory is None else memory
    try:
        size = parse_size(text)
    except ValueError as e:
        raise common.UsageError(f"-S/--memory: {e}", "give a size such as -S 2G or -S 50%") from None
    if size < MIN_MEMORY:
        raise common.UsageError(f"-S/--memory {text} is below the smallest budget (1M)",
                                "give -S 1M or more (2G, 50%)")
    return size


AVAILABLE_SHARE = 0.8  # of the memory this process can still get, at most, for the budget


def fit_available(budget: int) -> int:
    """The budget, lowered to AVAILABLE_SHARE of the memory this process can get now (MemAvailable,
    ulimit -v, a cgroup's memory.max: lmtools.memory.available) when that is less: under such a
    limit the tables spill to disk instead of the run failing when they outgrow it. Not below the
    minimum, and not under LMTOOLS_TEST_BUDGET or LMTOOLS_MEMORY_CHECK=0."""
    from lmtools import memory

    if os.environ.get(TEST_BUDGET_ENV, "").strip() or not memory.check_enabled():
        return budget
    avail, _ = memory.available()
    if avail is None:
        return budget
    return max(MIN_MEMORY, min(budget, int(avail * AVAILABLE_SHARE)))


def default_temp_dir() -> str:
    return os.environ.get("TMPDIR") or "/tmp"


def check_temp_dir(temp_dir: str | None) -> str:
    """The temporary directory of -T (default $TMPDIR, else /tmp), refused (exit 2) when it is not a
    writable directory: checked before any work, as -o is."""
    path = temp_dir if temp_dir is not None else default_temp_dir()
    flag = "-T/--temp-dir" if temp_dir is not None else "the temporary directory ($TMPDIR or /tmp)"
    if path == "":
        raise common.UsageError(f"{flag} is empty", "give a directory, such as -T /var/tmp")
    if not os.path.isdir(path):
        what = "does not exist" if not os.path.exists(path) else "is not a directory"
        raise common.UsageError(f"{flag} {path}: {what}", "give an existing directory with -T DIR")
    if not os.access(path, os.W_OK | os.X_OK):
        raise common.UsageError(f"{flag} {path}: not writable", "give a writable directory with -T DIR")
    return path


def memory_options(func: Callable, option: Callable = click.option, memory_help: str = MEMORY_HELP) -> Callable:
    """-S/--memory SIZE and -T/--temp-dir DIR (parameters ``memory`` and ``temp_dir``, both None when
    absent: ``resolve_memory`` and ``check_temp_dir`` give the values); ``option``: the decorator
    factory (an option group's ``option`` puts them in that group)."""
    func = option("-T", "--temp-dir", "temp_dir", metavar="DIR", default=None, help=TEMP_HELP)(func)
    func = option("-S", "--memory", "memory", metavar="SIZE", default=None, help=memory_help)(func)
    return func


@contextlib.contextmanager
def spill_space(temp_dir: str):
    """A ``SpillDir`` inside ``temp_dir`` (made when first written to), removed with its files at the
    end whatever happens; a signal's handler removes them too (they are in signals.TEMP_FILES)."""
    from lmtools.cli import signals
    from lmtools.io.countstream import SpillDir

    space = SpillDir(temp_dir, signals.TEMP_FILES)
    try:
        yield space
    finally:
        space.remove()
