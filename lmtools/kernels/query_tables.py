"""Building the query hash tables of kernels/query.py (numba, no I/O): the n-grams' keys, their
placement (at once, or laid out from the counts' rows while a model is estimated and filled with its
values after), placeholders for missing suffixes, and the vocabulary's word table. The layout and the
keys are described in kernels/query.py; lmtools.ngram.model drives these (build_query_tables,
PendingTables)."""

import numpy as np
from numba import njit, prange

from lmtools.constants import MAX_QUERY_SLOTS, query_table_bases, query_table_limit, query_table_slots
from lmtools.kernels.query import entry_key, extend, find_entry, hash_word, home, prefetch
from lmtools.kernels.records import AHEAD, RING

_ONE = np.uint64(1)


@njit(cache=True, inline="always")
def displacement(i, h, slots):
    """How far entry i lies past the home entry h in a table of ``slots`` entries (it wraps)."""
    d = i - h
    return d + slots if d < 0 else d


@njit(cache=True, inline="always")
def after(k, dk, key, d):
    """Whether the entry holding key k, ``dk`` entries past its home, comes after ``key`` (``d`` past
    its home, at the same entry) in Robin Hood order: its home is later, or the same and its key larger."""
    return dk < d or (dk == d and k > key)


# Entries as the builders see them: through the tables' uint32 view, entry i of a table at 16-byte
# unit ``start`` is the words from 4 start + stride i on: the key's low and high halves, then the value
# words (STRIDE: 2 of them, log10 p and backoff; STRIDE_TOP, the highest order's: 1, log10 p)
STRIDE = 4
STRIDE_TOP = 3


@njit(cache=True, inline="always")
def insert_entry(words, start, stride, slots, key):
    """(entry index, found): the entry holding ``key`` (found), or the entry where it now is, inserted
    in Robin Hood order (kernels/query.py) with zero value words for the caller to fill: the entries
    that come after it in its run move one entry on, to the run's first free entry. ``words``: the
    tables' uint32 view; ``stride``: STRIDE or STRIDE_TOP."""
    w0 = 4 * start
    i = home(key, slots)
    d = 0
    while True:
        k = entry_key(words, w0 + stride * i)
        if k == key:
            return i, True
        if k == 0 or after(k, displacement(i, home(k, slots), slots), key, d):
            break
        i += 1
        d += 1
        if i == slots:
            i = 0
    at = i
    carry_key = key
    carry_lp = np.uint32(0)
    carry_bo = np.uint32(0)
    while True:
        j = w0 + stride * i
        k = entry_key(words, j)
        lp = words[j + 2]
        bo = words[j + 3] if stride == STRIDE else np.uint32(0)
        words[j] = np.uint32(carry_key & np.uint64(0xFFFFFFFF))
        words[j + 1] = np.uint32(carry_key >> np.uint64(32))
        words[j + 2] = carry_lp
        if stride == STRIDE:
            words[j + 3] = carry_bo
        if k == 0:
            return at, False
        carry_key = k
        carry_lp = lp
        carry_bo = bo
        i += 1
        if i == slots:
            i = 0


@njit(cache=True, inline="always")
def prefetch_home(tab, utab, start, slots, key, top):
    """Prefetch the home entry of ``key`` in an order's table (``top``: the highest order's)."""
    if top:
        prefetch(utab, 4 * start + 3 * home(key, slots))
    else:
        prefetch(tab, 2 * (start + home(key, slots)))


@njit(cache=True, parallel=True)
def ngram_keys(rows, seed, keys, suffix_keys, prefix_keys):
    """The key of every n-gram of ``rows`` (int32 (m, n), n >= 2), of its suffix (its n-1 newest
    words) and of its prefix (its n-1 oldest words); for n = 2 the last two are unused."""
    m, n = rows.shape
    for r in prange(m):
        h = hash_word(rows[r, n - 1], seed)
        for j in range(n - 2, 0, -1):
            h = extend(h, rows[r, j])
        suffix_keys[r] = h | _ONE
        keys[r] = extend(h, rows[r, 0]) | _ONE
        g = hash_word(rows[r, n - 2], seed)
        for j in range(n - 3, -1, -1):
            g = extend(g, rows[r, j])
        prefix_keys[r] = g | _ONE


@njit(cache=True, parallel=True)
def insert_orders(tab, ftab, utab, base, slots, keys, lp, bo, offs, clashes):
    """Insert the n-grams of orders 2..N (``keys[offs[n]:offs[n+1]]`` with their log10 p and backoff)
    into their tables, the orders in parallel. ``clashes[n]``: keys of order n already present
    (a hash collision or a duplicate n-gram): the caller retries with another seed, or reports."""
    N = offs.shape[0] - 2
    for n in prange(2, N + 1):
        start = base[n]
        size = slots[n]
        lo = offs[n]
        hi = offs[n + 1]
        top = n == N
        c = 0
        for r in range(lo, hi):
            if r + AHEAD < hi:
                prefetch_home(tab, utab, start, size, keys[r + AHEAD], top)
            stride = STRIDE_TOP if top else STRIDE
            i, found = insert_entry(utab, start, stride, size, keys[r])
            if found:
                c += 1
                continue
            j = 4 * start + stride * i
            ftab[j + 2] = lp[r]
            if not top:
                ftab[j + 3] = bo[r]
        clashes[n] = c


@njit(cache=True)
def count_missing(tab, start, size, keys):
    """How many of ``keys`` are not in the table (one order's: ``size`` entries from ``start``)."""
    m = keys.shape[0]
    missing = 0
    for r in range(m):
        if r + AHEAD < m:
            prefetch(tab, 2 * (start + home(keys[r + AHEAD], size)))
        if find_entry(tab, start, size, keys[r]) < 0:
            missing += 1
    return missing


@njit(cache=True, inline="always")
def _words_key(rows, r, lo, hi, seed):
    """The key of the n-gram ``rows[r, lo:hi]`` (as ngram_keys makes it)."""
    h = hash_word(rows[r, hi - 1], seed)
    for j in range(hi - 2, lo - 1, -1):
        h = extend(h, rows[r, j])
    return h | _ONE


@njit(cache=True, nogil=True)
def place_keys(tab, utab, start, size, rows, seed, top):
    """Insert the keys of one order's n-grams ``rows`` (int32 (m, n), n >= 2) into its table (``size``
    entries from ``start``; ``top``: the highest order's) in row order, as insert_orders does, each
    entry's value word holding its row number until fill_values puts the row's log10 p and backoff
    there. Returns how many keys were already present (a clash: see insert_orders). Releases the GIL:
    it runs beside the estimation."""
    m, n = rows.shape
    ring = np.empty(RING, np.uint64)
    for r in range(min(AHEAD, m)):
        ring[r] = _words_key(rows, r, 0, n, seed)
    clashes = 0
    for r in range(m):
        if r + AHEAD < m:
            k = _words_key(rows, r + AHEAD, 0, n, seed)
            ring[(r + AHEAD) & (RING - 1)] = k
            prefetch_home(tab, utab, start, size, k, top)
        stride = STRIDE_TOP if top else STRIDE
        i, found = insert_entry(utab, start, stride, size, ring[r & (RING - 1)])
        if found:
            clashes += 1
        else:
            utab[4 * start + stride * i + 2] = np.uint32(r)
    return clashes


@njit(cache=True, nogil=True)
def count_absent(tab, start, size, rows, lo, hi, seed):
    """How many of the n-grams ``rows[:, lo:hi]`` are not in the table of their order (``size``
    entries from ``start``): count_missing with the keys made on the way (no key arrays)."""
    m = rows.shape[0]
    ring = np.empty(RING, np.uint64)
    for r in range(min(AHEAD, m)):
        ring[r] = _words_key(rows, r, lo, hi, seed)
    missing = 0
    for r in range(m):
        if r + AHEAD < m:
            k = _words_key(rows, r + AHEAD, lo, hi, seed)
            ring[(r + AHEAD) & (RING - 1)] = k
            prefetch(tab, 2 * (start + home(k, size)))
        if find_entry(tab, start, size, ring[r & (RING - 1)]) < 0:
            missing += 1
    return missing


@njit(cache=True, parallel=True)
def fill_values(ftab, utab, start, size, lp, bo, top):
    """Replace the row number place_keys left in each used entry of one order's table with that row's
    log10 p and backoff (float32; ``top``: the highest order's table, log10 p only): the entries
    insert_orders would have made."""
    stride = STRIDE_TOP if top else STRIDE
    for e in prange(size):
        j = 4 * start + stride * e
        if utab[j] != 0 or utab[j + 1] != 0:
            r = utab[j + 2]  # read before its word takes log10 p
            ftab[j + 2] = lp[r]
            if not top:
                ftab[j + 3] = bo[r]


@njit(cache=True)
def close_suffixes(tab, ftab, base, slots, counts, rows, seed, limit):
    """Make sure every suffix of the n-grams ``rows`` (order n = rows.shape[1] >= 3) is in the
    tables of orders 2..n-1, adding placeholders (log10 p NaN, backoff 0) where one is missing.

    ``counts[k]`` is the number of used entries of order k (updated). Returns -1 when done, or the
    order k whose table reached ``limit`` entries (the caller grows it and calls again: entries
    already added are found the second time).
    """
    m, n = rows.shape
    hs = np.empty(n + 1, np.uint64)
    for r in range(m):
        h = hash_word(rows[r, n - 1], seed)
        hs[1] = h
        for k in range(2, n):
            h = extend(h, rows[r, n - k])
            hs[k] = h
        # the immediate suffix first: if it is present, its own suffixes were checked with its order
        for k in range(n - 1, 1, -1):
            key = hs[k] | _ONE
            if find_entry(tab, base[k], slots[k], key) >= 0:
                break
            if counts[k] + 1 > limit[k]:
                return k
            i, _ = insert_entry(tab.view(np.uint32), base[k], STRIDE, slots[k], key)
            e = base[k] + i
            ftab[4 * e + 2] = np.nan
            ftab[4 * e + 3] = 0.0
            counts[k] += 1
    return -1


@njit(cache=True)
def rehash_order(old, start, size, new, size_new):
    """Copy the entries of one order's table of 16-byte entries (at ``old[start..]``, ``size`` entries)
    into ``new`` (``size_new`` entries)."""
    words = new.view(np.uint32)
    for i in range(size):
        key = old[2 * (start + i)]
        if key != 0:
            j, _ = insert_entry(words, 0, STRIDE, size_new, key)
            new[2 * j + 1] = old[2 * (start + i) + 1]


# ----------------------------------------------------------------------------------------------
# Building the tables (Python drivers of the kernels above; lmtools.ngram.model.build_query_tables)

MAX_SEEDS = 4


def build_tables(ngrams, logprob, backoff, uni_lp, zeros=np.zeros):
    """(tab, base, slots, seed, closed): the hash tables of orders 2..N of the n-gram arrays
    (``ngrams[n-1]`` int32 (m, n) sorted, ``logprob``/``backoff`` float32 per order) and whether the
    model is prefix-closed. ``uni_lp``: the dense unigram log10 p (NaN: no unigram). ``zeros(n,
    dtype)`` allocates the tables (lmtools.memory.zeros puts big ones on huge pages). Raises
    ValueError when the model has repeated n-grams (their keys clash under every seed tried)."""
    N = len(ngrams)
    sizes = [0, 0] + [int(ngrams[n - 1].shape[0]) for n in range(2, N + 1)]
    slots, base = _table_sizes(sizes)
    if slots.max() > MAX_QUERY_SLOTS:
        raise OverflowError(f"order {int(slots.argmax())} has more n-grams than a query table holds")
    rows = [np.ascontiguousarray(ngrams[n - 1], dtype=np.int32) for n in range(1, N + 1)]
    offs = np.zeros(N + 2, np.int64)
    offs[3:] = np.cumsum(sizes[2:])
    total = int(offs[-1])
    lp = np.empty(total, np.float32)
    bo = np.empty(total, np.float32)
    for n in range(2, N + 1):
        lp[offs[n]:offs[n + 1]] = logprob[n - 1]
        bo[offs[n]:offs[n + 1]] = backoff[n - 1]
    keys = np.empty(total, np.uint64)
    suffix_keys = np.empty(total, np.uint64)
    prefix_keys = np.empty(total, np.uint64)
    for attempt in range(MAX_SEEDS):
        seed = np.uint64(0x5EED0000 + attempt * 0x9E3779B9)
        for n in range(2, N + 1):
            sl = slice(offs[n], offs[n + 1])
            ngram_keys(rows[n - 1], seed, keys[sl], suffix_keys[sl], prefix_keys[sl])
        tab = zeros(2 * int(base[N + 1]) if N >= 2 else 2, np.uint64)
        ftab = tab.view(np.float32)
        clashes = np.zeros(N + 1, np.int64)
        insert_orders(tab, ftab, tab.view(np.uint32), base, slots, keys, lp, bo, offs, clashes)
        if clashes.sum() == 0:
            break
    else:
        raise ValueError("repeated n-grams")
    # Every suffix of an n-gram must be in the tables for the scoring walk; models made by lmtools
    # or KenLM have them all. Where some are missing, add placeholders.
    missing = sum(count_missing(tab, base[n - 1], slots[n - 1], suffix_keys[offs[n]:offs[n + 1]])
                  for n in range(3, N + 1))
    if N >= 2 and np.isnan(uni_lp[rows[1][:, 1]]).any():
        missing += 1
    if missing:
        counts = np.array(sizes + [0], np.int64)
        for n in range(N, 2, -1):
            while True:
                limit = np.array([query_table_limit(int(x)) for x in slots] + [0], np.int64)
                full = close_suffixes(tab, ftab, base, slots, counts, rows[n - 1], seed, limit)
                if full < 0:
                    break
                tab, base, slots = _grow(tab, base, slots, int(full), zeros)
                ftab = tab.view(np.float32)
    closed = N < 2 or not np.isnan(uni_lp[rows[1][:, 0]]).any()
    if closed:
        closed = all(count_missing(tab, base[n - 1], slots[n - 1], prefix_keys[offs[n]:offs[n + 1]]) == 0
                     for n in range(3, N + 1))
    return tab, base, slots, int(seed), bool(closed)


def _table_sizes(sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(slots, base) of the tables of orders 2..N with ``sizes[n]`` n-grams of order n (``sizes[0]``
    and ``sizes[1]`` unused): each order's entries, and where its table starts (16-byte units)."""
    N = len(sizes) - 1
    slots = np.zeros(N + 1, np.int64)
    for n in range(2, N + 1):
        slots[n] = query_table_slots(sizes[n])
    return slots, np.array(query_table_bases(slots.tolist()), np.int64)


def lay_out_tables(rows, zeros=np.zeros):
    """The hash tables of n-gram rows (``rows[n-2]``: order n's, int32 (m, n) sorted, n = 2..N), laid
    out before the model's probabilities exist: (tab, base, slots, seed, prefixes_closed), each used
    entry's value word holding its row number for fill_values. The same entries in the same places as
    build_tables, which can be told from its result only once filled. None when build_tables would
    have to do more than place the keys (a clash under every seed, or an n-gram whose suffix is not
    in the model: placeholders)."""
    N = len(rows) + 1
    slots, base = _table_sizes([0, 0] + [int(r.shape[0]) for r in rows])
    if N < 2 or slots.max() > MAX_QUERY_SLOTS:
        return None
    for attempt in range(MAX_SEEDS):
        seed = np.uint64(0x5EED0000 + attempt * 0x9E3779B9)
        tab = zeros(2 * int(base[N + 1]), np.uint64)
        utab = tab.view(np.uint32)
        if sum(place_keys(tab, utab, base[n], slots[n], rows[n - 2], seed, n == N) for n in range(2, N + 1)) == 0:
            break
    else:
        return None
    if any(count_absent(tab, base[n - 1], slots[n - 1], rows[n - 2], 1, n, seed) for n in range(3, N + 1)):
        return None
    closed = all(count_absent(tab, base[n - 1], slots[n - 1], rows[n - 2], 0, n - 1, seed) == 0
                 for n in range(3, N + 1))
    return tab, base, slots, int(seed), closed


def _grow(tab, base, slots, k, zeros):
    """The tables with order k's twice the size, its entries rehashed (k < N: placeholders are never
    of the highest order)."""
    N = slots.shape[0] - 1
    assert 2 <= k < N
    new_slots = slots.copy()
    new_slots[k] *= 2
    if new_slots[k] > MAX_QUERY_SLOTS:
        raise OverflowError(f"order {k} has more n-grams than a query table holds")
    new_base = np.array(query_table_bases(new_slots.tolist()), np.int64)
    new_tab = zeros(2 * int(new_base[N + 1]), np.uint64)
    for n in range(2, N + 1):
        if n == k:
            part = np.zeros(2 * int(new_slots[n]), np.uint64)
            rehash_order(tab, base[n], slots[n], part, new_slots[n])
            new_tab[2 * new_base[n]: 2 * new_base[n + 1]] = part
        else:
            new_tab[2 * new_base[n]: 2 * new_base[n + 1]] = tab[2 * base[n]: 2 * base[n + 1]]
    return new_tab, new_base, new_slots


def build_word_table(vocab):
    """(hashes, slots, pool, offsets) of the token table of kernels/tokenize.py holding ``vocab``
    (ids in list order; vocab[:3] = <unk> <s> </s>), trimmed to what the words use. Raises ValueError
    when a word is repeated, empty or holds whitespace."""
    from lmtools.kernels.tokenize import new_table, tokenize

    # room for every word without growing (lmtools.ngram.model.word_table_capacity: the same rule)
    cap = max(16, 1 << (2 * (len(vocab) + 1) - 1).bit_length())
    hashes, slots, pool, offsets, n_words = new_table(cap)
    # The specials first, alone: a literal <s> or </s> in text is dropped only once it has its id.
    for part in (vocab[:3], vocab[3:]):
        if not part:
            continue
        data = ("\n".join(part) + "\n").encode("utf-8")
        buf = np.frombuffer(data, np.uint8)
        cap = len(data) + 2 * data.count(b"\n") + 4
        ids = np.empty(cap, np.int32)
        oov = np.empty(cap, np.bool_)
        before = n_words
        (_, _, _, _, hashes, slots, pool, offsets, n_words) = tokenize(buf, hashes, slots, pool, offsets, n_words,
                                                                       True, ids, oov)
        if n_words != before + len(part):
            raise ValueError("vocabulary words must be distinct, non-empty and contain no whitespace")
    offsets = offsets[: n_words + 1].copy()
    return hashes, slots, pool[: offsets[-1]].copy(), offsets
