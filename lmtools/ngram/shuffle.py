"""Counting as a map and a shuffle (lm-count --dask): the computations of each task, without a scheduler.

1. map: each byte range of the text is counted on its own with lm-count's code path (io.text's
   TokenTable, NgramCounter's kernels), ids local to the range in order of first occurrence
   (``count_range``);
2. vocabulary: lm-count gives ids in order of first occurrence in the concatenated text, so the
   global vocabulary is the ranges' local vocabularies joined in input order, each word where it is
   first seen; ``global_vocabulary`` computes it and each range's local -> global id map from the
   ranges' vocabularies alone (vocabulary-sized). --min-count, --vocab-size and --vocab then work on
   the summed unigram counts (``restrict``), exactly as lm-count applies them;
3. split: each range maps its n-grams (orders >= 2) to the final ids and splits them by
   ``ngram.partition.partition_of_rows`` (a hash of the next-to-last word) into P partitions
   (``split_range``);
4. reduce: the pieces of one partition from every range are summed (``sum_pieces``): sorted rows,
   no repeats. Partitions are disjoint, so the counts of order n are the union of the partitions'.

Nothing here holds all the counts: a range's counts, a piece, a partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from lmtools.ngram.partition import partition_of_rows

Piece = list[tuple[np.ndarray, np.ndarray]]  # per order 2..N: (rows (m, n) int32, counts (m,) int64)


@dataclass
class RangeCounts:
    """The counts of one range, ids local to it (first occurrence in the range)."""

    vocab: list[str]
    unigrams: np.ndarray  # int64 (V_local,)
    rows: list[np.ndarray]  # order n = 2..N: (m, n) int32, the range's distinct n-grams
    counts: list[np.ndarray]  # int64 (m,)
    tokens: int
    sentences: int
    stats: dict = field(default_factory=dict)  # dropped <s>/</s>, replaced lines, bytes read

    def summary(self) -> "RangeSummary":
        return RangeSummary(self.vocab, self.unigrams, self.tokens, self.sentences, dict(self.stats))


@dataclass
class RangeSummary:
    """What the client needs of a range to build the vocabulary: vocabulary-sized."""

    vocab: list[str]
    unigrams: np.ndarray
    tokens: int
    sentences: int
    stats: dict


BYTES_PER_TOKEN = 5  # as ngram.counting: to reserve the tables ahead


def count_range(chunks: Iterable, order: int, size_hint: int | None = None) -> RangeCounts:
    """Count one range's chunks (io.text.Chunk) as lm-count counts text (its TokenTable and
    NgramCounter: the same tokenizer and kernels), then expand the trie levels to full rows."""
    from lmtools.io.text import TokenTable
    from lmtools.ngram.counting import NgramCounter

    counter = NgramCounter(order)
    if size_hint:
        counter.reserve(size_hint // BYTES_PER_TOKEN)
    table = TokenTable()
    stats = {"dropped": 0, "replaced": 0, "bytes": 0}
    for chunk in chunks:
        enc = table.encode_chunk(chunk, grow=True)
        counter.add(enc.ids)
        stats["dropped"] += enc.n_dropped
        stats["replaced"] += enc.replaced_lines
        stats["bytes"] += enc.n_bytes
    levels = counter.levels(table.words())
    rows, counts = [], []
    prev = np.arange(len(levels.vocab), dtype=np.int32).reshape(-1, 1)
    for prefix, word, count in levels.levels:
        cur = np.empty((prefix.shape[0], prev.shape[1] + 1), np.int32)
        cur[:, :-1] = prev[prefix]
        cur[:, -1] = word
        rows.append(cur)
        counts.append(np.asarray(count, np.int64))
        prev = cur
    return RangeCounts(levels.vocab, levels.unigrams, rows, counts, levels.tokens, levels.sentences, stats)


def global_vocabulary(vocabs: list[list[str]]) -> tuple[list[str], list[np.ndarray]]:
    """(the vocabulary of the concatenated text, each range's local -> global id map): words in order
    of first occurrence, range by range in input order. Every local vocabulary starts with the
    specials (<unk>, <s>, </s>), so they keep ids 0, 1, 2."""
    index: dict[str, int] = {}
    maps = []
    for vocab in vocabs:
        ids = np.empty(len(vocab), np.int64)
        for i, w in enumerate(vocab):
            j = index.get(w)
            if j is None:
                j = index[w] = len(index)
            ids[i] = j
        maps.append(ids)
    return list(index), maps


def sum_unigrams(summaries: list[RangeSummary], maps: list[np.ndarray], size: int) -> np.ndarray:
    uni = np.zeros(size, np.int64)
    for s, m in zip(summaries, maps):
        np.add.at(uni, m, np.asarray(s.unigrams, np.int64))
    return uni


def restrict(vocab: list[str], unigrams: np.ndarray, vocab_opts) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(vocabulary, unigram counts, old -> new id map or None) after --min-count, --vocab-size or
    --vocab (ngram.counting's rule); None when nothing is restricted."""
    if vocab_opts is None or not vocab_opts.restricts():
        return vocab, unigrams, None
    from lmtools.ngram.counting import vocabulary_restriction

    remap, new_vocab = vocabulary_restriction(vocab, unigrams, vocab_opts)
    uni = np.zeros(len(new_vocab), np.int64)
    np.add.at(uni, remap, unigrams)
    return new_vocab, uni, remap


def split_range(rc: RangeCounts, id_map: np.ndarray, parts: int) -> list[Piece]:
    """The range's n-grams of orders >= 2 in final ids (``id_map``: local -> final), split into
    ``parts`` partitions: one Piece per partition."""
    id_map = np.asarray(id_map, np.int32)
    pieces: list[Piece] = [[] for _ in range(parts)]
    for rows, counts in zip(rc.rows, rc.counts):
        mapped = id_map[rows]
        part = partition_of_rows(mapped, parts) if len(mapped) else np.zeros(0, np.int64)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(parts + 1))
        for p in range(parts):
            sel = order[bounds[p]:bounds[p + 1]]
            pieces[p].append((mapped[sel], counts[sel]))
    return pieces


def _pack(rows: np.ndarray, start: int, stop: int, bits: int) -> np.ndarray:
    """Columns start..stop-1 of the rows packed into one int64 key (``bits`` per id)."""
    key = rows[:, start].astype(np.int64)
    for c in range(start + 1, stop):
        np.left_shift(key, bits, out=key)
        np.bitwise_or(key, rows[:, c], out=key)
    return key


def _row_order(rows: np.ndarray, runs: bool) -> tuple[np.ndarray, np.ndarray]:
    """(the permutation that sorts the rows lexicographically, a key per sorted row equal where rows
    are equal). The first columns that fit in 63 bits are sorted as one int64 key; each further group
    of columns is packed beside the dense rank of the rows' order so far (at most 31 bits) and sorted
    again, stably: that sort meets the rows already in order up to ties, so it costs little."""
    m, n = rows.shape
    bits = max(1, int(rows.max()).bit_length())
    per = max(1, 63 // bits)
    order = np.argsort(_pack(rows, 0, min(n, per), bits), kind="stable" if runs else "quicksort")
    done = min(n, per)
    key = _pack(rows[order], 0, done, bits) if done < n else None
    if key is None:
        return order, _pack(rows, 0, n, bits)[order]
    rank_bits = max(1, int(m).bit_length())
    while done < n:
        step = max(1, (63 - rank_bits) // bits)
        stop = min(n, done + step)
        rank = np.cumsum(np.concatenate(([0], key[1:] != key[:-1])))
        combined = np.left_shift(rank, bits * (stop - done)) | _pack(rows[order], done, stop, bits)
        again = np.argsort(combined, kind="stable")
        order = order[again]
        key = combined[again]
        done = stop
    return order, key


def sort_rows(rows: np.ndarray, counts: np.ndarray, runs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rows in lexicographic order with the counts of equal rows summed (no repeats left), by sorting
    packed int64 keys (_row_order). ``runs``: the rows are a few sorted runs (disjoint partitions),
    which a stable sort (timsort) merges in near-linear time; otherwise quicksort."""
    m = rows.shape[0]
    if m == 0:
        return rows.reshape(0, rows.shape[1]).astype(np.int32), counts.astype(np.int64)
    order, key = _row_order(rows, runs)
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    sorted_rows = np.ascontiguousarray(rows[order[starts]], dtype=np.int32)
    summed = np.add.reduceat(np.asarray(counts, np.int64)[order], starts)
    return sorted_rows, summed.astype(np.int64)


def sum_pieces(pieces: list[Piece], order: int) -> Piece:
    """One partition: its pieces from every range summed, per order 2..N (sorted rows, no repeats)."""
    out: Piece = []
    for k in range(order - 1):
        n = k + 2
        rows = [p[k][0] for p in pieces if len(p[k][0])]
        counts = [p[k][1] for p in pieces if len(p[k][0])]
        if not rows:
            out.append((np.zeros((0, n), np.int32), np.zeros(0, np.int64)))
            continue
        out.append(sort_rows(np.concatenate(rows), np.concatenate(counts)))
    return out


def union_partitions(partitions: list[Piece], order: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """All partitions as one sorted array per order 2..N (partitions are disjoint: a sort, no sums)."""
    ngrams, counts = [], []
    for k in range(order - 1):
        n = k + 2
        rows = [p[k][0] for p in partitions]
        cs = [p[k][1] for p in partitions]
        if rows:
            r, c = sort_rows(np.concatenate(rows), np.concatenate(cs), runs=True)
        else:
            r, c = np.zeros((0, n), np.int32), np.zeros(0, np.int64)
        ngrams.append(r)
        counts.append(c)
    return ngrams, counts
