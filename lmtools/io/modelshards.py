"""A directory of model shards (lm-train --dask --shards -o DIR): an n-gram model left as the
partitions the cluster estimated, each written by its worker, not merged into one file.

Layout (version 1; documented for users in lm-train(1), MODEL SHARDS):

- ``DIR/meta.json``: one JSON object, vocabulary-sized: ``format`` ("lmtools-model-shards"),
  ``version`` (1), ``order`` N, ``partitions`` P, ``partition_rule`` (as count shards: the
  next-to-last word, lmtools.ngram.partition), ``estimation`` (the options of the estimation, as
  lmtools.ngram.partitioned.plan takes them), ``vocab``, ``logprob1`` (the unigram level's log10
  probabilities, float32 values), ``info`` (the model's statistics, as a model file's header holds
  them), ``enlarged`` (katz's enlarged contexts per order 2..N), ``provenance``, ``text`` and
  ``arrays``: per partition, {"N-PART": [dtype, shape]} for the files below that exist.
- ``DIR/part-PPPPP-oN-PART.bin``: raw arrays (native byte order, C order) of partition P's order N:
  PART is ``rows`` (m, N) int32 (sorted), ``lp`` (m,) float32 log10 p, ``ctx`` (c, N-1) int32 the
  contexts of the partition's rows (sorted) and ``bo`` (c,) float32 their log10 backoffs.

A reader (io.models.read_source: lm-ppl, lm-score, lm-gen, lm-info, lm-train) merges the partitions
into the one model (lmtools.bounded.merge_results, the same merge lm-train --dask does before writing
one file): the same numbers as that file, held in the reader's memory.
"""

from __future__ import annotations

import json
import os
import tempfile

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


def meta_record(*, uni, glob, estimation: dict, enlarged: list, arrays: list[dict], provenance: dict) -> dict:
    """The meta file's record: ``arrays[p]`` is {(n, part): (dtype, shape)} of partition p's files."""
    return {"format": FORMAT, "version": VERSION, "order": int(glob.spec.order), "partitions": len(arrays),
            "partition_rule": PARTITION_RULE, "estimation": estimation, "vocab": list(uni.vocab),
            "logprob1": [float(x) for x in np.asarray(glob.logprob1, np.float32)],
            "info": _plain(glob.info), "enlarged1": int(glob.enlarged1), "enlarged": [int(x) for x in enlarged],
            "provenance": _plain(provenance), "text": uni.text,
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
    try:
        with open(os.path.join(directory, META), "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise LmError(f"{name}: is a directory, not model shards (no {META})", _HINT) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LmError(f"{name}: corrupt model shards ({META} is not JSON)", _HINT) from None
    except OSError as e:
        raise LmError(f"{name}: cannot read {META} ({e.strerror})", "check the directory") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LmError(f"{name}: {META} is not a model-shard record", _HINT)
    if meta.get("version") != VERSION:
        raise LmError(f"{name}: model shards of version {meta.get('version')}, this lmtools reads {VERSION}",
                      "upgrade lmtools or retrain")
    order, parts, vocab = meta.get("order"), meta.get("partitions"), meta.get("vocab")
    ok = (type(order) is int and order >= 1 and type(parts) is int and parts >= 1 and isinstance(vocab, list)
          and len(vocab) >= 3 and isinstance(meta.get("logprob1"), list) and len(meta["logprob1"]) == len(vocab)
          and isinstance(meta.get("arrays"), list) and len(meta["arrays"]) == parts
          and isinstance(meta.get("estimation"), dict) and isinstance(meta.get("info"), dict))
    if not ok:
        raise LmError(f"{name}: corrupt model shards ({META} fields)", _HINT)
    return meta


class _Kept:
    """The spill-space interface merge_results calls on its inputs: the shards' files are kept."""

    def delete(self, path: str) -> None:
        pass

    def wrote(self, n: int) -> None:
        pass


def read_model_shards(directory: str):
    """The one NGramModel of a model-shard directory (merged here, in memory)."""
    from lmtools.bounded import RESULT_PARTS, merge_results
    from lmtools.io.countstream import SpillDir
    from lmtools.io.spill import DiskArray
    from lmtools.ngram.partitioned import Globals, Unigrams, plan

    name = directory
    meta = read_meta(directory)
    N, P, V = meta["order"], meta["partitions"], len(meta["vocab"])
    try:
        spec = plan(**meta["estimation"])
    except (TypeError, LmError):
        raise LmError(f"{name}: corrupt model shards ({META} field estimation)", _HINT) from None
    if spec.order != N:
        raise LmError(f"{name}: corrupt model shards ({META}: order)", _HINT)
    glob = Globals(spec=spec, vocab_size=V, p1=None, logprob1=np.asarray(meta["logprob1"], np.float32), params=[],
                   info=dict(meta["info"]), enlarged1=int(meta.get("enlarged1", 0)))
    uni = Unigrams(vocab=list(meta["vocab"]), counts=np.zeros(V, np.int64), order=N, tokens=0, sentences=0,
                   provenance={}, text=meta.get("text"))
    kept = _Kept()
    results: dict = {}
    for p, arrays in enumerate(meta["arrays"]):
        for n in range(2, N + 1):
            if f"{n}-rows" not in arrays:
                continue
            row = []
            for what in RESULT_PARTS:
                entry = arrays.get(f"{n}-{what}")
                if entry is None:
                    row.append(None)
                    continue
                path = os.path.join(directory, result_file(p, n, what))
                a = DiskArray(path, np.dtype(entry[0]), tuple(entry[1]), kept)
                try:
                    size = os.path.getsize(path)
                except OSError:
                    raise LmError(f"{name}: model shard {result_file(p, n, what)} is missing", _HINT) from None
                if size != a.nbytes:
                    raise LmError(f"{name}: model shard {result_file(p, n, what)} is cut short or too long "
                                  f"({size} bytes, the meta file says {a.nbytes})", _HINT)
                row.append(a)
            results[(p, n)] = row
    with SpillDir(tempfile.gettempdir()) as space:
        try:
            model = merge_results(results, uni, glob, list(meta.get("enlarged", [])), P, space, 1 << 16)
            model.ngrams = [_in_memory(a) for a in model.ngrams]
            model.logprob = [_in_memory(a) for a in model.logprob]
            model.backoff = [_in_memory(a) for a in model.backoff]
        except OSError as e:
            raise LmError(f"{name}: cannot read model shards ({e})", _HINT) from None
    model.provenance = dict(meta.get("provenance") or {})
    return model


def _in_memory(a):
    return a.load() if hasattr(a, "load") else a
