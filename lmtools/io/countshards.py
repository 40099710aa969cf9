"""A directory of count shards (lm-count --dask --shards -o DIR): the counts of orders 1..N split
into P partitions by the next-to-last word of each n-gram (lmtools.ngram.partition), one file each.

Layout (version 1; documented for users in lm-count(1)):

- ``DIR/meta.json``: one JSON object, vocabulary-sized:
  ``format`` ("lmtools-count-shards"), ``version`` (1), ``order`` N, ``partitions`` P,
  ``partition_rule`` ("next-to-last word, lmtools.ngram.partition"), ``vocab`` (the words, id =
  position; ids 0, 1, 2 are <unk>, <s>, </s>), ``unigrams`` (the count of every word, id order),
  ``tokens``, ``sentences``, ``text`` ({"chars": bool, "lower": bool}), ``provenance`` (program,
  version, options, inputs), ``sizes`` (per partition, the number of n-grams of orders 2..N) and
  ``files`` (the partition files' names, partition order).
- ``DIR/part-00000.npz`` .. ``part-{P-1}.npz``: numpy's .npz (an uncompressed zip; every member
  carries a CRC-32 that is checked when read) holding, for n = 2..N, ``ngrams_n`` (m, n) int32 (word
  ids oldest first, rows sorted lexicographically, no repeats) and ``counts_n`` (m,) int64: the n-grams
  of the partition and their counts. Each file is a sorted count stream of its partition.

The counts of the whole text are the meta file's unigrams and, per order, the union of the
partitions (disjoint sets). ``read_counts_parts`` gives them as the parts of one counts model file, so
every reader of counts (io.models.read_source: lm-train, lm-merge, lm-ppl, lm-info) takes a shard
directory as it takes a counts file. A directory being written is ``.NAME.XXXX.part`` beside its final
name and renamed when complete (lmtools.cli.output.atomic_directory).
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import BinaryIO

import numpy as np

from lmtools.errors import LmError

FORMAT = "lmtools-count-shards"
VERSION = 1
META = "meta.json"
PARTITION_RULE = "next-to-last word, lmtools.ngram.partition"
_HINT = "recreate it with lm-count --dask --shards"


def partition_file(p: int) -> str:
    return f"part-{p:05d}.npz"


def is_shard_dir(path: str) -> bool:
    """True when ``path`` is a directory with a shard meta file."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, META))


def write_partition(stream: BinaryIO, rows: list[np.ndarray], counts: list[np.ndarray]) -> list[int]:
    """Write one partition (orders 2..N: sorted rows and counts) to a binary stream; returns its sizes."""
    arrays = {}
    for k, (r, c) in enumerate(zip(rows, counts)):
        n = k + 2
        arrays[f"ngrams_{n}"] = np.ascontiguousarray(r, dtype=np.int32).reshape(-1, n)
        arrays[f"counts_{n}"] = np.ascontiguousarray(c, dtype=np.int64)
    np.savez(stream, **arrays)
    return [int(len(c)) for c in counts]


def meta_record(*, vocab: list[str], unigrams: np.ndarray, tokens: int, sentences: int, order: int,
                sizes: list[list[int]], text: dict | None, provenance: dict) -> dict:
    from lmtools import __version__

    prov = dict(provenance)
    prov.setdefault("version", __version__)
    return {"format": FORMAT, "version": VERSION, "order": int(order), "partitions": len(sizes),
            "partition_rule": PARTITION_RULE, "vocab": list(vocab), "unigrams": [int(x) for x in unigrams],
            "tokens": int(tokens), "sentences": int(sentences), "text": text, "provenance": prov,
            "sizes": sizes, "files": [partition_file(p) for p in range(len(sizes))]}


def write_meta(stream: BinaryIO, meta: dict) -> None:
    stream.write(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    stream.write(b"\n")


# ----------------------------------------------------------------------------------------------
# Reading


def read_meta_json(path: str, name: str, *, what: str, record: str, fmt: str, version: int, hint: str,
                   not_hint: str, redo: str) -> dict:
    """A shard directory's meta file (count shards, model shards): JSON of the format ``fmt`` and
    ``version``, else one LmError naming ``name``."""
    try:
        with open(path, "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise LmError(f"{name}: is a directory, not a directory of {what} (no {META})", not_hint) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LmError(f"{name}: corrupt {what} ({META} is not JSON)", hint) from None
    except OSError as e:
        raise LmError(f"{name}: cannot read {META} ({e.strerror})", "check the directory") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise LmError(f"{name}: {META} is not a {record}", hint)
    if meta.get("version") != version:
        raise LmError(f"{name}: {what} of version {meta.get('version')}, this lmtools reads {version}",
                      f"upgrade lmtools or {redo}")
    return meta


def read_meta(directory: str) -> dict:
    """The meta record of a shard directory, checked."""
    name = directory
    path = os.path.join(directory, META)
    meta = read_meta_json(path, name, what="count shards", record="count-shard record", fmt=FORMAT, version=VERSION,
                          hint=_HINT, not_hint="give a model file, or a directory written by lm-count --dask --shards",
                          redo="recount")

    def bad(field):
        return LmError(f"{name}: corrupt count shards ({META} field {field})", _HINT)

    order, parts, vocab, uni = meta.get("order"), meta.get("partitions"), meta.get("vocab"), meta.get("unigrams")
    if not (type(order) is int and order >= 1):
        raise bad("order")
    if not (type(parts) is int and parts >= 1):
        raise bad("partitions")
    if not (isinstance(vocab, list) and len(vocab) >= 3 and all(isinstance(w, str) for w in vocab)):
        raise bad("vocab")
    if not (isinstance(uni, list) and len(uni) == len(vocab) and all(type(c) is int and c >= 0 for c in uni)):
        raise bad("unigrams")
    for f in ("tokens", "sentences"):
        if not (type(meta.get(f)) is int and meta[f] >= 0):
            raise bad(f)
    files, sizes = meta.get("files"), meta.get("sizes")
    if not (isinstance(files, list) and len(files) == parts and all(isinstance(x, str) and os.sep not in x
                                                                     and x not in ("", ".", "..") for x in files)):
        raise bad("files")
    if not (isinstance(sizes, list) and len(sizes) == parts
            and all(isinstance(s, list) and len(s) == order - 1 and all(type(x) is int and x >= 0 for x in s)
                    for s in sizes)):
        raise bad("sizes")
    text = meta.get("text")
    if text is not None and not (isinstance(text, dict) and isinstance(text.get("chars"), bool)
                                 and isinstance(text.get("lower"), bool)):
        raise bad("text")
    if not isinstance(meta.get("provenance", {}), dict):
        raise bad("provenance")
    return meta


def read_partition(directory: str, p: int, meta: dict | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Partition ``p`` of a shard directory: (rows per order 2..N, counts per order), checked (types,
    shapes, sizes against the meta record, ids in the vocabulary, rows sorted without repeats)."""
    from lmtools.kernels.smooth import is_sorted_unique

    meta = meta or read_meta(directory)
    order, V = meta["order"], len(meta["vocab"])
    fname = meta["files"][p]
    path = os.path.join(directory, fname)
    shown = f"{directory}/{fname}"
    rows, counts = [], []
    try:
        with np.load(path, allow_pickle=False) as z:
            for n in range(2, order + 1):
                r, c = z[f"ngrams_{n}"], z[f"counts_{n}"]
                if r.dtype != np.int32 or r.ndim != 2 or r.shape[1] != n or c.dtype != np.int64 or c.shape != (len(r),):
                    raise LmError(f"{shown}: corrupt count shard (order {n} arrays)", _HINT)
                if len(r) != meta["sizes"][p][n - 2]:
                    raise LmError(f"{shown}: corrupt count shard (order {n} has {len(r)} n-grams, the meta "
                                  f"record says {meta['sizes'][p][n - 2]})", _HINT)
                if len(r) and (int(r.min()) < 0 or int(r.max()) >= V or int(c.min()) < 0):
                    raise LmError(f"{shown}: corrupt count shard (order {n} ids or counts out of range)", _HINT)
                if len(r) > 1 and not is_sorted_unique(r):
                    raise LmError(f"{shown}: corrupt count shard (order {n} rows not sorted or repeated)", _HINT)
                rows.append(r)
                counts.append(c)
    except FileNotFoundError:
        raise LmError(f"{shown}: missing count shard", _HINT) from None
    except KeyError as e:
        raise LmError(f"{shown}: corrupt count shard (lacks {e.args[0]})", _HINT) from None
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise LmError(f"{shown}: cannot read ({e.strerror})", "check the directory") from None
        raise LmError(f"{shown}: corrupt count shard ({e})", _HINT) from None
    return rows, counts


def _sorted_union(rows: list[np.ndarray], counts: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted partitions of one order as one sorted array."""
    if not rows:
        return np.zeros((0, n), np.int32), np.zeros(0, np.int64)
    r = np.concatenate(rows)
    c = np.concatenate(counts)
    if len(r) < 2:
        return r, c
    order = np.lexsort(r.T[::-1])
    return np.ascontiguousarray(r[order]), c[order]


def read_counts_parts(directory: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The shards as the (header, arrays) of one counts model file (lmtools-model(5): per order n >= 2,
    each n-gram's prefix row in order n-1 and its last word), for io.models to build as it builds a
    counts file: the union of the partitions, order by order."""
    from lmtools.kernels.smooth import prefix_index

    meta = read_meta(directory)
    order, V = meta["order"], len(meta["vocab"])
    parts = [read_partition(directory, p, meta) for p in range(meta["partitions"])]
    arrays = {"counts_1": np.asarray(meta["unigrams"], np.int64)}
    prev = np.arange(V, dtype=np.int32).reshape(V, 1)
    sizes = [V]
    for n in range(2, order + 1):
        rows, counts = _sorted_union([p[0][n - 2] for p in parts], [p[1][n - 2] for p in parts], n)
        prefix = prefix_index(rows, prev) if len(rows) else np.zeros(0, np.int64)
        if len(rows) and (int(prefix.min()) < 0 or (len(rows) > 1 and not _strictly_increasing(rows))):
            raise LmError(f"{directory}: corrupt count shards (order {n} n-grams repeated across partitions or "
                          f"without their order {n - 1} prefix)", _HINT)
        arrays[f"prefix_{n}"] = prefix.astype(np.int32)
        arrays[f"word_{n}"] = np.ascontiguousarray(rows[:, -1])
        arrays[f"counts_{n}"] = counts
        sizes.append(len(rows))
        prev = rows
    header = {"kind": "counts", "order": order, "vocab": list(meta["vocab"]), "tokens": meta["tokens"],
              "sentences": meta["sentences"], "sizes": sizes, "provenance": dict(meta.get("provenance", {}))}
    if meta.get("text") is not None:
        header["text"] = dict(meta["text"])
    return header, arrays


def _strictly_increasing(rows: np.ndarray) -> bool:
    from lmtools.kernels.smooth import is_sorted_unique

    return bool(is_sorted_unique(rows))
