"""Counting n-grams of orders 1..N over text, a chunk of whole lines at a time.

Stages: text chunks -> token ids (kernels.tokenize) -> per-order hash tables (kernels.count)
-> optional vocabulary restriction (map dropped words to ``<unk>`` and re-sum, exact because counts
are sums) -> sorted arrays in a ``Counts`` (the contract in ngram/counts.py).
Memory: the tables (proportional to the distinct n-grams) plus one chunk of ids per order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lmtools import memory
from lmtools.errors import LmError
from lmtools.ngram.counts import Counts, Levels
from lmtools.vocab import SPECIALS, UNK_ID


class OrderTable:
    """The hash table and per-id arrays of one order >= 2 (ids in order of first occurrence)."""

    def __init__(self, size_log2: int = 12):
        self.table = np.full(2 << size_log2, -1, np.int64)
        self.shift = 64 - size_log2
        self.prefix = np.empty(1 << (size_log2 - 1), np.int32)
        self.word = np.empty_like(self.prefix)
        self.count = np.empty(self.prefix.shape[0], np.int64)
        self.n = 0

    def ensure_room(self, extra: int) -> None:
        """Room for ``extra`` new n-grams without growing: arrays and a table at most half full."""
        from lmtools.kernels.count import rehash

        need = self.n + extra
        grow_arrays = need > self.prefix.shape[0]
        grow_table = 2 * need > self.table.shape[0] // 2
        if grow_arrays or grow_table:
            cap = max(need, 2 * self.prefix.shape[0]) if grow_arrays else 0
            slots = 2 << int(np.ceil(np.log2(2 * need + 1))) if grow_table else 0
            memory.check(16 * cap + 8 * slots, f"holding {need:,} distinct n-grams of one order",
                         "use a smaller order (-n) or less text")
        if grow_arrays:
            cap = max(need, 2 * self.prefix.shape[0])
            for name in ("prefix", "word", "count"):
                old = getattr(self, name)
                new = memory.empty(cap, old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        if grow_table:
            log2 = int(np.ceil(np.log2(2 * need + 1)))
            self.shift = 64 - log2
            new = memory.full(2 << log2, -1, np.int64)
            rehash(self.table, new, self.shift)
            self.table = new

    def arrays(self):
        return self.prefix[: self.n], self.word[: self.n], self.count[: self.n]


@dataclass
class VocabOptions:
    min_count: int = 1  # words seen fewer times become <unk>
    vocab_size: int = 0  # keep only the most frequent words (0: all); <unk>, <s>, </s> come on top
    closed: list[str] | None = None  # closed vocabulary: every other word is <unk>

    def restricts(self) -> bool:
        return self.min_count > 1 or self.vocab_size > 0 or self.closed is not None


BLOCK_TOKENS = 1 << 18  # tokens per counting call
RESERVE_CAP = 1 << 20  # n-grams per order reserved ahead at most (beyond, tables grow with the distinct n-grams)
BYTES_PER_TOKEN = 5  # a low estimate for word-level text (PTB: 5.5), to reserve tables ahead


class NgramCounter:
    """Accumulates counts of orders 1..order over chunks of token ids (``<s> .. </s>`` per line)."""

    def __init__(self, order: int):
        if order < 1:
            raise LmError(f"order must be at least 1, got {order}", "use -n 1 or more")
        self.order = order
        self.unigrams = np.zeros(1 << 12, np.int64)
        self.tables = [OrderTable() for _ in range(order - 1)]
        self.tokens = 0
        self.sentences = 0
        self.block_tokens = BLOCK_TOKENS
        # Called before each block with (its tokens, the carried ids): may empty the tables (a spill
        # to disk, lmtools.ngram.external) and returns the carried ids valid in the tables after it.
        self.before_block: Callable | None = None

    def reserve(self, tokens: int) -> None:
        """Size the tables for about ``tokens`` tokens of text at once, instead of growing them step by
        step (each growth rehashes the whole table). Distinct n-grams of an order are at most the tokens."""
        for t in self.tables:
            t.ensure_room(min(tokens, RESERVE_CAP))

    def add(self, ids: np.ndarray) -> None:
        from lmtools.kernels.count import count_next_order

        if ids.size == 0:
            return
        top = int(ids.max()) + 1
        if top > self.unigrams.shape[0]:
            grown = np.zeros(max(top, 2 * self.unigrams.shape[0]), np.int64)
            grown[: self.unigrams.shape[0]] = self.unigrams
            self.unigrams = grown
        self.unigrams[:top] += np.bincount(ids, minlength=top)
        n_sent = int(np.count_nonzero(ids == 1))
        self.sentences += n_sent
        self.tokens += ids.size - n_sent  # words and </s>, not <s>
        # Tables must have room for every n-gram of a call; blocks of bounded size keep that headroom
        # (and so peak memory) small whatever the chunk size, and a sentence of millions of tokens
        # (a text without newlines) costs its distinct n-grams only. A block after the first starts one
        # token early: the kernel counts the n-grams ending at positions 1.., so that token only
        # supplies the history, and its ids of every order (carried from the block before) are put
        # back in place of the kernel's -1 at position 0.
        carry = [-1] * len(self.tables)
        step = self.block_tokens
        for lo in range(0, ids.size, step):
            hi = min(lo + step, ids.size)
            start = lo - 1 if lo else 0
            block = ids[start:hi]
            if self.before_block is not None:
                carry = self.before_block(block.size, carry)
            prev = block
            for k, t in enumerate(self.tables):
                t.ensure_room(block.size)
                cur = np.empty(block.size, np.int32)
                t.n = count_next_order(prev, block, t.table, t.shift, t.prefix, t.word, t.count, t.n, cur)
                if lo:
                    cur[0] = carry[k]
                carry[k] = int(cur[-1])
                prev = cur

    def levels(self, vocab: list[str], vocab_opts: VocabOptions | None = None) -> "Levels":
        """The counts in first-occurrence order, after the vocabulary restriction if any."""
        from lmtools.kernels.count import add_weighted

        V = len(vocab)
        uni = np.zeros(V, np.int64)
        m = min(V, self.unigrams.shape[0])
        uni[:m] = self.unigrams[:m]
        levels = [t.arrays() for t in self.tables]
        if vocab_opts is not None and vocab_opts.restricts():
            remap, vocab = _restriction(vocab, uni, vocab_opts)
            uni = np.bincount(remap, weights=uni, minlength=len(vocab)).astype(np.int64)
            prev_map = remap
            new_levels = []
            for prefix, word, count in levels:
                t = OrderTable()
                t.ensure_room(prefix.shape[0])
                out = np.empty(prefix.shape[0], np.int32)
                t.n = add_weighted(prev_map[prefix].astype(np.int32), remap[word].astype(np.int32), count,
                                   t.table, t.shift, t.prefix, t.word, t.count, t.n, out)
                new_levels.append(t.arrays())
                prev_map = out
            levels = new_levels
        return Levels(list(vocab), uni, levels, self.tokens, self.sentences)

    def result(self, vocab: list[str], vocab_opts: VocabOptions | None = None, provenance: dict | None = None) -> Counts:
        """The counts as sorted arrays (the Counts contract), after the vocabulary restriction if any."""
        return self.levels(vocab, vocab_opts).to_counts(provenance)


def _restriction(vocab: list[str], uni: np.ndarray, opts: VocabOptions) -> tuple[np.ndarray, list[str]]:
    """(old id -> new id map, new vocabulary): dropped words map to <unk>; specials keep 0, 1, 2."""
    V = len(vocab)
    if opts.closed is not None:
        new_vocab = list(SPECIALS)
        seen = set(SPECIALS)
        for w in opts.closed:
            if w not in seen:
                seen.add(w)
                new_vocab.append(w)
        index = {w: i for i, w in enumerate(new_vocab)}
        remap = np.array([index.get(w, UNK_ID) for w in vocab], dtype=np.int64)
        return remap, new_vocab
    keep = np.ones(V, bool)
    keep[3:] = uni[3:] >= max(opts.min_count, 1)
    if opts.vocab_size > 0:
        cand = np.flatnonzero(keep[3:]) + 3
        # most frequent first; ties keep the order of first occurrence (stable sort on -count)
        best = cand[np.argsort(-uni[cand], kind="stable")][: opts.vocab_size]
        keep[3:] = False
        keep[np.sort(best)] = True
    new_ids = np.cumsum(keep) - 1
    remap = np.where(keep, new_ids, UNK_ID).astype(np.int64)
    new_vocab = [w for w, k in zip(vocab, keep) if k]
    return remap, new_vocab


# Inputs below this size are counted in plain Python: numba's start-up (about 0.4 s to import it and
# load the first cached kernel) would cost more than counting them, and a pipe of small programs
# should answer at once. Both paths give identical Counts (checked in the tests).
SMALL_INPUT_BYTES = 1 << 16


def count_text(paths: list[str], order: int, *, text_opts=None, vocab_opts: VocabOptions | None = None,
               provenance: dict | None = None, on_chunk: Callable | None = None) -> Counts:
    """Count all n-grams of orders 1..order in the given text files (``-`` for stdin), as ``Counts``.

    ``on_chunk`` is called with each ``EncodedChunk`` (or, on the small-input path, ``Chunk``).
    """
    return count_levels(paths, order, text_opts=text_opts, vocab_opts=vocab_opts,
                        on_chunk=on_chunk).to_counts(provenance)


def count_levels(paths: list[str], order: int, *, text_opts=None, vocab_opts: VocabOptions | None = None,
                 on_chunk: Callable | None = None) -> Levels:
    """Count as ``count_text`` does, without sorting: the form lm-count writes to the model file."""
    from lmtools.io.text import iter_text_chunks

    chunks = iter_text_chunks(paths, text_opts)
    head, size = [], 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk.data)
        if size > SMALL_INPUT_BYTES:
            break
    else:
        levels = count_small(head, order, vocab_opts, on_chunk)
        levels.text = _text_kind(text_opts)
        return levels
    levels = _count_fast(head, chunks, order, vocab_opts, on_chunk, _input_bytes(paths))
    levels.text = _text_kind(text_opts)
    return levels


def _text_kind(text_opts) -> dict:
    from lmtools.io.text import TextOptions

    return (text_opts or TextOptions()).kind()


def _count_fast(head, rest, order, vocab_opts, on_chunk, size_hint: int | None = None) -> Levels:
    import itertools

    from lmtools.io.text import TokenTable

    counter = NgramCounter(order)
    if size_hint:
        counter.reserve(size_hint // BYTES_PER_TOKEN)
    table = TokenTable()
    for chunk in itertools.chain(head, rest):
        enc = table.encode_chunk(chunk, grow=True)
        counter.add(enc.ids)
        if on_chunk is not None:
            on_chunk(enc)
    return counter.levels(table.words(), vocab_opts)


def _input_bytes(paths: list[str]) -> int | None:
    import os

    try:
        return sum(os.stat(p).st_size for p in paths) if paths and "-" not in paths else None
    except OSError:
        return None


def count_small(chunks, order, vocab_opts, on_chunk) -> Levels:
    """The same counts as the numba path, in plain Python, for inputs of a few kilobytes."""
    from collections import Counter

    from lmtools.io.text import line_words
    from lmtools.vocab import BOS_ID, EOS_ID, SPECIALS

    index = {w.encode(): i for i, w in enumerate(SPECIALS)}
    tables = [Counter() for _ in range(order)]
    tokens = sentences = 0
    for chunk in chunks:
        dropped = 0
        lines = chunk.data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for line in lines:
            words, n_marks = line_words(line)
            dropped += n_marks
            ids = [BOS_ID] + [index.setdefault(tok, len(index)) for tok in words]
            ids.append(EOS_ID)
            sentences += 1
            tokens += len(ids) - 1
            for n in range(1, order + 1):
                t = tables[n - 1]
                for i in range(len(ids) - n + 1):
                    t[tuple(ids[i:i + n])] += 1
        if on_chunk is not None:
            chunk.n_dropped = dropped
            chunk.n_bytes = len(chunk.data)
            on_chunk(chunk)
    vocab = [w.decode("utf-8") for w in index]
    uni = np.zeros(len(vocab), np.int64)
    for (w,), c in tables[0].items():
        uni[w] = c
    if vocab_opts is not None and vocab_opts.restricts():
        remap, vocab = _restriction(vocab, uni, vocab_opts)
        remap = remap.tolist()
        mapped = [Counter() for _ in range(order)]
        for t, m in zip(tables, mapped):
            for g, c in t.items():
                m[tuple(remap[w] for w in g)] += c
        tables = mapped
    V = len(vocab)
    uni = np.zeros(V, np.int64)
    for (w,), c in tables[0].items():
        uni[w] = c
    levels = []
    ids_prev = None  # order n-1 n-gram -> id, in order of first occurrence (as the kernels assign them)
    for n in range(2, order + 1):
        items = list(tables[n - 1].items())
        if ids_prev is None:
            prefix = [g[0] for g, _ in items]
        else:
            prefix = [ids_prev[g[:-1]] for g, _ in items]
        levels.append((np.array(prefix, np.int32), np.array([g[-1] for g, _ in items], np.int32),
                       np.array([c for _, c in items], np.int64)))
        ids_prev = {g: i for i, (g, _) in enumerate(items)}
    return Levels(vocab, uni, levels, tokens, sentences)


def vocabulary_restriction(vocab: list[str], unigrams: np.ndarray, opts: VocabOptions) -> tuple[np.ndarray, list[str]]:
    """(old id -> new id map, new vocabulary) of --min-count, --vocab-size or --vocab, as lm-count
    applies them: for counts summed elsewhere first (lmtools.ngram.shuffle, the cluster path;
    lmtools.ngram.external, after spills)."""
    return _restriction(vocab, unigrams, opts)


# Public names of the helpers that counting in a memory budget (lmtools.ngram.external) shares.
input_bytes = _input_bytes
text_kind = _text_kind
