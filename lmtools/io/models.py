"""Saving and loading every model kind through the one model-file module.

``load_model`` accepts an lmtools model file (any kind) or an ARPA file (plain or compressed),
from a path or ``-`` (stdin), and returns a ``Counts``, ``NGramModel`` or ``FFNNModel``.
``read_source`` is its first half and the one place that tells the formats apart: it reads a
model file's parts (or leaves an ARPA file open) and says what kind the source holds, so that a
caller with several sources (lmtools.kinds.load_scorer) can look at all of them before building
any. Of lmtools.ngram and lmtools.nn this module imports only the model data types.
"""

from __future__ import annotations

import io
import os
import sys
from typing import BinaryIO

import numpy as np

from lmtools import __version__
from lmtools.errors import LmError
from lmtools.io.modelfile import map_model, read_model, stream_size
from lmtools.io.modelwrite import write_model
from lmtools.ngram.counts import Counts, Levels
from lmtools.ngram.model import NGramModel, model_arrays


def _provenance(obj) -> dict:
    prov = dict(getattr(obj, "provenance", {}) or {})
    prov.setdefault("version", __version__)
    return prov


def counts_to_parts(c) -> tuple[dict, dict[str, np.ndarray]]:
    """File parts of a ``Counts`` (sorted full rows) or of ``Levels`` (lm-count's own form).

    On file, order n >= 2 is stored as each n-gram's prefix (row of its first n-1 words in order
    n-1) and last word: 8 bytes per n-gram whatever n, and what the counter produces directly.
    """
    if isinstance(c, Levels):
        levels, unigrams, order = c.levels, c.unigrams, len(c.levels) + 1
    else:
        from lmtools.kernels.smooth import prefix_index

        order, unigrams, levels = c.order, c.counts[0], []
        for n in range(2, order + 1):
            rows, prev = c.ngrams[n - 1], c.ngrams[n - 2]
            prefix = prefix_index(np.ascontiguousarray(rows), np.ascontiguousarray(prev)) if len(rows) else \
                np.zeros(0, np.int64)
            if (prefix < 0).any():
                raise ValueError(f"order {n} has n-grams whose prefix is not among the order {n - 1} n-grams")
            levels.append((prefix, rows[:, -1], c.counts[n - 1]))
    header = {"order": order, "vocab": list(c.vocab), "tokens": int(c.tokens), "sentences": int(c.sentences),
              "sizes": [len(unigrams)] + [len(lv[0]) for lv in levels],
              "provenance": _provenance(c)}
    arrays = {"counts_1": narrow_counts(unigrams)}
    for n, (prefix, word, count) in enumerate(levels, start=2):
        arrays[f"prefix_{n}"] = np.ascontiguousarray(prefix, dtype=np.int32)
        arrays[f"word_{n}"] = np.ascontiguousarray(word, dtype=np.int32)
        arrays[f"counts_{n}"] = narrow_counts(count)
    return header, arrays


def fits_uint32(count: np.ndarray) -> bool:
    """Do all these counts (exact integers) fit in uint32?"""
    return count.size == 0 or (int(count.max()) < 2**32 and int(count.min()) >= 0)


def narrow_counts(count: np.ndarray) -> np.ndarray:
    """Counts in the narrowest type that holds them (uint32 where they fit, else int64): smaller files."""
    return count.astype(np.uint32 if fits_uint32(count) else np.int64, copy=False)


def counts_from_parts(h: dict, a: dict[str, np.ndarray], name: str) -> Counts:
    if h.get("layout") == LAYOUT_SORTED:
        return counts_from_sorted_parts(h, a, name)
    lv = levels_from_parts(h, a, name)
    counts = lv.to_counts(lv.provenance)
    for n in range(2, counts.order + 1):  # sorted now: a repeated n-gram sits beside its twin
        if not rows_increasing(counts.ngrams[n - 1]):
            raise LmError(f"{name}: corrupt counts file (order {n} has repeated n-grams)", "recreate it with lm-count")
    return counts


def levels_from_parts(h: dict, a: dict[str, np.ndarray], name: str):
    """A counts file as stored (``Levels``: trie levels, not sorted); a sorted count stream is turned
    into trie levels (each n-gram's prefix found among the order below)."""
    if h.get("layout") == LAYOUT_SORTED:
        c = counts_from_sorted_parts(h, a, name)
        try:
            head, parts = counts_to_parts(c)
        except ValueError as e:  # a prefix missing: no trie level can hold such counts
            raise LmError(f"{name}: corrupt counts file ({e})", _COUNTS_HINT) from None
        lv = levels_from_parts({k: v for k, v in h.items() if k != "layout"}, parts, name)
        return lv
    order = _order(h, name)
    V = len(h["vocab"])
    hint = "recreate it with lm-count"
    try:
        raw = [a["counts_1"]] + [a[f"{k}_{n}"] for n in range(2, order + 1) for k in ("prefix", "word", "counts")]
    except KeyError as e:
        raise LmError(f"{name}: counts file lacks array {e.args[0]}", hint) from None
    for arr in raw:  # ids and counts are integers (counts exact, never floats)
        if arr.dtype.kind not in "iu" or arr.ndim != 1:
            raise LmError(f"{name}: corrupt counts file (an array is not a vector of integers)", hint)
    if raw[0].shape != (V,) or _negative(raw[0]):
        raise LmError(f"{name}: corrupt counts file (unigram counts)", hint)
    unigrams = raw[0].astype(np.int64)
    levels = []
    sizes = [V]
    for n in range(2, order + 1):
        prefix, word, count = raw[3 * (n - 2) + 1: 3 * (n - 2) + 4]
        if not (prefix.shape == word.shape == count.shape):
            raise LmError(f"{name}: corrupt counts file (order {n} arrays disagree)", hint)
        if not (_in_range(prefix, sizes[-1]) and _in_range(word, V)):
            raise LmError(f"{name}: corrupt counts file (order {n} ids out of range)", hint)
        if _negative(count):
            raise LmError(f"{name}: corrupt counts file (order {n} has negative counts)", hint)
        levels.append((prefix.astype(np.int32, copy=False), word.astype(np.int32, copy=False),
                       count.astype(np.int64)))
        sizes.append(len(prefix))
    _check_sizes(h, sizes, name)
    return Levels(list(h["vocab"]), unigrams, levels, int(h.get("tokens", 0)), int(h.get("sentences", 0)),
                  dict(h.get("provenance", {})), text=_text_kind(h, name))


# The sorted count stream (io.countstream writes and streams it; whole-file readers are here)
LAYOUT_SORTED = "sorted"
_COUNTS_HINT = "recreate it with lm-count"


def sorted_array_names(sizes: list[int], block_rows: int) -> list[str]:
    """The arrays of a sorted count stream with these sizes, in file order: ``counts_1``, then per
    order n >= 2 its blocks ``ngrams_n.i`` and ``counts_n.i`` (i = 0, 1, ...)."""
    names = ["counts_1"]
    for n, m in enumerate(sizes[1:], start=2):
        for i in range(-(-m // block_rows)):
            names += [f"ngrams_{n}.{i}", f"counts_{n}.{i}"]
    return names


def sorted_layout_facts(h: dict, name: str) -> tuple[int, int, list[int], int]:
    """(order, V, sizes, block_rows) of a sorted count stream's header, checked against its array list."""
    order = _order(h, name)
    V = len(h["vocab"])
    sizes, B = h.get("sizes"), h.get("block_rows")
    if not (isinstance(sizes, list) and len(sizes) == order and all(type(x) is int and x >= 0 for x in sizes)
            and sizes[0] == V):
        raise LmError(f"{name}: corrupt model header (field sizes)", _COUNTS_HINT)
    if type(B) is not int or B < 1:
        raise LmError(f"{name}: corrupt model header (field block_rows)", _COUNTS_HINT)
    if list(h["arrays"]) != sorted_array_names(sizes, B):
        raise LmError(f"{name}: corrupt counts file (its arrays are not the blocks its sizes give)", _COUNTS_HINT)
    return order, V, sizes, B


def check_sorted_block(V: int, n: int, rows: np.ndarray, counts: np.ndarray, name: str,
                       last: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A block of order n of a sorted count stream, checked (integer types, shapes, ids < V, counts
    >= 0, rows strictly increasing, after ``last``, the final row of the block before): (rows as
    int32, counts as int64)."""
    if rows.dtype.kind not in "iu" or counts.dtype.kind not in "iu" or rows.ndim != 2 or rows.shape[1] != n \
            or counts.shape != (rows.shape[0],):
        raise LmError(f"{name}: corrupt counts file (order {n} arrays disagree)", _COUNTS_HINT)
    if not _in_range(rows, V):
        raise LmError(f"{name}: corrupt counts file (order {n} ids out of range)", _COUNTS_HINT)
    if _negative(counts):
        raise LmError(f"{name}: corrupt counts file (order {n} has negative counts)", _COUNTS_HINT)
    probe = rows if last is None or rows.shape[0] == 0 else np.concatenate([last.reshape(1, n), rows[:1]])
    if not rows_increasing(rows) or (probe is not rows and not rows_increasing(probe)):
        raise LmError(f"{name}: corrupt counts file (order {n} n-grams not sorted or repeated)", _COUNTS_HINT)
    return rows.astype(np.int32, copy=False), counts.astype(np.int64, copy=False)


def counts_from_sorted_parts(h: dict, a: dict[str, np.ndarray], name: str) -> Counts:
    """A sorted count stream read whole: its blocks concatenated (already in order: no sort)."""
    order, V, sizes, B = sorted_layout_facts(h, name)
    try:
        ngrams = [np.arange(V, dtype=np.int32).reshape(V, 1)]
        counts = [check_sorted_block(V, 1, ngrams[0], a["counts_1"], name)[1]]
        for n in range(2, order + 1):
            k = -(-sizes[n - 1] // B)
            rows = [a[f"ngrams_{n}.{i}"] for i in range(k)]
            cnt = [a[f"counts_{n}.{i}"] for i in range(k)]
            if any(r.ndim != 2 for r in rows):
                raise LmError(f"{name}: corrupt counts file (order {n} arrays disagree)", _COUNTS_HINT)
            r = np.concatenate(rows) if k > 1 else (rows[0] if k else np.zeros((0, n), np.int32))
            c = np.concatenate(cnt) if k > 1 else (cnt[0] if k else np.zeros(0, np.int64))
            if r.shape[0] != sizes[n - 1]:
                raise LmError(f"{name}: corrupt counts file (order {n} has the wrong size)", _COUNTS_HINT)
            r, c = check_sorted_block(V, n, r, c, name)
            ngrams.append(r)
            counts.append(c)
    except KeyError as e:
        raise LmError(f"{name}: counts file lacks array {e.args[0]}", _COUNTS_HINT) from None
    return Counts(vocab=list(h["vocab"]), ngrams=ngrams, counts=counts, tokens=int(h.get("tokens", 0)),
                  sentences=int(h.get("sentences", 0)), provenance=dict(h.get("provenance", {})),
                  text=_text_kind(h, name))


# The query structure's arrays in the file (lmtools-model(5)): file name -> QueryTables field
QUERY_ARRAYS = {"query.tab": "tab", "query.base": "base", "query.slots": "slots", "query.unigram_lp": "uni_lp",
                "query.unigram_bo": "uni_bo", "query.word_hashes": "word_hashes", "query.word_slots": "word_slots",
                "query.word_pool": "word_pool", "query.word_offsets": "word_offsets"}


def ngram_to_parts(m: NGramModel, query_tables: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """File parts of an n-gram model; with ``query_tables``, its query structure too (the one it
    was read with when the arrays are those it was read with, else built now: numba)."""
    header = {"order": m.order, "vocab": list(m.vocab), "method": m.method, "info": m.info,
              "scores_only": bool(m.scores_only), "sizes": m.sizes(), "provenance": _provenance(m)}
    arrays = {}
    for n in range(1, m.order + 1):
        arrays[f"ngrams_{n}"] = _file_array(m.ngrams[n - 1], np.int32)
        arrays[f"logprob_{n}"] = _file_array(m.logprob[n - 1], np.float32)
        arrays[f"backoff_{n}"] = _file_array(m.backoff[n - 1], np.float32)
    if query_tables:
        q = _query_for_saving(m)
        header["query"] = {"layout": q.layout, "seed": int(q.seed), "closed": bool(q.closed)}
        for file_name, attr in QUERY_ARRAYS.items():
            arrays[file_name] = getattr(q, attr)
    return header, arrays


def _file_array(a, dtype):
    """An array as the model file stores it; one on disk (io.spill.DiskArray, a model estimated in a
    memory budget) is passed on as it is, for write_model to stream in chunks."""
    return a if hasattr(a, "chunks") else np.ascontiguousarray(a, dtype=dtype)


def _query_for_saving(m: NGramModel):
    from lmtools.ngram.model import QUERY_LAYOUT, build_query_tables, query_problem

    q = m.query
    if q is not None and q.layout == QUERY_LAYOUT and _same_arrays(q.source, model_arrays(m)) \
            and query_problem(q, m) is None:
        return q
    from lmtools import memory

    N = m.order
    sizes = m.sizes()
    memory.check(memory.estimate_query(sizes[1:]), f"building the query tables of the {N}-gram model "
                 f"({sum(sizes[1:]):,} n-grams of orders 2..{N})",
                 "leave them out (lm-train --no-query-tables), or use a smaller or pruned model")
    try:
        return build_query_tables(m, memory.zeros)
    except OverflowError as e:
        raise LmError(f"cannot build the model's query tables: {e}",
                      "leave them out (lm-train --no-query-tables) and write a trie (--trie)") from None
    except ValueError as e:
        raise LmError(f"cannot build the model's query tables: {e}", "recreate the model") from None


def _same_arrays(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def query_from_parts(h: dict, a: dict[str, np.ndarray], name: str):
    """The stored query structure of an n-gram model file (``QueryTables``), or None when it has
    none. A header entry without its arrays, or arrays without the entry, is a corrupt file;
    whether the arrays fit the model is checked where they are used (ngram.query.stored_tables)."""
    from lmtools.ngram.model import QueryTables

    meta = h.get("query")
    present = [k for k in QUERY_ARRAYS if k in a]
    if meta is None and not present:
        return None
    hint = "recreate the model, or rewrite it without them (lm-train MODEL --no-query-tables -o NEW.lm)"
    if not (isinstance(meta, dict) and type(meta.get("layout")) is int and type(meta.get("seed")) is int
            and type(meta.get("closed")) is bool):
        raise LmError(f"{name}: corrupt model header (field query)", hint)
    if len(present) != len(QUERY_ARRAYS):
        if meta["layout"] != _query_layout():  # another layout may have other arrays: rebuilt at load
            return QueryTables(meta["layout"], 0, False, *[np.zeros(0)] * 9)
        missing = next(k for k in QUERY_ARRAYS if k not in a)
        raise LmError(f"{name}: model file lacks array {missing}", hint)
    return QueryTables(meta["layout"], meta["seed"], meta["closed"],
                       *[a[k] for k in QUERY_ARRAYS])


def _query_layout() -> int:
    from lmtools.ngram.model import QUERY_LAYOUT

    return QUERY_LAYOUT


def ngram_from_parts(h: dict, a: dict[str, np.ndarray], name: str, lazy=None) -> NGramModel:
    order = _order(h, name)
    try:
        ngrams = [a[f"ngrams_{n}"] for n in range(1, order + 1)]
        logprob = [a[f"logprob_{n}"] for n in range(1, order + 1)]
        backoff = [a[f"backoff_{n}"] for n in range(1, order + 1)]
    except KeyError as e:
        raise LmError(f"{name}: model file lacks array {e.args[0]}", "recreate it with lm-train") from None
    _check_shapes(ngrams, logprob, name)
    _check_shapes(ngrams, backoff, name)
    if lazy is None:
        check_ngram_arrays(len(h["vocab"]), ngrams, logprob, backoff, name, bool(h.get("scores_only", False)))
    _check_sizes(h, [len(g) for g in ngrams], name)
    ngrams = [g.astype(np.int32, copy=False) for g in ngrams]
    if lazy is not None:  # a mapped file: each order checked when first read (CheckedOrders)
        ngrams, logprob, backoff = lazy(ngrams, logprob, backoff)
    model = NGramModel(vocab=list(h["vocab"]), ngrams=ngrams, logprob=logprob, backoff=backoff,
                       method=h.get("method", "?"), info=dict(h.get("info", {})),
                       provenance=dict(h.get("provenance", {})), scores_only=bool(h.get("scores_only", False)),
                       text=_text_kind(h, name), query=query_from_parts(h, a, name))
    if model.query is not None:
        model.query.source = model_arrays(model)
    return model


def _text_kind(h: dict, name: str) -> dict | None:
    from lmtools.io.text import header_text_kind

    return header_text_kind(h, name)


def _order(h: dict, name: str) -> int:
    order = h.get("order")
    if not isinstance(order, int) or order < 1 or not isinstance(h.get("vocab"), list):
        raise LmError(f"{name}: corrupt model header (order/vocabulary)", "recreate the model")
    return order


def _check_shapes(ngrams, values, name):
    for n, (g, v) in enumerate(zip(ngrams, values), start=1):
        if g.ndim != 2 or g.shape[1] != n or v.ndim != 1 or v.shape[0] != g.shape[0]:
            raise LmError(f"{name}: corrupt model file (order {n} arrays disagree)", "recreate the model")


# ----------------------------------------------------------------------------------------------
# What a checksum cannot vouch for: array contents (vectorised; run on every load, any size)

LOGPROB_TOLERANCE = 1e-4  # log10 p above 0 by more than this is not a probability


def _negative(a: np.ndarray) -> bool:
    return a.dtype.kind == "i" and a.size > 0 and int(a.min()) < 0


def _in_range(ids: np.ndarray, bound: int) -> bool:
    return ids.size == 0 or (int(ids.min()) >= 0 and int(ids.max()) < bound)


def rows_increasing(rows: np.ndarray) -> bool:
    """True when the rows of ``rows`` (m, n; ids >= 0) are strictly increasing in lexicographic order
    (sorted, no repeats). Vectorised: the ids of as many columns as fit are packed into one int64
    key per row, and the keys of neighbouring rows compared, block by block, where still tied."""
    m, n = rows.shape
    if m < 2:
        return True
    if int(rows.min()) < 0:
        raise ValueError("rows_increasing needs ids >= 0")
    if rows.dtype.itemsize > 4:
        rows = rows.astype(np.int64, copy=False)
    bits = max(1, int(rows.max()).bit_length())
    per = max(1, 63 // bits)
    tied = None  # neighbouring pairs equal in every column so far
    for start in range(0, n, per):
        key = rows[:, start].astype(np.int64)
        for k in range(start + 1, min(n, start + per)):
            np.left_shift(key, bits, out=key)
            np.bitwise_or(key, rows[:, k], out=key)
        before, after = key[:-1], key[1:]
        if tied is None:
            if (after < before).any():
                return False
            tied = after == before
        else:
            if (tied & (after < before)).any():
                return False
            tied &= after == before
        if not tied.any():
            return True
    return False


def check_ngram_arrays(V: int, ngrams, logprob, backoff, name: str, scores_only: bool = False,
                       first: int = 1) -> None:
    """Refuse n-gram arrays that no estimator writes: ids outside the vocabulary, rows not sorted or
    repeated, values that are not numbers (nan), log10 p = +inf or above 0, infinite backoffs.
    ``first``: the order of the first arrays given."""
    hint = "recreate the model"
    for n, (g, lp, bo) in enumerate(zip(ngrams, logprob, backoff), start=first):
        if g.dtype.kind not in "iu" or lp.dtype.kind != "f" or bo.dtype.kind != "f":
            raise LmError(f"{name}: corrupt model file (order {n} arrays have the wrong types)", hint)
        if not _in_range(g, V):
            raise LmError(f"{name}: corrupt model file (order {n} ids out of range)", hint)
        if not rows_increasing(g):
            raise LmError(f"{name}: corrupt model file (order {n} n-grams not sorted or repeated)", hint)
        if lp.size and (np.isnan(lp).any() or lp.max() == np.inf
                        or (not scores_only and lp.max() > LOGPROB_TOLERANCE)):
            raise LmError(f"{name}: corrupt model file (order {n} has log10 probabilities that are nan, "
                          f"+inf or above 0)", hint)
        if bo.size and not np.isfinite(bo).all():
            raise LmError(f"{name}: corrupt model file (order {n} has backoff weights that are nan or inf)", hint)


def _check_sizes(h: dict, sizes: list[int], name: str) -> None:
    if "sizes" in h and list(h["sizes"]) != list(sizes):
        raise LmError(f"{name}: corrupt model header (field sizes)", "recreate the model")


_FFNN_FLOAT = ("E", "W", "b", "U", "c", "Uc", "cc")
_FFNN_NDIM = {"E": 2, "W": 2, "b": 1, "U": 2, "c": 1, "Uc": 2, "cc": 1, "word_class": 1}


def check_ffnn_arrays(h: dict, a: dict[str, np.ndarray], name: str) -> None:
    """Refuse FFNN parameters of the wrong type or rank, not all of one float type, or not finite;
    shapes against each other are checked by FFNNModel.check."""
    hint = "retrain it with lm-train --method ffnn"
    want = ["E", "W", "b", "U", "c"] + (["word_class", "Uc", "cc"] if h.get("output_layer") == "class" else [])
    missing = [k for k in want if k not in a]
    if missing:
        raise LmError(f"{name}: corrupt ffnn model (missing array {missing[0]})", hint)
    dtype = a["E"].dtype
    for k in want:
        arr = a[k]
        if arr.ndim != _FFNN_NDIM[k]:
            raise LmError(f"{name}: corrupt ffnn model (array {k} has {arr.ndim} dimensions)", hint)
        if k == "word_class":
            if arr.dtype.kind not in "iu":
                raise LmError(f"{name}: corrupt ffnn model (word classes are not integers)", hint)
        elif arr.dtype != dtype or dtype.kind != "f":
            raise LmError(f"{name}: corrupt ffnn model (array {k} has type {arr.dtype}, not {dtype})", hint)
        elif arr.size and not np.isfinite(arr).all():
            raise LmError(f"{name}: corrupt ffnn model (array {k} holds nan or inf)", hint)
    if ("dim" in h and h["dim"] != a["E"].shape[1]) or ("hidden" in h and h["hidden"] != a["W"].shape[0]) \
            or ("Uc" in want and "classes" in h and h["classes"] != a["Uc"].shape[0]):
        raise LmError(f"{name}: corrupt model header (dimensions disagree with the arrays)", hint)


class _OrderChecks:
    """Which orders of a mapped n-gram model have been checked; ``check(k)`` checks order k + 1."""

    def __init__(self, check, orders: int):
        self.check, self.done = check, [False] * orders

    def ensure(self, k: int) -> None:
        if 0 <= k < len(self.done) and not self.done[k]:
            self.check(k)
            self.done[k] = True


class CheckedOrders(list):
    """The per-order arrays (ngrams, logprob or backoff) of an n-gram model mapped from a file: an
    order's arrays are checked (data checksums, then check_ngram_arrays) when first read from the
    list, by index, slice or iteration. Opening a model reads none of its large arrays; whatever
    reads an order whole (building query tables, sampling, writing ARPA) pays one pass more, and no
    kernel sees ids out of range. ``unchecked(k)`` hands out order k + 1 without the check, for code
    that is safe on any content (shapes, sizes)."""

    def __init__(self, items, checks: _OrderChecks):
        super().__init__(items)
        self._checks = checks

    def __getitem__(self, i):
        if isinstance(i, slice):
            for k in range(*i.indices(len(self))):
                self._checks.ensure(k)
        else:
            self._checks.ensure(i + len(self) if i < 0 else i)
        return list.__getitem__(self, i)

    def __iter__(self):
        for k in range(len(self)):
            yield self[k]

    def __reversed__(self):
        for k in range(len(self) - 1, -1, -1):
            yield self[k]

    def __add__(self, other):
        return list(self) + list(other)

    def copy(self):
        return list(self)

    def __reduce_ex__(self, protocol):  # copies and pickles are plain lists, checked
        return (list, (list(self),))

    def unchecked(self, k: int) -> np.ndarray:
        return list.__getitem__(self, k)


def _first_read_checks(h: dict, a: dict, name: str, mapped):
    """For ngram_from_parts: wraps the per-order lists of a mapped model in CheckedOrders."""
    V, scores_only = len(h["vocab"]), bool(h.get("scores_only", False))

    def check(k: int) -> None:
        n = k + 1
        parts = [f"ngrams_{n}", f"logprob_{n}", f"backoff_{n}"]
        mapped.check(parts)
        g, lp, bo = (a[p] for p in parts)  # as stored (before any cast)
        check_ngram_arrays(V, [g], [lp], [bo], name, scores_only, first=n)

    def wrap(ngrams, logprob, backoff):
        checks = _OrderChecks(check, len(ngrams))
        return CheckedOrders(ngrams, checks), CheckedOrders(logprob, checks), CheckedOrders(backoff, checks)

    return wrap


def ngram_trie_parts(m: NGramModel, q: int, b: int) -> tuple[dict, dict[str, np.ndarray]]:
    """File parts of an n-gram model in the compact trie form (lmtools.ngram.trie): the header of
    ngram_to_parts with a "trie" entry, and the trie arrays in place of the n-gram arrays and tables."""
    from lmtools.ngram.trie import build_trie

    header = {"order": m.order, "vocab": list(m.vocab), "method": m.method, "info": m.info,
              "scores_only": bool(m.scores_only), "sizes": m.sizes(), "provenance": _provenance(m)}
    header["trie"], arrays = build_trie(m, q, b)
    return header, arrays


def save_model(obj, stream: BinaryIO, query_tables: bool = True, trie: tuple[int, int] | None = None) -> None:
    """Write a Counts, NGramModel or FFNNModel to a binary stream; an n-gram model with its query
    structure unless ``query_tables`` is False (lmtools-model(5)), or with ``trie`` = (q, b) in the
    compact trie form alone."""
    if isinstance(obj, (Counts, Levels)):
        kind, (header, arrays) = "counts", counts_to_parts(obj)
    elif isinstance(obj, NGramModel) and trie is not None:
        kind, (header, arrays) = "ngram", ngram_trie_parts(obj, *trie)
    elif isinstance(obj, NGramModel):
        kind, (header, arrays) = "ngram", ngram_to_parts(obj, query_tables)
    elif hasattr(obj, "to_file_parts"):
        kind, (header, arrays) = "ffnn", obj.to_file_parts()
    else:
        raise TypeError(f"cannot save {type(obj).__name__}")
    text = getattr(obj, "text", None)
    if text is not None:  # how the text was read, for every consumer to apply (see header_text_kind)
        header["text"] = {"chars": bool(text["chars"]), "lower": bool(text["lower"])}
    write_model(stream, kind, header, arrays)


def model_from_parts(header: dict, arrays: dict, name: str, sort_counts: bool = True, mapped=None):
    """The model object of a model file's parts. ``mapped``: the ``MappedModel`` the parts are views
    of, whose large arrays' checksums are not checked yet. A counts or ffnn model is read whole when
    built, so they are checked first; an n-gram model's orders are checked when first read
    (CheckedOrders), so that opening one for queries reads none of them."""
    kind = header["kind"]
    if kind == "ngram" and "trie" in header:  # the compact form (lm-train --trie): no full arrays
        from lmtools.ngram.trie import trie_from_parts

        if mapped is not None:
            mapped.advise_random(["trie.packed"])
        model = trie_from_parts(header, arrays, name, mapped)
        model.text = _text_kind(header, name)
        return model
    if mapped is not None and kind != "ngram":
        mapped.check()
    if mapped is not None and kind == "ngram":
        mapped.advise_random(["query.tab"])  # probed at random: no read-ahead around each probe
    if kind == "ngram" and mapped is not None and mapped.unchecked:
        model = ngram_from_parts(header, arrays, name, lazy=_first_read_checks(header, arrays, name, mapped))
        if model.query is not None:
            # When first scored with (ngram.query): the checksums of the vocabulary-sized arrays (the
            # word table's ids index other arrays). The hash table itself (query.tab, most of the file)
            # is read only where a query probes it, so checking it at every start would cost what
            # mapping saves (seconds at 100M n-grams); its probes are bounded by base/slots (checked at
            # load), so damage there can give wrong scores but never a wild read. LMTOOLS_VERIFY=1 and
            # lm-info --verify check it.
            model.query.verify = lambda: mapped.check([k for k in QUERY_ARRAYS if k != "query.tab"])
        return model
    if kind == "counts":
        return counts_from_parts(header, arrays, name) if sort_counts else levels_from_parts(header, arrays, name)
    if kind == "ngram":
        return ngram_from_parts(header, arrays, name)
    from lmtools.nn.model import FFNNModel  # only FFNN users pay for importing it

    check_ffnn_arrays(header, arrays, name)
    model = FFNNModel.from_file_parts(header, arrays, name)
    model.text = _text_kind(header, name)
    return model


def load_levels(source: str = "-"):
    """Load a counts file without sorting it (for merging); refuses other kinds."""
    from lmtools.io.text import open_binary

    if source != "-" and os.path.isdir(source):  # count shards: always counts
        return read_source(source).build(sort_counts=False)
    name = "<stdin>" if source == "-" else str(source)
    stream = open_binary(source)
    try:
        header, arrays = read_model(stream, name)
    finally:
        if source != "-":
            stream.close()
    if header["kind"] != "counts":
        raise LmError(f"{name} holds a model of kind {header['kind']}, not counts", "give files written by lm-count")
    return levels_from_parts(header, arrays, name)


class Unread:
    """A model source whose kind is known but whose contents are not yet built: the parts of an
    lmtools model file (read and checked, or mapped: see read_source) or an ARPA file still to parse.

    Reading every source of a mixture this far first lets a caller choose how to start numba
    (kernels.skip_blas) and check the models' text kinds before any kernel is loaded."""

    def __init__(self, name: str, header: dict | None = None, arrays: dict | None = None, arpa=None, owner=None,
                 mapped=None):
        self.name, self.header, self.arrays = name, header, arrays
        self.arpa, self._owner = arpa, owner  # the ARPA stream, and the stream to close after it
        self.mapped = mapped  # the MappedModel the arrays are views of (a format-3 file given by path)

    @property
    def kind(self) -> str:
        """One of counts, ngram, ffnn (the header's kind) or arpa."""
        return "arpa" if self.header is None else self.header["kind"]

    def text_kind(self) -> dict | None:
        """How the model read its text ({"chars", "lower"}), None when it records none (ARPA)."""
        return None if self.header is None else _text_kind(self.header, self.name)

    def build(self, sort_counts: bool = True, warn=None):
        """The model object (``Counts``/``Levels``, ``NGramModel``, ``FFNNModel``)."""
        if self.header is not None:
            return model_from_parts(self.header, self.arrays, self.name, sort_counts, self.mapped)
        from lmtools.io.arpa import read_arpa

        try:
            return read_arpa(self.arpa, name=self.name, warn=warn)
        finally:
            self.close()

    def close(self) -> None:
        """Close an ARPA source left unread (a path's file; stdin stays open)."""
        if self._owner is not None:
            self._owner.close()
        self.arpa = self._owner = None


class ShardedUnread(Unread):
    """A directory of model shards: its meta file read and checked; ``build`` merges the partitions
    into the one NGramModel (lmtools.io.modelshards)."""

    def __init__(self, name: str, directory: str):
        from lmtools.io.modelshards import read_meta

        meta = read_meta(directory)
        super().__init__(name, {"kind": "ngram", "text": meta.get("text"), "provenance": meta.get("provenance")}, {})
        self.directory, self.meta = directory, meta

    def build(self, sort_counts: bool = True, warn=None):
        from lmtools.io.modelshards import read_model_shards

        return read_model_shards(self.directory, self.meta)


def read_source(source: str | BinaryIO = "-", verify: bool | None = None) -> Unread:
    """Open a model source (path, '-' for stdin, or a binary stream) and tell its format: the one
    detection of lmtools model files and ARPA files (plain, .gz, .bz2, .xz). A model file of the
    current format given by path is mapped (its arrays are views of the file: nothing is read but the
    header and the descriptors; see modelfile.map_model for what is checked at once, and ``verify``,
    default ``LMTOOLS_VERIFY``, to check every array now); any other model file is read whole here;
    an ARPA file is left open for ``Unread.build``."""
    from lmtools.io.text import open_binary

    name = "<stdin>" if source == "-" else str(getattr(source, "name", source))
    if isinstance(source, str) and source != "-" and os.path.isdir(source):
        from lmtools.io.modelshards import is_model_shard_dir

        if is_model_shard_dir(source):  # model shards (lm-train --dask --shards)
            return ShardedUnread(name, source)
        from lmtools.io.countshards import read_counts_parts  # count shards (lm-count --dask --shards)

        return Unread(name, *read_counts_parts(source))
    if isinstance(source, str) and source != "-":
        mapped = map_model(source, name, verify)
        if mapped is not None:
            return Unread(name, mapped.header, mapped.arrays, mapped=mapped)
    stream = open_binary(source) if isinstance(source, str) else source
    keep_open = False
    try:
        size = stream_size(stream)  # bytes in a regular file: what a model in it may claim
        head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
        if len(head) == 64 or (size is not None and len(head) >= size):
            whole = stream
        else:  # a pipe's peek may return fewer bytes than asked for before its end
            head, whole = _peek(stream, 64)
        if head.lstrip()[:6] == b"\\data\\":
            keep_open = True
            return Unread(name, arpa=whole, owner=None if stream is sys.stdin.buffer else stream)
        header, arrays = read_model(whole, name, size)  # refuses anything that is not a model file
        return Unread(name, header, arrays)
    finally:
        if not keep_open and stream is not sys.stdin.buffer:
            stream.close()


def load_model(source: str | BinaryIO = "-", sort_counts: bool = True, warn=None, verify: bool | None = None):
    """Load any model: an lmtools model file or an ARPA file (plain, .gz, .bz2, .xz), path or '-'.

    A counts file becomes ``Counts`` (sorted rows), or with ``sort_counts=False`` the ``Levels`` as
    stored (cheaper, for looking inside or merging). ``warn``: where the ARPA reader's warnings go
    (default: lmtools.messages.warn). A model file given by path is mapped (``read_source``);
    ``verify=True`` (or ``LMTOOLS_VERIFY=1``) checks all of it at once, as a streamed load does."""
    return read_source(source, verify).build(sort_counts, warn)


def _peek(stream, n: int) -> tuple[bytes, BinaryIO]:
    """The first n bytes of a stream (fewer at its end), and a stream that still starts with them."""
    head = b""
    while len(head) < n:
        part = stream.read(n - len(head))
        if not part:
            break
        head += part
    return head, io.BufferedReader(_Prefixed(head, stream), buffer_size=1 << 20)


class _Prefixed(io.RawIOBase):
    """Raw stream: some bytes already read, then the rest of the underlying stream."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read1(len(b)) if hasattr(self.rest, "read1") else self.rest.read(len(b))
        b[: len(data)] = data
        return len(data)
