"""A directory of model shards (lm-train --dask --shards -o DIR): an n-gram model left as the
partitions the cluster estimated, each written by its worker, not merged into one file.

Layout (version 1; documented for users in lm-train(1), MODEL SHARDS):

- ``DIR/meta.json``: one JSON object, vocabulary-sized: ``format`` ("lmtools-model-shards"),
  ``version`` (1), ``order`` N, ``partitions`` P, ``partition_rule`` (as count shards: the
  next-to-last word, lmtools.ngram.partition), ``method``, ``form`` (interpolated, backoff or
  stupid), ``alpha`` (stupid backoff's constant), ``pruned`` (count cutoffs applied: a context may
  then be absent from its order), ``vocab``, ``logprob1`` (the unigram level's log10 probabilities,
  float32 values), ``info`` (the model's statistics, as a model file's header holds them),
  ``provenance``, ``text`` and ``arrays``: per partition, {"N-PART": [dtype, shape]} for the files
  below that exist.
- ``DIR/part-PPPPP-oN-PART.bin``: raw arrays (native byte order, C order) of partition P's order N:
  PART is ``rows`` (m, N) int32 (sorted), ``lp`` (m,) float32 log10 p, ``ctx`` (c, N-1) int32 the
  contexts of the partition's rows (sorted) and ``bo`` (c,) float32 their log10 backoffs.

A reader (io.models.read_source: lm-ppl, lm-score, lm-gen, lm-info, lm-train) merges the partitions
into the one model in memory (``read_model_shards``: per order the union of the partitions' rows,
sorted, and the contexts' backoffs joined onto the rows of the order below): the arrays lm-train
--dask writes as one file (lmtools.bounded.merge_results, the same merge in blocks), held in the
reader's memory.
"""

from __future__ import annotations

import json
import os

import numpy as np

from lmtools.errors import LmError

FORMAT = "lmtools-model-shards"
VERSION = 1
META = "meta.json"
PARTITION_RULE = "next-to-last word, lmtools.ngram.partition"
_HINT = "recreate it with lm-train --dask --shards"


def result_file(p: int, n: int, what: str) -> str:
    return f"part-{p:05d}-o{n}-{what}.bin"


def is_model_shard_dir(path: str) -> bool:
    """True when ``path`` is a directory whose meta file says model shards."""
    try:
        with open(os.path.join(path, META), "rb") as f:
            return json.loads(f.read().decode("utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def meta_record(*, vocab: list, text, order: int, method: str, form: str, alpha: float, pruned: bool,
                logprob1, info: dict, provenance: dict, arrays: list[dict]) -> dict:
    """The meta file's record: ``arrays[p]`` is {(n, part): (dtype, shape)} of partition p's files."""
    return {"format": FORMAT, "version": VERSION, "order": int(order), "partitions": len(arrays),
            "partition_rule": PARTITION_RULE, "method": method, "form": form, "alpha": float(alpha),
            "pruned": bool(pruned), "vocab": list(vocab),
            "logprob1": [float(x) for x in np.asarray(logprob1, np.float32)], "info": _plain(info),
            "provenance": _plain(provenance), "text": text,
            "arrays": [{f"{n}-{what}": [dt, list(shape)] for (n, what), (dt, shape) in a.items()} for a in arrays]}


def _plain(x):
    """A JSON-able copy (numpy scalars and arrays as Python numbers and lists)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    return x


def write_meta(directory: str, meta: dict) -> None:
    with open(os.path.join(directory, META), "wb") as f:
        f.write(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        f.write(b"\n")


def read_meta(directory: str) -> dict:
    name = directory
    from lmtools.io.countshards import read_meta_json

    meta = read_meta_json(os.path.join(directory, META), name, what="model shards", record="model-shard record",
                          fmt=FORMAT, version=VERSION, hint=_HINT, not_hint=_HINT, redo="retrain")
    order, parts, vocab = meta.get("order"), meta.get("partitions"), meta.get("vocab")
    ok = (type(order) is int and order >= 1 and type(parts) is int and parts >= 1 and isinstance(vocab, list)
          and len(vocab) >= 3 and isinstance(meta.get("logprob1"), list) and len(meta["logprob1"]) == len(vocab)
          and isinstance(meta.get("arrays"), list) and len(meta["arrays"]) == parts
          and isinstance(meta.get("method"), str) and meta.get("form") in ("interpolated", "backoff", "stupid")
          and isinstance(meta.get("alpha"), (int, float)) and isinstance(meta.get("info"), dict))
    if not ok:
        raise LmError(f"{name}: corrupt model shards ({META} fields)", _HINT)
    return meta


def read_model_shards(directory: str, meta: dict | None = None):
    """The one NGramModel of a model-shard directory, merged here in memory (``meta``: its meta
    record as ``read_meta`` gave it, when the caller has read it already)."""
    import math

    from lmtools.ngram.model import NGramModel

    name = directory
    meta = read_meta(directory) if meta is None else meta
    N, V = meta["order"], len(meta["vocab"])
    stupid = meta["form"] == "stupid"
    ngrams = [np.arange(V, dtype=np.int32).reshape(V, 1)]
    logprob = [np.asarray(meta["logprob1"], np.float32)]
    backoff = []
    for n in range(1, N + 1):
        if n >= 2:
            rows, lp = _union(name, directory, meta, n, ("rows", "lp"), n)
            ngrams.append(rows)
            logprob.append(lp)
        rows = ngrams[-1]
        if n == N:
            backoff.append(np.zeros(rows.shape[0], np.float32))
        elif stupid:
            backoff.append(np.full(rows.shape[0], math.log10(meta["alpha"]), np.float32))
        else:
            ctx, bo = _union(name, directory, meta, n + 1, ("ctx", "bo"), n)  # order n+1's contexts
            backoff.append(_join(name, rows, ctx, bo, check=not meta["pruned"]))
    model = NGramModel(vocab=list(meta["vocab"]), ngrams=ngrams, logprob=logprob, backoff=backoff,
                       method=meta["method"], info=dict(meta["info"]), provenance=dict(meta.get("provenance") or {}),
                       scores_only=stupid)
    model.text = meta.get("text")
    return model


def _union(name: str, directory: str, meta: dict, n: int, parts: tuple, width: int):
    """Order n's arrays ``parts`` of every partition, merged in the order of the first (rows of
    ``width`` ids, sorted within each partition; the partitions are disjoint)."""
    got: list = [[] for _ in parts]
    for p, arrays in enumerate(meta["arrays"]):
        if f"{n}-{parts[0]}" not in arrays:
            continue
        for i, what in enumerate(parts):
            entry = arrays.get(f"{n}-{what}")
            if entry is None:
                raise LmError(f"{name}: corrupt model shards ({META}: partition {p} has no {n}-{what})", _HINT)
            got[i].append(_read(name, os.path.join(directory, result_file(p, n, what)), entry))
    if not got[0]:
        return (np.zeros((0, width), np.int32),) + tuple(np.zeros(0, np.float32) for _ in parts[1:])
    from lmtools.kernels.partitioned import merge_sorted

    return merge_sorted(zip(*got))  # each partition's rows are sorted: a k-way merge


def _read(name: str, path: str, entry) -> np.ndarray:
    try:
        dtype, shape = np.dtype(entry[0]), tuple(int(x) for x in entry[1])
    except (TypeError, ValueError, IndexError):
        raise LmError(f"{name}: corrupt model shards ({META}: array of {os.path.basename(path)})", _HINT) from None
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    try:
        size = os.path.getsize(path)
    except OSError:
        raise LmError(f"{name}: model shard {os.path.basename(path)} is missing", _HINT) from None
    if size != want:
        raise LmError(f"{name}: model shard {os.path.basename(path)} is cut short or too long ({size} bytes, "
                      f"the meta file says {want})", _HINT)
    try:
        return np.fromfile(path, dtype=dtype).reshape(shape)
    except OSError as e:
        raise LmError(f"{name}: cannot read model shard {os.path.basename(path)} ({e.strerror or e})", _HINT) from None


def _join(name: str, rows: np.ndarray, ctx: np.ndarray, bo: np.ndarray, check: bool) -> np.ndarray:
    """The backoff of every row: its context's where it is one (every context is a row of its order,
    unless count cutoffs removed it), else 0."""
    from lmtools.kernels.partitioned import find_rows, first_id_starts

    out = np.zeros(rows.shape[0], np.float32)
    if ctx.shape[0] == 0:
        return out
    pos = find_rows(np.ascontiguousarray(ctx), rows, first_id_starts(rows)) if rows.shape[0] else \
        np.full(ctx.shape[0], -1, np.int64)
    found = pos >= 0
    if check and not found.all():
        raise LmError(f"{name}: corrupt model shards (contexts of order {ctx.shape[1]} that are not n-grams)", _HINT)
    out[pos[found]] = bo[found]
    return out
