"""Summing count files: counts are sums, so shards counted apart merge exactly.

Merging keeps lm-count's first-occurrence order: merge(count(A), count(B)) holds the same arrays
as count(A then B), so shards can be counted in parallel (xargs -P, a cluster) and summed.
"""

from __future__ import annotations

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.counting import Levels, OrderTable
from lmtools.vocab import SPECIALS


# Below this many n-grams of orders >= 2 (all inputs together) the sums are taken in plain Python:
# a dict does them in well under 0.1 s, where numba's import and its first kernel cost 0.5-1 s.
SMALL_MERGE = 100_000


def merge_levels(parts: list[Levels], names: list[str] | None = None, small: bool | None = None) -> Levels:
    """The sum of several count sets of the same order. ``small``: sum in plain Python (default:
    when the inputs hold fewer than SMALL_MERGE n-grams); both ways give the same arrays."""
    if not parts:
        raise LmError("nothing to merge", "give two or more count files")
    names = names or [f"input {i + 1}" for i in range(len(parts))]
    order = len(parts[0].levels) + 1
    for p, name in zip(parts, names):
        if len(p.levels) + 1 != order:
            raise LmError(f"{name} has order {len(p.levels) + 1}, {names[0]} has order {order}",
                          "merge count files of the same order (count all shards with the same -n)")
    reading = check_same_reading(parts, names)
    from lmtools import memory

    sizes = [sum(int(p.levels[k][0].shape[0]) for p in parts) for k in range(order - 1)]
    memory.check(memory.estimate_counting_tables(sizes), f"merging {len(parts)} count files "
                 f"({sum(sizes):,} n-grams of orders 2..{order})",
                 "merge fewer files at a time, or count with a smaller order (lm-count -n)")
    if small is None:
        small = sum(sizes) < SMALL_MERGE
    vocab = list(SPECIALS)
    index = {w: i for i, w in enumerate(vocab)}
    uni = np.zeros(0, np.int64)
    tables = [_DictTable() if small else OrderTable() for _ in range(order - 1)]
    tokens = sentences = 0
    for p in parts:
        remap = np.empty(len(p.vocab), np.int64)
        for i, w in enumerate(p.vocab):
            j = index.get(w)
            if j is None:
                j = index[w] = len(vocab)
                vocab.append(w)
            remap[i] = j
        if len(vocab) > uni.shape[0]:
            uni = np.concatenate([uni, np.zeros(len(vocab) - uni.shape[0], np.int64)])
        np.add.at(uni, remap, p.unigrams)
        prev_map = remap
        for t, (prefix, word, count) in zip(tables, p.levels):
            args = (prev_map[prefix].astype(np.int32), remap[word].astype(np.int32), count.astype(np.int64))
            prev_map = t.add(*args) if small else _add_to_table(t, *args)
        tokens += p.tokens
        sentences += p.sentences
    text = {k: reading[k] for k in ("chars", "lower")} if "chars" in reading else None
    merged = Levels(vocab, uni, [t.arrays() for t in tables], tokens, sentences, text=text)
    merged.provenance = {"options": {k: v for k, v in reading.items() if k not in ("chars", "lower")}}
    if text is not None:
        merged.provenance["options"].update(text)
    return merged


class _DictTable:
    """The sums of one order in a dict, ids in order of first occurrence: the kernel's
    ``add_weighted`` on an ``OrderTable``, in plain Python."""

    def __init__(self):
        self.ids: dict[tuple[int, int], int] = {}
        self.prefix: list[int] = []
        self.word: list[int] = []
        self.count: list[int] = []

    def add(self, pref_in: np.ndarray, word_in: np.ndarray, weight_in: np.ndarray) -> np.ndarray:
        out = []
        ids, prefix, word, count = self.ids, self.prefix, self.word, self.count
        for p, w, c in zip(pref_in.tolist(), word_in.tolist(), weight_in.tolist()):
            if p < 0:
                out.append(-1)
                continue
            g = ids.get((p, w))
            if g is None:
                g = ids[(p, w)] = len(prefix)
                prefix.append(p)
                word.append(w)
                count.append(c)
            else:
                count[g] += c
            out.append(g)
        return np.array(out, np.int32)

    def arrays(self):
        return (np.array(self.prefix, np.int32), np.array(self.word, np.int32), np.array(self.count, np.int64))


def _add_to_table(t: OrderTable, pref_in: np.ndarray, word_in: np.ndarray, weight_in: np.ndarray) -> np.ndarray:
    from lmtools.kernels.count import add_weighted

    t.ensure_room(pref_in.shape[0])
    out = np.empty(pref_in.shape[0], np.int32)
    t.n = add_weighted(pref_in, word_in, weight_in, t.table, t.shift, t.prefix, t.word, t.count, t.n, out)
    return out


# How a shard's text was read and its vocabulary chosen (lm-count's options): shards that differ in
# any of these do not sum to the counts of their concatenation, so they are not merged.
READING = (("chars", "--chars"), ("lower", "--lower"), ("min_count", "--min-count"), ("vocab_size", "--vocab-size"),
           ("vocab", "--vocab"))


def _reading(p: Levels) -> dict:
    """The reading options a counts file records (its text kind, lm-count's options); unknown ones absent."""
    prov = p.provenance if isinstance(p.provenance, dict) else {}
    opts = prov.get("options") if isinstance(prov.get("options"), dict) else {}
    out = {k: opts[k] for k, _ in READING if k in opts and k not in ("chars", "lower")}
    if getattr(p, "text", None) is not None:
        out["chars"], out["lower"] = bool(p.text["chars"]), bool(p.text["lower"])
    if out.get("vocab") is not None:  # a closed vocabulary: the same words, wherever its file was
        out["vocab"] = sorted(p.vocab)
    return out


def check_same_reading(parts: list[Levels], names: list[str]) -> dict:
    """The reading options all parts share (LmError naming two files that differ); unknown ones are left out."""
    readings = [_reading(p) for p in parts]
    common: dict = {}
    for key, flag in READING:
        known = [(n, r[key]) for n, r in zip(names, readings) if key in r]
        for n, v in known[1:]:
            if v == known[0][1]:
                continue
            if key == "vocab" and v is not None and known[0][1] is not None:
                raise LmError(f"{known[0][0]} and {n} were counted with different --vocab words",
                              "count every shard with the same options before merging")
            raise LmError(f"{known[0][0]} was counted {_with(flag, known[0][1])}, {n} {_with(flag, v)}",
                          "count every shard with the same options before merging")
        if known:
            common[key] = known[0][1]
    if common.get("vocab") is not None:
        common["vocab"] = True  # (the merged provenance says a closed vocabulary was used, not its words)
    return common


def _with(flag: str, value) -> str:
    if isinstance(value, bool):
        return f"with {flag}" if value else f"without {flag}"
    if flag == "--vocab":
        return "with --vocab" if value is not None else "without --vocab"
    return f"with {flag} {value}"
