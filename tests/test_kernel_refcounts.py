"""No reference counting inside the loops of the hot kernels.

numba increments and decrements an array's reference count (NRT_incref / NRT_decref: atomic
operations, called through a pointer) where it cannot prove them useless; an inlined helper that
takes arrays and returns early, breaks out of a loop, or reads both of two arrays under a condition
can leave them in the caller's loop, once per element. That made the k-way merge 3.5x slower and
the tokenizer a quarter slower before they were written without such helpers. These checks compile
fresh copies of the kernels (numba's cache holds no IR to read), read numba's optimized LLVM IR, and
fail where an NRT call sits in a block of a loop of the kernel's own function, or where such a block
calls a function of the module that counts references (a kernel that LLVM did not inline, which
counts its array arguments on entry and exit: the ARPA number formatter and parser did, per value).

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
_CALL = re.compile(r"call [^@]*@(\"[^\"]+\"|[\w.$]+)\(")


def _counting_functions(functions: dict) -> set:
    """The defined functions that call NRT_incref / NRT_decref, themselves or through others."""
    calls = {fn: {c.strip('"') for line in lines for c in _CALL.findall(line)} for fn, lines in functions.items()}
    counting = {fn for fn, lines in functions.items() if not fn.startswith("NRT_") and any(_NRT.search(x) for x in lines)}
    grown = True
    while grown:
        more = {fn for fn, cs in calls.items() if fn not in counting and not fn.startswith("NRT_") and cs & counting}
        counting |= more
        grown = bool(more)
    return counting


def nrt_calls_in_loops(llvm_ir: str, name: str, allow: tuple = ()) -> list[str]:
    """The NRT_incref / NRT_decref calls that lie in loops of the defined functions of ``llvm_ir``
    whose symbol contains ``name`` (a block is in a loop when it can reach itself), and the calls
    in those loops of defined functions that count references (but for those whose symbol contains
    one of ``allow``)."""
    found = []
    functions = dict(_functions(llvm_ir))
    counting = {fn for fn in _counting_functions(functions) if not any(a in fn for a in allow)}
    for fn, lines in functions.items():
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
            sites = [line.strip() for line in blocks[b]
                     if _NRT.search(line) or any(c.strip('"') in counting for c in _CALL.findall(line))]
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
    """Uncached copies of ``module``'s kernels, their options kept (inline, parallel), put in its place
    (kernels calling one another get the copies: numba resolves a kernel's globals when it compiles
    it)."""
    out = []
    for name in names:
        old = getattr(module, name)
        d = njit(old.py_func, **{k: v for k, v in old.targetoptions.items() if k not in ("cache", "nopython")})
        monkeypatch.setattr(module, name, d)
        out.append(d)
    return out


def assert_no_nrt_in_loops(*kernels, allow: tuple = ()):
    bad = []
    for d in kernels:
        assert d.signatures, f"{d.py_func.__name__} was not compiled by the check's input"
        for sig in d.signatures:
            calls = nrt_calls_in_loops(d.inspect_llvm(sig), d.py_func.__name__, allow)
            if calls:
                bad.append(f"{d.py_func.__name__}{sig}: reference counting in a loop: {calls[:4]}")
    assert not bad, "\n".join(bad)


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


def test_the_check_finds_a_called_kernel_that_counts_references():
    """A kernel called in a loop that makes an array and writes to its argument (the ARPA number
    formatter before it made its text in integers)."""

    @njit
    def put_digits(x, out, pos):
        tmp = np.empty(20, np.uint8)
        n = 0
        while x > 0:
            tmp[n] = 48 + x % 10
            x //= 10
            n += 1
        for k in range(n):
            out[pos + k] = tmp[n - 1 - k]
        return pos + n

    @njit
    def put_all(xs, out):
        pos = 0
        for i in range(xs.shape[0]):
            pos = put_digits(xs[i], out, pos)
        return pos

    put_all(np.arange(1, 50), np.empty(200, np.uint8))
    assert nrt_calls_in_loops(put_all.inspect_llvm(put_all.signatures[0]), "put_all")


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


def test_packing_of_runs(monkeypatch, tmp_path):
    from lmtools.io.countstream import RunFile, SpillDir
    from lmtools.kernels import bitpack

    # pack_chunks is not checked: it hands its arrays to chunk_widths and pack_chunk (checked) once
    # per chunk of thousands of records
    kernels = fresh(monkeypatch, bitpack, "chunk_widths", "pack_chunk", "unpack_rows", "pack_chunks")
    rng = np.random.default_rng(4)
    rows, counts = rng.integers(0, 900, (500, 4)).astype(np.int32), rng.integers(0, 99, 500).astype(np.int64)
    with SpillDir(str(tmp_path)) as spill:
        run = RunFile(spill, 4)
        run.append(rows, counts)
        reader = run.finish().reader()
        reader.read_into(np.empty((500, 4), np.int32), np.empty(500, np.int64))
        reader.close()
    assert_no_nrt_in_loops(*kernels[:3])


def _model(tmp_path, order):
    """A small Kneser-Ney model of a few Shakespeare lines."""
    from lmtools.ngram.counting import count_levels
    from lmtools.ngram.smoothing import smooth
    from tests.conftest import SHAKESPEARE

    p = tmp_path / "t.txt"
    p.write_bytes(b"\n".join(SHAKESPEARE.read_bytes().split(b"\n")[:300]) + b"\n")
    return smooth(count_levels([str(p)], order).to_counts({}))


def test_arpa_writing_and_reading(monkeypatch, tmp_path):
    import io

    from lmtools.io.arpa import read_arpa, write_arpa
    from lmtools.kernels import arpa

    kernels = fresh(monkeypatch, arpa, "format_lines", "parse_section")
    out = io.BytesIO()
    write_arpa(_model(tmp_path, 3), out)
    read_arpa(io.BytesIO(out.getvalue()))
    assert_no_nrt_in_loops(*kernels)


def test_pruning_walk(monkeypatch, tmp_path):
    from lmtools.kernels import prune
    from lmtools.ngram.prune import prune_entropy

    kernels = fresh(monkeypatch, prune, "lower_logp")
    prune_entropy(_model(tmp_path, 3), threshold=1e-6)
    assert_no_nrt_in_loops(*kernels)


def test_ngram_sampling_steps(monkeypatch, tmp_path):
    from lmtools.kernels import backoff_distribution as D
    from lmtools.kernels import backoff_draw as W
    from lmtools.kernels import sample_sentences as S
    from lmtools.ngram.sample import NGramSampler, check_options

    kernels = fresh(monkeypatch, D, "bound", "context_step_t")
    kernels += fresh(monkeypatch, W, "_in_range", "nested_draw", "choose_lazy")
    for module, name in ((D, "context_step_t"), (W, "nested_draw"), (W, "choose_lazy")):
        monkeypatch.setattr(S, name, getattr(module, name))  # the driver imports them by name
    monkeypatch.setattr(W, "bound", D.bound)
    fresh(monkeypatch, S, "sample_ngram")
    sampler = NGramSampler(_model(tmp_path, 3))
    sampler.python_sentences = 0
    assert sampler.normalized
    for opts in (check_options(), check_options(temperature=0.9), check_options(top_k=5)):
        sampler.sample_batch(8, 1, 0, np.zeros(0, np.int32), opts, threads=1)
    assert_no_nrt_in_loops(*kernels)


def test_dense_draw(monkeypatch):
    from lmtools.kernels import draw
    from lmtools.ngram.sample import check_options
    from lmtools.nn.model import FFNNModel
    from lmtools.nn.sample import FFNNSampler

    kernels = fresh(monkeypatch, draw, "choose_logits", "draw_weights")
    r = np.random.default_rng(0)
    V, ctx, d, H = 12, 2, 5, 7
    m = FFNNModel(vocab=["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(V - 3)], context=ctx,
                  E=r.normal(size=(V, d)), W=r.normal(size=(H, ctx * d)), b=r.normal(size=H),
                  U=r.normal(size=(V, H)), c=r.normal(size=V))
    for opts in (check_options(), check_options(top_k=3)):
        FFNNSampler(m).sample_batch(8, 1, 0, np.zeros(0, np.int32), opts)
    # draw_weights (called once per row, beside an exp of every word, and sorting for top-k and
    # top-p) may count references on entry and exit; the rows' own loops may not
    assert_no_nrt_in_loops(*kernels, allow=("draw_weights",))
