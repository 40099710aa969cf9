"""Large arrays on transparent huge pages, and the memory check made before a large step.

Touching fresh memory costs a page fault per 4 KiB page, which on the virtual machines lmtools is
measured on costs about 10 us: filling a 128 MB table took 0.4-0.5 s with np.full and 0.05 s on
huge pages. Arrays of a few megabytes and more (hash tables, token id buffers) are therefore
allocated with mmap and madvise(MADV_HUGEPAGE) where the system allows it (Linux with THP in
"madvise" or "always" mode); elsewhere this falls back to numpy's allocator.
"""

from __future__ import annotations

import math
import os

import numpy as np

from lmtools.constants import query_table_bytes

HUGE_MIN_BYTES = 1 << 22


def _huge(shape, dtype) -> np.ndarray | None:
    """A zero-filled array on huge pages, or None when too small or not possible here."""
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    if nbytes < HUGE_MIN_BYTES:
        return None
    try:
        import mmap

        mm = mmap.mmap(-1, nbytes)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            mm.madvise(mmap.MADV_HUGEPAGE)
        return np.frombuffer(mm, dtype, count).reshape(shape)
    except (OSError, ValueError, AttributeError):
        return None


def empty(shape, dtype) -> np.ndarray:
    """Like np.empty, on huge pages when large."""
    dtype = np.dtype(dtype)
    a = _huge(shape, dtype)
    return np.empty(shape, dtype) if a is None else a


def zeros(shape, dtype) -> np.ndarray:
    """Like np.zeros, on huge pages when large (fresh anonymous memory is already zero)."""
    dtype = np.dtype(dtype)
    a = _huge(shape, dtype)
    return np.zeros(shape, dtype) if a is None else a


def full(shape, value, dtype) -> np.ndarray:
    """Like np.full, on huge pages when large."""
    a = empty(shape, dtype)
    a.fill(value)
    return a


def keep_freed_memory() -> bool:
    """Keep memory the process frees for its own next allocations instead of giving it back to the
    system (glibc's malloc: no mmap for large blocks, no trimming of the heap's top), where that is
    possible; returns whether it was done.

    Work in a memory budget (lm-count -S, lm-train -S) allocates and frees arrays of hundreds of
    megabytes over and over, one partition or spill after another. By default glibc maps each large
    block afresh and unmaps it when freed, so every partition pays the page faults of memory it has
    used before, and on virtual machines that hand freed memory back to the host (free page
    reporting) each of those faults is the host's too: measured here, 6.6 s to first touch 1 GB
    against 0.09 s to write it again. Kept, freed blocks are reused; the peak (what the budget
    bounds) is the same, but the resident size stays near it until the program ends."""
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        if not name:
            return False
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    ok = mallopt(M_MMAP_MAX, 0) == 1
    ok = mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok
    return ok


# ----------------------------------------------------------------------------------------------
# Checking memory before a step
#
# Past physical memory (no swap, overcommit on) the kernel's OOM killer ends a process with no
# message, after the work; an address-space limit (ulimit -v) ends it with a MemoryError. So each
# large step (n-gram estimation, loading a model for queries, merging, FFNN training, growing a
# counting table) first estimates the bytes it will add from the sizes it is given and stops with
# one line when they exceed what is available. LMTOOLS_MEMORY_CHECK=0 turns the check off.
#
# The figures per n-gram were measured with /usr/bin/time -v (peak RSS) on the PTB training text
# (tests/test_resources.py and man/lm-train.1 give the commands): see the functions below.

# lm-train from counts, beyond the counts themselves: 73-74 bytes per n-gram of the counts used
# (PTB 3-gram counts, 861,549 n-grams: 72.6; 5-gram, 2,317,234: 73.9; kn-modified); with a margin.
ESTIMATE_BYTES_PER_NGRAM = 80
# Under an address-space limit, mappings that are never touched count too: numba's compiled code
# loaded after the check, thread stacks. (lm-ppl on a PTB 5-gram under ulimit -v: passing a check
# with 10 MB to spare ended in a MemoryError: it mapped 240-270 MB, not the 166 MB of RSS estimated.)
AS_ALLOWANCE = 128 << 20


def check_enabled() -> bool:
    return os.environ.get("LMTOOLS_MEMORY_CHECK", "1").strip() not in ("0", "no", "off", "false")


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return out


def _vm_size() -> int | None:
    """Bytes of address space this process maps now (VmSize)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), when it has a limit."""
    try:
        with open("/proc/self/cgroup") as f:
            rel = next((line.split(":", 2)[2].strip() for line in f if line.startswith("0::")), None)
        if rel is None:
            return None
        base = os.path.join("/sys/fs/cgroup", rel.lstrip("/"))
        with open(os.path.join(base, "memory.max")) as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(base, "memory.current")) as f:
            return max(0, int(limit) - int(f.read().strip()))
    except (OSError, ValueError, StopIteration):
        return None


def available() -> tuple[int | None, str]:
    """(bytes this process can still allocate, what limits it), the least of: the system's
    MemAvailable, the room under an address-space limit (RLIMIT_AS, ulimit -v) and the room in a
    memory-limited cgroup. (None, "") when none is known."""
    found: list[tuple[int, str]] = []
    avail = _meminfo().get("MemAvailable")
    if avail is not None:
        found.append((avail, "(MemAvailable)"))
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = _vm_size()
            if used is not None:  # less what numba's code and thread stacks will map later
                found.append((max(0, soft - used - AS_ALLOWANCE), f"under the address-space limit (ulimit -v {soft >> 10})"))
    except (ImportError, OSError, ValueError):
        pass
    room = _cgroup_room()
    if room is not None:
        found.append((room, "under the cgroup's limit (memory.max)"))
    if not found:
        return None, ""
    return min(found)


def human(n: float) -> str:
    """Bytes for a message: 512 kB, 37 MB, 1.4 GB, 3 TB (powers of 1000)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n)} bytes"


def check(need: int, what: str, hint: str) -> None:
    """Raise LmError when ``need`` more bytes are not available: one line saying what needs how
    much, how much there is, and (``hint``) what to do instead."""
    if need <= 0 or not check_enabled():
        return
    avail, source = available()
    if avail is None or need <= avail:
        return
    from lmtools.errors import LmError

    raise LmError(f"{what} needs about {human(need)} of memory, {human(avail)} available {source}",
                  f"{hint}; LMTOOLS_MEMORY_CHECK=0 skips this check")


def _slots(n: int, load: float) -> int:
    """Power-of-two slots of a table holding ``n`` entries at most ``load`` full."""
    return 1 << max(1, math.ceil(math.log2(n / load + 2)))


def estimate_smoothing(sizes: list[int]) -> int:
    """Bytes that estimating a model from counts of these sizes (n-grams per order, the orders used)
    adds to the loaded counts."""
    return ESTIMATE_BYTES_PER_NGRAM * int(sum(sizes))


def estimate_query(sizes: list[int]) -> int:
    """Bytes of the query tables of an n-gram model of these sizes, beyond the model's arrays (exact
    but for small buffers: the tables (lmtools.constants.query_table_bytes), and while they are built
    three 8-byte keys plus two 4-byte values per n-gram of order >= 2)."""
    return query_table_bytes(sizes) + 32 * sum(int(n) for n in sizes[1:])


def estimate_counting_tables(sizes: list[int]) -> int:
    """Bytes of lm-count's tables (also lm-merge's) holding these numbers of n-grams of the orders >= 2:
    an int64 (key, id) pair per slot at most half full, and prefix, word and count arrays that grow by
    doubling. PTB in two shards, 5-gram (2,449,481 n-grams of orders 2..5 in the shards): 195 MB; the
    peak RSS of lm-merge rose from merging two tiny files by 217 MB, the loaded shards included."""
    return sum(16 * _slots(int(n), 0.5) + 32 * int(n) for n in sizes)


def estimate_ffnn(V: int, dim: int, hidden: int, context: int, classes: int, batch: int, examples: int,
                  optimizer: str, itemsize: int = 4) -> int:
    """Bytes of FFNN training: the parameters (model, kernel copy, gradients, optimizer state, best and
    last good snapshots), the examples (contexts, targets, positions, order) and the batch buffers."""
    params = V * dim + hidden * context * dim + hidden + V * hidden + V + classes * (hidden + 1)
    copies = 5 + (optimizer in ("momentum", "adagrad", "adam")) + (optimizer == "adam")
    per_example = 4 * context + 4 + 8 + 4 + 8
    width = classes + 2 * int(math.ceil(V / max(classes, 1))) if classes else V
    buffers = batch * ((3 * context * dim + 3 * hidden + width) * itemsize + 8)
    return itemsize * params * copies + per_example * examples + buffers
