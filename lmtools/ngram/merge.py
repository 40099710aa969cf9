"""Summing count files: counts are sums, so shards counted apart merge exactly.

Merging keeps lm-count's first-occurrence order: merge(count(A), count(B)) holds the same arrays
as count(A then B), so shards can be counted in parallel (xargs -P, a cluster) and summed.
"""

from __future__ import annotations

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.counting import Levels, _OrderTable
from lmtools.vocab import SPECIALS


def merge_levels(parts: list[Levels], names: list[str] | None = None) -> Levels:
    """The sum of several count sets of the same order."""
    from lmtools.kernels.count import add_weighted

    if not parts:
        raise LmError("nothing to merge", "give two or more count files")
    names = names or [f"input {i + 1}" for i in range(len(parts))]
    order = len(parts[0].levels) + 1
    for p, name in zip(parts, names):
        if len(p.levels) + 1 != order:
            raise LmError(f"{name} has order {len(p.levels) + 1}, {names[0]} has order {order}",
                          "merge count files of the same order (count all shards with the same -n)")
    vocab = list(SPECIALS)
    index = {w: i for i, w in enumerate(vocab)}
    uni = np.zeros(0, np.int64)
    tables = [_OrderTable() for _ in range(order - 1)]
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
            t.ensure_room(prefix.shape[0])
            out = np.empty(prefix.shape[0], np.int32)
            t.n = add_weighted(prev_map[prefix].astype(np.int32), remap[word].astype(np.int32),
                               count.astype(np.int64), t.table, t.shift, t.prefix, t.word, t.count, t.n, out)
            prev_map = out
        tokens += p.tokens
        sentences += p.sentences
    return Levels(vocab, uni, [t.arrays() for t in tables], tokens, sentences)
