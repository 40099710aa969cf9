"""The smoothed n-gram model: what an ARPA file holds, as arrays.

Contract (smoothers produce it, ARPA reads/writes it, the query engine consumes it):
- ``vocab[i]`` is the word with id i; ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``.
- ``ngrams[n-1]``: int32 (m_n, n), the n-grams of order n (ids oldest first), lexicographic order.
- ``logprob[n-1]``: float32 (m_n,), log10 p(w | h) as written in ARPA. The unigram ``<s>`` is only
  ever a context, never predicted: smoothers write 0 there (as KenLM does), ARPA files may hold -99;
  consumers must not predict ``<s>`` whatever the value.
- ``backoff[n-1]``: float32 (m_n,), log10 backoff weight of the n-gram as a context (0 where the
  ARPA line has none, and all zeros for the highest order).
- ``method``: how it was estimated ("kn-modified", "wb", ... or "arpa" when read from a file);
  ``info``: method details (discounts per order, interpolation, warnings); ``provenance``: how made.
- ``scores_only``: True for stupid backoff (scores, not probabilities: lm-ppl refuses it).
Query rule (KenLM/SRILM backoff): log10 p(w|h) = logprob(h_m w) + sum of backoff(h_k) for the suffixes
h_k of h longer than h_m, where h_m w is the longest n-gram in the model; a word without a unigram is
scored as ``<unk>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class NGramModel:
    vocab: list[str]
    ngrams: list[np.ndarray]
    logprob: list[np.ndarray]
    backoff: list[np.ndarray]
    method: str = "kn-modified"
    info: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    scores_only: bool = False
    text: dict | None = None  # how the text was read: {"chars": bool, "lower": bool}; None: unknown (ARPA)
    # The query structure read with the model from its file (None: none stored, or not read from a
    # file); lmtools.ngram.query checks it against the arrays above before using it.
    query: "QueryTables | None" = None

    @property
    def order(self) -> int:
        return len(self.ngrams)

    def sizes(self) -> list[int]:
        # list.__iter__: shapes need none of the first-read checks of a mapped model (io.models.CheckedOrders)
        return [int(a.shape[0]) for a in list.__iter__(self.ngrams)]


# Version of the query structure's layout: the entry format of the hash tables and the hash functions
# of kernels/query.py (mix, hash_word, extend) and of the word table (kernels/tokenize.fnv1a,
# find_word). Change it with any of them: stored tables of another layout are rebuilt at load.
QUERY_LAYOUT = 1


@dataclass
class QueryTables:
    """An n-gram model's query structure as stored in its file (lmtools-model(5), "The query
    structure"): the hash tables of kernels/query.py, the dense unigram arrays and the vocabulary's
    word table (kernels/tokenize.py), ready for the kernels. Arrays may be read-only views of a
    mapped file: nothing here or in its users writes into them."""

    layout: int
    seed: int  # the hash seed the keys were made with
    closed: bool  # every n-gram's prefix is in the model (kernels/query.HashedModel.closed)
    tab: np.ndarray  # uint64: entries of orders 2..N
    base: np.ndarray  # int64 (N+2,)
    log2s: np.ndarray  # int64 (N+1,)
    uni_lp: np.ndarray  # float32 (V,): NaN where a word has no unigram (except <unk>: -100)
    uni_bo: np.ndarray  # float32 (V,)
    word_hashes: np.ndarray  # uint64: the word table's hash per slot
    word_slots: np.ndarray  # int32: word id per slot (-1: empty)
    word_pool: np.ndarray  # uint8: the words' bytes, id order
    word_offsets: np.ndarray  # int64 (V+1,)
    # the n-gram arrays it was read with (their identities): saving the same model again reuses it
    source: tuple = ()
    # run once before the arrays are first used for scoring (a mapped file's reader sets it to check
    # their data checksums then, as it checks each n-gram order when first read); None: nothing to do
    verify: object = None

    ARRAYS = ("tab", "base", "log2s", "uni_lp", "uni_bo", "word_hashes", "word_slots", "word_pool", "word_offsets")

    def nbytes(self) -> int:
        return sum(int(getattr(self, k).nbytes) for k in self.ARRAYS)


def unigram_arrays(model: NGramModel) -> tuple[np.ndarray, np.ndarray]:
    """(uni_lp, uni_bo): the unigram log10 p and backoff by word id (float32, V); uni_lp is NaN for a
    word without a unigram, and -100 for <unk> when it has none (as an ARPA file without <unk> is
    read). Raises ValueError for unigram ids outside the vocabulary."""
    V = len(model.vocab)
    uni = model.ngrams[0][:, 0] if model.order else np.zeros(0, np.int32)
    if uni.size and (uni.min() < 0 or uni.max() >= V):
        raise ValueError("unigram ids outside the vocabulary")
    uni_lp = np.full(V, np.nan, np.float32)
    uni_bo = np.zeros(V, np.float32)
    uni_lp[uni] = model.logprob[0]
    uni_bo[uni] = model.backoff[0]
    if V and np.isnan(uni_lp[0]):
        uni_lp[0] = -100.0
    return uni_lp, uni_bo


def build_query_tables(model: NGramModel, zeros=np.zeros) -> QueryTables:
    """The query structure of ``model`` (numba; raises ValueError for repeated n-grams or a vocabulary
    the word table cannot hold). ``zeros``: the allocator of the hash tables."""
    from lmtools.kernels.query import build_tables, build_word_table

    uni_lp, uni_bo = unigram_arrays(model)
    tab, base, log2s, seed, closed = build_tables(model.ngrams, model.logprob, model.backoff, uni_lp, zeros)
    words = build_word_table(list(model.vocab))
    return QueryTables(QUERY_LAYOUT, seed, closed, tab, base, log2s, uni_lp, uni_bo, *words)


# -- checking a stored structure (plain Python: opening a model loads no kernel) -----------------

_MASK = (1 << 64) - 1
SPOT_CHECKS = 8  # n-grams per order (and words) looked up in stored tables before they are used


def _mix(x: int) -> int:  # kernels/query.mix, in Python integers
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def ngram_key(row, seed: int) -> int:
    """The table key of the n-gram ``row`` (ids oldest first): kernels/query.ngram_keys in Python."""
    h = _mix((int(row[-1]) + seed) & _MASK)
    for w in reversed(row[:-1]):
        h = _mix((h * 0x9E3779B97F4A7C15 + int(w) + 1) & _MASK)
    return h | 1


def word_hash(word: bytes) -> int:
    """kernels/tokenize.fnv1a in Python."""
    h = 0xCBF29CE484222325
    for b in word:
        h = ((h ^ b) * 0x100000001B3) & _MASK
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK
    return h ^ (h >> 33)


def _probe(tab: np.ndarray, start: int, log2: int, key: int) -> int:
    """Entry index of ``key`` in one order's table (kernels/query._find), or -1."""
    mask = (1 << log2) - 1
    i = key >> (64 - log2)
    for _ in range(mask + 1):
        k = int(tab[2 * (start + i)])
        if k == key:
            return start + i
        if k == 0:
            return -1
        i = (i + 1) & mask
    return -1


def _rows(arrays, k: int):
    # a mapped model checks an order when it is first read (io.models.CheckedOrders): a few rows of
    # it are looked at here without that pass
    return arrays.unchecked(k) if hasattr(arrays, "unchecked") else arrays[k]


def _spread(m: int) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, m - 1, min(m, SPOT_CHECKS))}) if m else []


def query_problem(q: QueryTables, model: NGramModel) -> str | None:
    """Why the stored structure ``q`` cannot be used with ``model`` (None: it can). Cheap: types and
    sizes against the n-gram arrays, then a few n-grams of every order and a few words looked up in
    Python (which also finds tables made with another hash function); nothing reads a whole table."""
    N, V = model.order, len(model.vocab)
    sizes = model.sizes()
    u64, i64 = np.dtype("<u8"), np.dtype("<i8")
    if not (isinstance(q.seed, int) and 0 <= q.seed <= _MASK and isinstance(q.closed, bool)):
        return "its seed or flags are not valid"
    if q.base.dtype != i64 or q.log2s.dtype != i64 or q.base.shape != (N + 2,) or q.log2s.shape != (N + 1,):
        return "its table offsets do not fit the model's order"
    base, log2s = q.base.tolist(), q.log2s.tolist()
    if base[:3] != [0, 0, 0] or any(
            not (1 <= log2s[n] <= 40) or base[n + 1] - base[n] != 1 << log2s[n] or 4 * sizes[n - 1] > 3 << log2s[n]
            for n in range(2, N + 1)):
        return "its table sizes do not fit the model's n-grams"
    if q.tab.dtype != u64 or q.tab.shape != (2 * base[N + 1] if N >= 2 else 2,):
        return "its hash table has the wrong size"
    if q.uni_lp.dtype != np.float32 or q.uni_bo.dtype != np.float32 or q.uni_lp.shape != (V,) \
            or q.uni_bo.shape != (V,):
        return "its unigram arrays do not fit the vocabulary"
    uni, ulp, ubo = model.ngrams[0][:, 0], model.logprob[0], model.backoff[0]
    if not (np.array_equal(q.uni_lp[uni], ulp) and np.array_equal(q.uni_bo[uni], ubo)):
        return "its unigram arrays disagree with the model's unigrams"
    for n in range(2, N + 1):
        rows, lp, bo = _rows(model.ngrams, n - 1), _rows(model.logprob, n - 1), _rows(model.backoff, n - 1)
        for r in _spread(sizes[n - 1]):
            e = _probe(q.tab, base[n], log2s[n], ngram_key(rows[r].tolist(), q.seed))
            if e < 0:
                return f"an n-gram of order {n} is not in its tables"
            vals = q.tab[2 * e + 1: 2 * e + 2].view(np.float32)
            if vals[0] != lp[r] or vals[1] != bo[r]:
                return f"its tables disagree with the model's order {n} values"
    h, s, pool, offs = q.word_hashes, q.word_slots, q.word_pool, q.word_offsets
    cap = h.shape[0] if h.ndim == 1 else 0
    if h.dtype != u64 or s.dtype != np.int32 or pool.dtype != np.uint8 or offs.dtype != i64 or s.shape != (cap,) \
            or cap < 2 * V or cap & (cap - 1) or offs.shape != (V + 1,) or pool.ndim != 1 \
            or int(offs[0]) != 0 or int(offs[-1]) != pool.shape[0]:
        return "its word table does not fit the vocabulary"
    for i in sorted(set(_spread(V)) | {0, 1, 2}):
        w = model.vocab[i].encode("utf-8")
        a, b = int(offs[i]), int(offs[i + 1])
        hw = word_hash(w)
        j = hw & (cap - 1)
        for _ in range(cap):
            if int(s[j]) < 0 or (int(s[j]) == i and int(h[j]) == hw):
                break
            j = (j + 1) & (cap - 1)
        if int(s[j]) != i or pool[a:b].tobytes() != w:
            return "its word table disagrees with the vocabulary"
    return None
