"""No reference counting inside the loops of the hot kernels.

numba increments and decrements an array's reference count (NRT_incref / NRT_decref: atomic
operations, called through a pointer) where it cannot prove them useless; an inlined helper that
takes arrays and returns early, breaks out of a loop, or reads both of two arrays under a condition
can leave them in the caller's loop, once per element. That made the k-way merge 3.5x slower and
the tokenizer a quarter slower before they were written without such helpers. These checks compile
fresh copies of the kernels (numba's cache holds no IR to read), read numba's optimized LLVM IR, and
fail where an NRT call sits in a block of a loop of the kernel's own function.

Slow (each kernel compiles from scratch): run by `make test-slow`.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from numba import njit

pytestmark = pytest.mark.slow

_DEFINE = re.compile(r"^define [^@]*@(\"[^\"]+\"|[\w.$]+)\(")
_LABEL = re.compile(r"^(\"[^\"]+\"|[\w.$-]+):")
_TARGET = re.compile(r"label %(\"[^\"]+\"|[\w.$-]+)")
_NRT = re.compile(r"call [^@]*@NRT_(incref|decref)\(")


def nrt_calls_in_loops(llvm_ir: str, name: str) -> list[str]:
    """The NRT_incref / NRT_decref calls that lie in loops of the defined functions of ``llvm_ir``
    whose symbol contains ``name`` (a block is in a loop when it can reach itself)."""
    found = []
    for fn, lines in _functions(llvm_ir):
        if name not in fn:
            continue
        blocks, order = {}, []
        current = "entry"
        blocks[current] = []
        order.append(current)
        for line in lines:
            m = _LABEL.match(line)
            if m:
                current = m.group(1).strip('"')
                blocks[current] = []
                order.append(current)
            else:
                blocks[current].append(line)
        succ = {b: [t.strip('"') for line in body for t in _TARGET.findall(line)
                    if line.lstrip().startswith(("br ", "switch ", "i", "]")) or "label %" in line]
                for b, body in blocks.items()}
        for b in order:
            sites = [line.strip() for line in blocks[b] if _NRT.search(line)]
            if sites and _reaches(succ, b, b):
                found += [f"{b}: {s[:90]}" for s in sites]
    return found


def _functions(text: str):
    fn, lines = None, []
    for line in text.splitlines():
        m = _DEFINE.match(line)
        if m:
            fn, lines = m.group(1).strip('"'), []
        elif fn is not None and line.startswith("}"):
            yield fn, lines
            fn = None
        elif fn is not None:
            lines.append(line)


def _reaches(succ: dict, start: str, goal: str) -> bool:
    seen, stack = set(), list(succ.get(start, []))
    while stack:
        b = stack.pop()
        if b == goal:
            return True
        if b in seen:
            continue
        seen.add(b)
        stack += succ.get(b, [])
    return False


def fresh(monkeypatch, module, *names):
    """Uncached copies of ``module``'s kernels, put in its place (kernels calling one another get
    the copies: numba resolves a kernel's globals when it compiles it)."""
    out = []
    for name in names:
        d = njit(getattr(module, name).py_func)
        monkeypatch.setattr(module, name, d)
        out.append(d)
    return out


def assert_no_nrt_in_loops(*kernels):
    for d in kernels:
        assert d.signatures, f"{d.py_func.__name__} was not compiled by the check's input"
        for sig in d.signatures:
            calls = nrt_calls_in_loops(d.inspect_llvm(sig), d.py_func.__name__)
            assert not calls, f"{d.py_func.__name__}{sig}: reference counting in a loop: {calls[:4]}"


def test_the_check_finds_a_helper_that_counts_references_in_a_loop(monkeypatch):
    """The pattern the checks exist for: an inlined helper that reads keys and rows under a
    condition and returns early (the k-way merge's comparison before it was written out)."""

    @njit(inline="always")
    def less(rows, keys, a, b):
        if keys[a] != keys[b]:
            return keys[a] < keys[b]
        for c in range(rows.shape[1]):
            if rows[a, c] != rows[b, c]:
                return rows[a, c] < rows[b, c]
        return False

    @njit
    def smallest(rows, keys):
        best = 0
        for i in range(1, rows.shape[0]):
            if less(rows, keys, i, best):
                best = i
        return best

    smallest(np.zeros((4, 3), np.int32), np.zeros(4, np.int64))
    assert nrt_calls_in_loops(smallest.inspect_llvm(smallest.signatures[0]), "smallest")


def test_merge_of_runs(monkeypatch):
    from lmtools.kernels import merge_runs
    from lmtools.ngram.external import _MemorySource, merge_sorted_runs, sort_and_sum

    kernels = fresh(monkeypatch, merge_runs, "_sift_down", "_sift_up", "merge_step")
    rng = np.random.default_rng(1)
    runs = [sort_and_sum(rng.integers(0, 50, (200, 4)).astype(np.int32), np.ones(200, np.int64)) for _ in range(5)]
    list(merge_sorted_runs([_MemorySource(*r) for r in runs], 4, 16, 50))
    assert_no_nrt_in_loops(*kernels)


def test_partitioned_merge_and_search(monkeypatch):
    from lmtools.kernels import partitioned
    from lmtools.ngram.partitioned import search_rows

    # find_rows_ordered_into is not checked: it counts references once per block of 4096 queries, where
    # it hands slices of its buffers to find_rows_into (checked)
    kernels = fresh(monkeypatch, partitioned, "kway_order", "find_rows_into", "find_rows")
    rng = np.random.default_rng(2)
    runs = [(np.unique(rng.integers(0, 30, (50, 3)).astype(np.int32), axis=0),) for _ in range(4)]
    runs = [(r[0], np.arange(r[0].shape[0])) for r in runs]
    partitioned.merge_sorted(runs)
    table = np.unique(rng.integers(0, 30, (300, 3)).astype(np.int32), axis=0)
    search_rows(np.ascontiguousarray(table[::-1]), table, 1)
    partitioned.find_rows(table, table, partitioned.first_id_starts(table))
    assert_no_nrt_in_loops(*kernels)


def test_tokenizer(monkeypatch):
    from lmtools.kernels import tokenize as T

    kernels = fresh(monkeypatch, T, "_scan", "tokenize")
    buf = np.frombuffer(b"to be or not to be\nthat is the question\n" * 20, np.uint8)
    h, s, p, o, n = T.new_table()
    ids = np.empty(buf.shape[0] * 2 + 4, np.int32)
    oov = np.empty(ids.shape[0], np.bool_)
    T.tokenize(buf, h, s, p, o, n, True, ids, oov)
    assert_no_nrt_in_loops(kernels[0])


def test_counting(monkeypatch):
    from lmtools.kernels import count
    from lmtools.ngram.counting import NgramCounter

    kernels = fresh(monkeypatch, count, "count_next_order")
    counter = NgramCounter(3)
    counter.add(np.array([0, 4, 5, 6, 4, 5, 7, 1, 0, 4, 5, 1], np.int32))
    assert_no_nrt_in_loops(*kernels)
