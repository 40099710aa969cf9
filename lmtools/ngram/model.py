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

from lmtools.constants import (MAX_QUERY_SLOTS, query_table_bases, query_table_limit, query_table_slots,
                               query_table_units)


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
# Layout 4: the tables in Robin Hood order (1.15 entries per n-gram; a probe stops at the first entry
# that comes after the key), the highest order's entries of 12 bytes (no backoff); layout 3 (one
# development commit) had 16-byte entries there; layout 2 had the tables in insertion order (1.5
# entries per n-gram), a key's home entry by multiply-shift as now; layout 1 power-of-two tables
# indexed by the key's top bits.
QUERY_LAYOUT = 4


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
    slots: np.ndarray  # int64 (N+1,): entries of order n's table
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

    ARRAYS = ("tab", "base", "slots", "uni_lp", "uni_bo", "word_hashes", "word_slots", "word_pool", "word_offsets")

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


# Up to this many n-grams in all (and words), the structure is built in plain Python: the same arrays
# as the kernels build, without loading numba (~0.5 s) to write a tiny model.
SMALL_BUILD = 10_000


def build_query_tables(model: NGramModel, zeros=np.zeros) -> QueryTables:
    """The query structure of ``model`` (numba, or plain Python for a small model: the same arrays);
    raises ValueError for repeated n-grams or a vocabulary the word table cannot hold. ``zeros``: the
    allocator of the hash tables."""
    uni_lp, uni_bo = unigram_arrays(model)
    if sum(model.sizes()) <= SMALL_BUILD:
        tab, base, slots, seed, closed = build_tables_python(model.ngrams, model.logprob, model.backoff, uni_lp)
        words = build_word_table_python(list(model.vocab))
    else:
        from lmtools.kernels.query_tables import build_tables, build_word_table

        tab, base, slots, seed, closed = build_tables(model.ngrams, model.logprob, model.backoff, uni_lp, zeros)
        words = build_word_table(list(model.vocab))
    return QueryTables(QUERY_LAYOUT, seed, closed, tab, base, slots, uni_lp, uni_bo, *words)


class PendingTables:
    """The query tables of n-gram rows, laid out in a background thread while the model's
    probabilities are still being estimated (lm-train: placing the keys is most of building the
    tables, and the estimation leaves the second core idle); ``result`` fills in the probabilities.

    ``ngrams``: the rows of every order (the counts' arrays: the model's must be the same objects).
    The result is the tables build_query_tables makes, byte for byte; where it cannot be had this way
    (another model's rows, placeholders needed, an error) ``result`` gives None and the caller
    builds them as usual, which also reports any error."""

    def __init__(self, ngrams: list[np.ndarray], vocab: list[str], zeros=np.zeros):
        import threading

        self.ngrams, self._zeros = list(ngrams), zeros
        self._vocab = list(vocab)
        self._layout = self._words = None
        self._thread = threading.Thread(target=self._run, name="lmtools-query-layout", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from lmtools.kernels.query_tables import build_word_table, lay_out_tables

        try:
            rows = [np.ascontiguousarray(g, dtype=np.int32) for g in self.ngrams[1:]]
            self._layout = lay_out_tables(rows, self._zeros)
            self._words = build_word_table(self._vocab)
        except Exception:  # (ValueError, OverflowError, MemoryError): build_query_tables says it
            self._layout = None

    def result(self, model: NGramModel) -> QueryTables | None:
        """The query tables of ``model``, None when they were not laid out for its rows."""
        self._thread.join()
        layout, words = self._layout, self._words
        self._layout = self._words = None  # the tables belong to the model from here on
        if layout is None or words is None or len(model.ngrams) != len(self.ngrams) \
                or not all(_same_memory(a, b) for a, b in zip(list.__iter__(model.ngrams), self.ngrams)) \
                or len(model.vocab) != len(self._vocab):
            return None
        from lmtools.kernels.query_tables import fill_values

        tab, base, slots, seed, closed = layout
        try:
            uni_lp, uni_bo = unigram_arrays(model)
        except ValueError:
            return None
        rows2 = model.ngrams[1]
        if np.isnan(uni_lp[rows2[:, 1]]).any():  # a bigram's suffix without a unigram: placeholders
            return None
        closed = closed and not np.isnan(uni_lp[rows2[:, 0]]).any()
        ftab, utab = tab.view(np.float32), tab.view(np.uint32)
        N = model.order
        for n in range(2, N + 1):
            fill_values(ftab, utab, base[n], slots[n], np.ascontiguousarray(model.logprob[n - 1], np.float32),
                        np.ascontiguousarray(model.backoff[n - 1], np.float32), n == N)
        return QueryTables(QUERY_LAYOUT, seed, bool(closed), tab, base, slots, uni_lp, uni_bo, *words,
                           source=model_arrays(model))


def model_arrays(m: NGramModel) -> tuple:
    """The n-gram arrays of ``m`` (QueryTables.source: the arrays a query structure was made for)."""
    # list.__iter__: a mapped model's orders are not read for this (io.models.CheckedOrders)
    return tuple(list.__iter__(m.ngrams)) + tuple(list.__iter__(m.logprob)) + tuple(list.__iter__(m.backoff))


def _same_memory(a, b) -> bool:
    """Are ``a`` and ``b`` the same array data (one may be a view of the other as a whole: the
    smoother's np.ascontiguousarray of a counts array)?"""
    return a is b or (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                      and a.shape == b.shape and a.strides == b.strides
                      and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def word_table_capacity(n_words: int) -> int:
    """Slots of a stored word table: a power of two at least twice the words (the token table's own
    growth rule, kernels/tokenize.grow_table, never fires on it)."""
    return max(16, 1 << (2 * (n_words + 1) - 1).bit_length())


def build_word_table_python(vocab: list[str]):
    """kernels/query_tables.build_word_table in plain Python (the same arrays), for small vocabularies."""
    cap = word_table_capacity(len(vocab))
    hashes, slots = [0] * cap, [-1] * cap
    seen = set()
    words = [w.encode("utf-8") for w in vocab]
    for i, w in enumerate(words):
        if not w or w in seen or any(b in b" \t\n\r\x0b\x0c" for b in w):
            raise ValueError("vocabulary words must be distinct, non-empty and contain no whitespace")
        seen.add(w)
        h = word_hash(w)
        j = h & (cap - 1)
        while slots[j] >= 0:
            j = (j + 1) & (cap - 1)
        hashes[j], slots[j] = h, i
    offsets = np.zeros(len(words) + 1, np.int64)
    offsets[1:] = np.cumsum([len(w) for w in words])
    return (np.array(hashes, np.uint64), np.array(slots, np.int32), np.frombuffer(b"".join(words), np.uint8).copy(),
            offsets)


def build_tables_python(ngrams, logprob, backoff, uni_lp):
    """kernels/query_tables.build_tables in plain Python (the same arrays: same seeds, same insertion order,
    same placeholders and growth), for small models."""
    N = len(ngrams)
    sizes = [0, 0] + [int(ngrams[n - 1].shape[0]) for n in range(2, N + 1)]
    slots = [0, 0] + [query_table_slots(sizes[n]) for n in range(2, N + 1)]
    rows = [None] + [ngrams[n - 1].tolist() for n in range(1, N + 1)]
    for attempt in range(4):  # kernels/query_tables.MAX_SEEDS
        seed = (0x5EED0000 + attempt * 0x9E3779B9) & _MASK
        keys = [[0] * slots[n] for n in range(N + 1)]
        vals = [[(0.0, 0.0)] * slots[n] for n in range(N + 1)]
        clash = False
        for n in range(2, N + 1):
            lp, bo = logprob[n - 1].tolist(), backoff[n - 1].tolist()
            for r, row in enumerate(rows[n]):
                if _insert(keys[n], vals[n], ngram_key(row, seed), (lp[r], bo[r])):
                    clash = True
                    break
            if clash:
                break
        if not clash:
            break
    else:
        raise ValueError("repeated n-grams")

    def present(n, key):
        return _present(keys[n], key)

    missing = sum(not present(n - 1, ngram_key(row[1:], seed)) for n in range(3, N + 1) for row in rows[n])
    if N >= 2 and any(np.isnan(uni_lp[[row[1] for row in rows[2]]])):
        missing += 1
    nan = float("nan")
    if missing:
        counts = sizes + [0]
        for n in range(N, 2, -1):
            while True:
                full = -1
                for row in rows[n]:
                    for k in range(n - 1, 1, -1):
                        key = ngram_key(row[n - k:], seed)
                        if present(k, key):
                            break
                        if counts[k] + 1 > query_table_limit(slots[k]):
                            full = k
                            break
                        _insert(keys[k], vals[k], key, (nan, 0.0))
                        counts[k] += 1
                    if full >= 0:
                        break
                if full < 0:
                    break
                slots[full] *= 2  # grow: the entries again in slot order, into twice the slots
                old_k, old_v = keys[full], vals[full]
                keys[full], vals[full] = [0] * slots[full], [(0.0, 0.0)] * slots[full]
                for key, v in zip(old_k, old_v):
                    if key:
                        _insert(keys[full], vals[full], key, v)
    closed = N < 2 or not any(np.isnan(uni_lp[[row[0] for row in rows[2]]]))
    if closed:
        closed = all(present(n - 1, ngram_key(row[:-1], seed)) for n in range(3, N + 1) for row in rows[n])
    base = np.zeros(N + 2, np.int64)
    base[:] = query_table_bases(slots)
    tab = np.zeros(2 * int(base[N + 1]) if N >= 2 else 2, np.uint64)
    ftab, utab = tab.view(np.float32), tab.view(np.uint32)
    for n in range(2, N + 1):
        b, m = int(base[n]), slots[n]
        k = np.array(keys[n], np.uint64)
        lp = np.array([v[0] for v in vals[n]], np.float32)
        if n < N:
            tab[2 * b: 2 * (b + m): 2] = k
            ftab[4 * b + 2: 4 * (b + m): 4] = lp
            ftab[4 * b + 3: 4 * (b + m): 4] = np.array([v[1] for v in vals[n]], np.float32)
        else:  # 12-byte entries: the key's low and high halves, log10 p
            utab[4 * b: 4 * b + 3 * m: 3] = (k & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            utab[4 * b + 1: 4 * b + 3 * m: 3] = (k >> np.uint64(32)).astype(np.uint32)
            ftab[4 * b + 2: 4 * b + 3 * m: 3] = lp
    return tab, base, np.array(slots, np.int64), seed, bool(closed)


def home(key: int, slots: int) -> int:
    """kernels/query.home: the first entry probed for ``key`` in a table of ``slots`` entries."""
    return ((key >> 32) * slots) >> 32


def _insert(keys: list, vals: list, key: int, val) -> bool:
    """kernels/query_tables.insert_entry on one order's key and value lists: ``key`` with ``val``
    inserted in Robin Hood order, or True when it is there already (nothing changed)."""
    size = len(keys)
    i = home(key, size)
    d = 0
    while True:
        k = keys[i]
        if k == key:
            return True
        if k == 0 or _after(k, (i - home(k, size)) % size, key, d):
            break
        i = i + 1 if i + 1 < size else 0
        d += 1
    while True:  # the run from i on moves one entry on
        k, v = keys[i], vals[i]
        keys[i], vals[i] = key, val
        if k == 0:
            return False
        key, val = k, v
        i = i + 1 if i + 1 < size else 0


def _after(k: int, dk: int, key: int, d: int) -> bool:
    """kernels/query_tables.after."""
    return dk < d or (dk == d and k > key)


def _present(keys: list, key: int) -> bool:
    """kernels/query.find_entry on one order's key list: whether ``key`` is there."""
    size = len(keys)
    i = home(key, size)
    for _ in range(size):
        k = keys[i]
        if k == key:
            return True
        if k == 0 or (k > key and home(k, size) <= i):  # kernels/query.ends_probe
            return False
        i = i + 1 if i + 1 < size else 0
    return False


# -- checking a stored structure (plain Python: opening a model loads no kernel) -----------------

_MASK = (1 << 64) - 1
# N-grams per order (and words) looked up in stored tables before they are used. Few: in a mapped
# file each lookup faults in a page and the kernel's read-around (2 MB seen here) with it.
SPOT_CHECKS = 2
WORD_CHECKS = 8


def _mix(x: int) -> int:  # kernels/query.mix, in Python integers
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def ngram_key(row, seed: int) -> int:
    """The table key of the n-gram ``row`` (ids oldest first): kernels/query_tables.ngram_keys in Python."""
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


def probe_words(words, start: int, size: int, key: int, top: bool) -> int:
    """Where ``key`` is in one order's table (``size`` entries from the 16-byte unit ``start``;
    ``top``: the highest order's), or -1: the index of its log10 p in the tables' float32 view;
    kernels/query.find_entry and find_top in Python, over the tables as uint32 words of Python ints
    (a memoryview cast to "I": the stored-table checks here, ngram/steps.py's walk)."""
    i = home(key, size)
    for _ in range(size):
        j = 4 * start + 3 * i if top else 4 * (start + i)
        k = words[j] | words[j + 1] << 32
        if k == key:
            return j + 2
        if k == 0 or (k > key and home(k, size) <= i):  # kernels/query.ends_probe
            return -1
        i = i + 1 if i + 1 < size else 0
    return -1


def _rows(arrays, k: int):
    # a mapped model checks an order when it is first read (io.models.CheckedOrders): a few rows of
    # it are looked at here without that pass
    return arrays.unchecked(k) if hasattr(arrays, "unchecked") else arrays[k]


def _spread(m: int, k: int = SPOT_CHECKS) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, m - 1, min(m, k))}) if m else []


def query_problem(q: QueryTables, model: NGramModel) -> str | None:
    """Why the stored structure ``q`` cannot be used with ``model`` (None: it can). Cheap: types and
    sizes against the n-gram arrays, then a few n-grams of every order and a few words looked up in
    Python (which also finds tables made with another hash function); nothing reads a whole table."""
    N, V = model.order, len(model.vocab)
    sizes = model.sizes()
    u64, i64 = np.dtype("<u8"), np.dtype("<i8")
    if not (isinstance(q.seed, int) and 0 <= q.seed <= _MASK and isinstance(q.closed, bool)):
        return "its seed or flags are not valid"
    if q.base.dtype != i64 or q.slots.dtype != i64 or q.base.shape != (N + 2,) or q.slots.shape != (N + 1,):
        return "its table offsets do not fit the model's order"
    base, slots = q.base.tolist(), q.slots.tolist()
    if base[:3] != [0, 0, 0] or any(
            not (2 <= slots[n] <= MAX_QUERY_SLOTS) or base[n + 1] - base[n] != query_table_units(slots[n], n == N)
            or sizes[n - 1] > query_table_limit(slots[n]) for n in range(2, N + 1)):
        return "its table sizes do not fit the model's n-grams"
    if q.tab.dtype != u64 or q.tab.shape != (2 * base[N + 1] if N >= 2 else 2,):
        return "its hash table has the wrong size"
    if q.uni_lp.dtype != np.float32 or q.uni_bo.dtype != np.float32 or q.uni_lp.shape != (V,) \
            or q.uni_bo.shape != (V,):
        return "its unigram arrays do not fit the vocabulary"
    uni, ulp, ubo = model.ngrams[0][:, 0], model.logprob[0], model.backoff[0]
    if not (np.array_equal(q.uni_lp[uni], ulp) and np.array_equal(q.uni_bo[uni], ubo)):
        return "its unigram arrays disagree with the model's unigrams"
    words = memoryview(q.tab).cast("B").cast("I")
    for n in range(2, N + 1):
        rows, lp, bo = _rows(model.ngrams, n - 1), _rows(model.logprob, n - 1), _rows(model.backoff, n - 1)
        for r in _spread(sizes[n - 1]):
            j = probe_words(words, base[n], slots[n], ngram_key(rows[r].tolist(), q.seed), n == N)
            if j < 0:
                return f"an n-gram of order {n} is not in its tables"
            vals = q.tab.view(np.float32)[j: j + 2]
            if vals[0] != lp[r] or (n < N and vals[1] != bo[r]):
                return f"its tables disagree with the model's order {n} values"
    h, s, pool, offs = q.word_hashes, q.word_slots, q.word_pool, q.word_offsets
    cap = h.shape[0] if h.ndim == 1 else 0
    if h.dtype != u64 or s.dtype != np.int32 or pool.dtype != np.uint8 or offs.dtype != i64 or s.shape != (cap,) \
            or cap < 2 * V or cap & (cap - 1) or offs.shape != (V + 1,) or pool.ndim != 1 \
            or int(offs[0]) != 0 or int(offs[-1]) != pool.shape[0]:
        return "its word table does not fit the vocabulary"
    for i in sorted(set(_spread(V, WORD_CHECKS)) | {0, 1, 2}):
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
