"""The scoring kernels' argument records and block sizes, importable without numba.

kernels/query.py (numba, compiled at run time) and the ahead-of-time build of its scoring kernel
(kernels/aot.py) take these; lmtools.ngram.query makes them. Kept apart from the kernels so that a
process scoring with the ahead-of-time module never imports numba (~90 MB and ~0.3 s).
"""

from typing import NamedTuple

import numpy as np

BOS = 1  # <s>: starts a sentence, only a context
NO_CONTEXT = -1  # starts a sentence without <s> (the API's bos=False): an empty context

AHEAD = 24  # positions scored ahead of the walk: their table entries are prefetched
RING = 32  # > AHEAD, a power of two
BLOCK = 1 << 14  # tokens tokenized, then scored, at a time per thread (stays in the cache)


class HashedModel(NamedTuple):
    """An n-gram model's query tables (the layout of kernels/query.py; lmtools/ngram/query.py builds them)."""

    order: int  # N
    uni_lp: np.ndarray  # float32 (V,): unigram log10 p by word id
    uni_bo: np.ndarray  # float32 (V,): unigram log10 backoff
    tab: np.ndarray  # uint64: the hash tables of orders 2..N
    ftab: np.ndarray  # float32 view of tab (the values)
    utab: np.ndarray  # uint32 view of tab (the highest order's 12-byte entries)
    base: np.ndarray  # int64 (N+2,): where order n's table starts, in 16-byte units
    slots: np.ndarray  # int64 (N+1,): order n's table has slots[n] entries
    seed: np.uint64  # the hash seed
    closed: bool  # the prefix of every n-gram is in the model


class WordTable(NamedTuple):
    """The token table of kernels/tokenize.py (``find_word``), read only."""

    hashes: np.ndarray  # uint64: FNV-1a hash per slot
    slots: np.ndarray  # int32: word id per slot (-1 = empty)
    pool: np.ndarray  # uint8: the words' bytes
    offsets: np.ndarray  # int64: word w is pool[offsets[w]:offsets[w+1]]


class LineSums(NamedTuple):
    """Per-line results (as kernels.query.line_sums): one entry per line."""

    lp: np.ndarray  # float64: log10 p of all its tokens
    lp_nz: np.ndarray  # float64: the same without zero-probability tokens (OOVs kept)
    lp_iv: np.ndarray  # float64: without OOVs and zero-probability tokens
    tokens: np.ndarray  # int64: words and </s>
    oovs: np.ndarray  # int64
    zeros: np.ndarray  # int64: zero-probability in-vocabulary tokens


class BlockArrays(NamedTuple):
    """Working arrays of one scoring walk over lines: tokens of whole lines are gathered in the first
    five (``cap`` entries each) and scored; the last three hold the walk's state (N: the order)."""

    ids: np.ndarray  # int32 (cap,)
    oov: np.ndarray  # bool (cap,)
    lp: np.ndarray  # float64 (cap,)
    order: np.ndarray  # int32 (cap,)
    zero: np.ndarray  # bool (cap,)
    bo: np.ndarray  # float64 (2, N + 1): backoffs of the n-grams ending at the previous / this position
    keys: np.ndarray  # uint64 (RING, N + 1): keys of the n-grams ending at the positions ahead
    tops: np.ndarray  # int64 (RING,): the longest order to probe at each of those positions


def block_arrays(cap: int, order: int) -> BlockArrays:
    """``BlockArrays`` for lines of up to ``cap`` tokens (``<s>`` and ``</s>`` included), from Python."""
    return BlockArrays(np.empty(cap, np.int32), np.empty(cap, np.bool_), np.empty(cap, np.float64),
                       np.empty(cap, np.int32), np.empty(cap, np.bool_), np.zeros((2, order + 1), np.float64),
                       np.zeros((RING, order + 1), np.uint64), np.zeros(RING, np.int64))


def line_capacity(nbytes: int) -> int:
    """Token entries a line of ``nbytes`` bytes (no newline) may need: ``<s>``, ``</s>`` and at most a
    token per two bytes."""
    return nbytes // 2 + 3
