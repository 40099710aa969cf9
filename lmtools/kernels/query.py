"""The n-gram query kernels (numba, no I/O): longest-match back-off lookup over hashed n-grams.

Layout. Unigrams are dense arrays indexed by word id (``uni_lp``, ``uni_bo``, float32). Each order
n >= 2 has an open-addressing hash table in one uint64 array ``tab`` shared by all orders, of
``slots[n]`` entries (about 1.15 per n-gram: lmtools.constants.query_table_slots) from ``base[n]``
(in 16-byte units: lmtools.constants.query_table_bases). An entry of an order n < N is 16 bytes:
entry e is ``tab[2e]`` = the n-gram's 64-bit key (0 = empty slot) and ``tab[2e+1]`` = its log10 p
and log10 backoff as two float32 (read through ``ftab``, a float32 view of the same memory:
``ftab[4e+2]``, ``ftab[4e+3]``). The highest order's entries are 12 bytes, as it has no backoff:
its entry e is the uint32 words ``j = 4 base[N] + 3e`` on of ``utab`` (a uint32 view): the key's
low and high halves ``utab[j]``, ``utab[j+1]`` and log10 p ``ftab[j+2]``. Key and values share a
cache line (or two neighbours), so a lookup costs one memory access.

Robin Hood order. A key's first probe is its home entry ``home(key, slots[n])``; it lies there or
in one of the entries after it (wrapping at the table's end), with no empty entry in between
(linear probing). Along every run of occupied entries the homes never decrease and entries with
one home are in key order (kernels/query_tables.insert_entry keeps it so): a table's contents
decide its layout, whatever order the keys came in. As ``home`` never decreases with the key, this
is key order along each run (but where a run wraps past the table's end): Amble and Knuth's ordered
hash table (The Computer Journal 17(2), 1974), where a probe for an absent key stops at the first
larger key, so that a lookup, hit or miss, reads about as many entries as a hit. Any reader that
ignores the order (probing to the first empty entry) finds the same entries, only slower.

Keys. The key of n-gram ``w1 .. wn`` is a 64-bit hash built from its newest word backwards:
``h1 = hash_word(wn)``, ``h_k = extend(h_{k-1}, w_{n-k+1})``, so while scoring position t the keys
of the n-grams ending at t of every order come one after another from the ids, with no table access
in between. Keys are hashes, not the ids themselves: two n-grams of the model that share a key are
detected when the table is built (and a new hash seed is tried); an n-gram absent from the model
matches a present one only if their 64-bit keys collide (probability below 2^-60 per lookup).
The stored key is ``h | 1`` so that 0 marks an empty slot.

Suffix closure. Scoring walks the orders upward from the unigram and stops at the first miss, so
every suffix of a model n-gram must be in the tables. Where a model lacks one (some pruned ARPA
files), a placeholder entry is added (log10 p = NaN: "not an n-gram", backoff 0); the walk passes
through it but never matches it. With placeholders the walk finds exactly the longest n-gram in the
model ending at each position.

Scoring rule (ARPA back-off, as KenLM and SRILM): log10 p(w | h) = log10 p(h_m w) + sum of the
backoffs of the suffixes h_k of h (k words) with m < k <= min(N-1, |h|) that are in the model, where
h_m w is the longest n-gram of the model ending in w (h_m: m words). The backoffs of the contexts are
those of the n-grams found ending at the previous position, so each position costs one walk.

Speed. The walk is a chain of dependent cache misses (the tables of a 5-gram PTB model are ~40 MB),
so the keys of the positions AHEAD tokens on are computed early and their table entries prefetched.
When the model is prefix-closed (every n-gram's n-1 oldest words are an entry too: true of models
made by lmtools and KenLM) the walk at a position also stops one order above the longest entry
found at the previous position, skipping a probe that must miss.

Drivers. ``score_lines_from`` and ``score_tokens_from`` are the bodies: compiled ahead of time into
one module for one thread (kernels/aot.py: no numba at run time, no reference counts, its array
arguments marked as not aliasing), and called from numba's parallel loops here (``score_lines``,
``score_ids``) for more threads or where that module is not built. The tables are built by
kernels/query_tables.py.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from lmtools.constants import LOG_ZERO  # log10 p at or below this is p = 0 (ARPA's convention)
from lmtools.kernels.records import AHEAD, BLOCK, BOS, RING, BlockArrays
from lmtools.kernels import records
from lmtools.kernels.tokenize import find_word, is_sentence_mark, next_token_hashed


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K1 = np.uint64(0x9E3779B97F4A7C15)
_ONE = np.uint64(1)
PREFETCH_LINES = 3  # cache lines prefetched per probe


@njit(cache=True, inline="always")
def mix(x):
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


@njit(cache=True, inline="always")
def hash_word(w, seed):
    return mix(np.uint64(w) + seed)


@njit(cache=True, inline="always")
def extend(h, w):
    """Hash of the n-gram ``w + (the n-gram hashed as h)``: one word older."""
    return mix(h * _K1 + np.uint64(w) + _ONE)


@njit(cache=True, inline="always")
def home(key, slots):
    """The home entry of ``key`` in a table of ``slots`` entries (``slots`` < 2**32): the key's top
    32 bits scaled to the table (multiply-shift), so a table may have any size, not only a power of
    two: sized by its n-grams (lmtools.constants.query_table_slots), not up to twice that."""
    return np.int64(((key >> np.uint64(32)) * np.uint64(slots)) >> np.uint64(32))


@njit(cache=True, inline="always")
def find_entry(tab, start, slots, key):
    """Entry index (relative to ``start``) holding ``key``, or -1. The table is in Robin Hood order
    (see the module's docstring), so the probe stops at an empty entry or at an entry that comes after
    ``key``: a larger key not wrapped past the table's end (its home at or before the entry; its
    home is computed only then). At most one pass over the table: a table is never full (load <=
    19/20), but one mapped from a damaged file may be, and a probe must end."""
    i = home(key, slots)
    for _ in range(slots):
        k = tab[2 * (start + i)]
        if k == key:
            return i
        if ends_probe(k, key, i, slots):
            return -1
        i += 1
        if i == slots:
            i = 0
    return -1


@njit(cache=True, inline="always")
def ends_probe(k, key, i, slots):
    """Whether entry i, holding key k (not ``key``), ends a probe for ``key``: it is empty, or it comes
    after ``key`` in Robin Hood order (a larger key that has not wrapped: its home at or before i)."""
    return k == 0 or (k > key and home(k, slots) <= i)


@njit(cache=True, inline="always")
def entry_key(utab, j):
    """The key of the entry at uint32 word j of the tables (the highest order's: 4 base[N] + 3e)."""
    return np.uint64(utab[j]) | (np.uint64(utab[j + 1]) << np.uint64(32))


@njit(cache=True, inline="always")
def find_top(utab, start, slots, key):
    """find_entry in the highest order's table of 12-byte entries (``slots`` entries from the
    16-byte unit ``start``), whose keys are read as two halves (find_entry's one 64-bit load is the
    walk's most frequent read: kept apart)."""
    i = home(key, slots)
    w0 = 4 * start
    for _ in range(slots):
        k = entry_key(utab, w0 + 3 * i)
        if k == key:
            return i
        if ends_probe(k, key, i, slots):
            return -1
        i += 1
        if i == slots:
            i = 0
    return -1


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint the CPU to load arr[idx] into the cache (llvm.prefetch; no effect on results)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.gep(ary.data, [i])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch")
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def _ahead(ids, u, N, seed, tab, utab, base, slots, keys, tops, ctxu):
    """Compute (and prefetch) the keys of the n-grams ending at position u; return the new context."""
    w = ids[u]
    r = u & (RING - 1)
    if w == BOS:
        tops[r] = 0
        return 1
    if w < 0:
        tops[r] = 0
        return 0
    top = min(N, ctxu + 1)
    tops[r] = top
    if top >= 2:
        h = hash_word(w, seed)
        for n in range(2, top + 1):
            h = extend(h, ids[u - n + 1])
            key = h | _ONE
            keys[r, n] = key
            # the home entry's cache line and the next ones: a probe reads ~4 entries, but 10% of
            # them more than 8 (tables 87% full)
            if n < N:
                e = 2 * (base[n] + home(key, slots[n]))
                for q in range(PREFETCH_LINES):
                    prefetch(tab, e + 8 * q)
            else:
                j = 4 * base[n] + 3 * home(key, slots[n])
                for q in range(PREFETCH_LINES):
                    prefetch(utab, j + 16 * q)
    return ctxu + 1


@njit(cache=True, inline="always")
def _score_range(ids, lo, hi, M, out_lp, out_ord, out_zero, bo, keys, tops):
    """Score ids[lo:hi] with the ``HashedModel`` M; ids[lo] must start a sentence (``<s>`` or
    NO_CONTEXT). bo, keys, tops: the walk's state (``BlockArrays``' last three; no values read
    before they are written here).

    ``M.closed``: the prefix of every n-gram is in the model (true of models made by lmtools and
    KenLM), so an n-gram ending here can be longer by at most one than the longest entry found
    ending at the previous position: the walk stops there instead of probing for a sure miss."""
    N = M.order
    uni_lp = M.uni_lp
    uni_bo = M.uni_bo
    tab = M.tab
    ftab = M.ftab
    utab = M.utab
    base = M.base
    slots = M.slots
    seed = M.seed
    closed = M.closed
    # bo[p] holds the backoffs of the n-grams ending at the previous position, bo[1 - p] those of
    # the current one (flipping p instead of swapping arrays keeps numba from refcounting per token)
    p = 0
    ctxu = 0
    u = lo
    while u < hi and u < lo + AHEAD:
        ctxu = _ahead(ids, u, N, seed, tab, utab, base, slots, keys, tops, ctxu)
        u += 1
    prev_reach = 0
    for t in range(lo, hi):
        if u < hi:
            ctxu = _ahead(ids, u, N, seed, tab, utab, base, slots, keys, tops, ctxu)
            u += 1
        w = ids[t]
        if w == BOS:
            prev_reach = 1
            bo[p, 1] = uni_bo[BOS]
            out_lp[t] = 0.0
            out_ord[t] = 0
            out_zero[t] = False
            continue
        if w < 0:
            prev_reach = 0
            out_lp[t] = 0.0
            out_ord[t] = 0
            out_zero[t] = False
            continue
        lp = uni_lp[w]
        m = 1
        bo[1 - p, 1] = uni_bo[w]
        reach = 1
        r = t & (RING - 1)
        top = tops[r]
        if closed and top > prev_reach + 1:
            top = prev_reach + 1
        for n in range(2, top + 1):
            if n < N:
                i = find_entry(tab, base[n], slots[n], keys[r, n])
                if i < 0:
                    break
                e = base[n] + i
                v = ftab[4 * e + 2]
                bo[1 - p, n] = ftab[4 * e + 3]
            else:  # the highest order: no backoff (none read: kmax < N)
                i = find_top(utab, base[n], slots[n], keys[r, n])
                if i < 0:
                    break
                v = ftab[4 * base[n] + 3 * i + 2]
                bo[1 - p, n] = 0.0
            reach = n
            if v == v:  # not a placeholder
                lp = v
                m = n
        total = np.float64(lp)
        kmax = min(N - 1, prev_reach)
        for k in range(m, kmax + 1):
            total += bo[p, k]
        out_lp[t] = total
        out_ord[t] = m
        # p = 0 when the final log10 p (backoff weights included) is at or below log10 0, or when
        # the matched entry itself is log10 0 (a positive backoff weight cannot lift it off zero)
        out_zero[t] = total <= LOG_ZERO or lp <= LOG_ZERO
        p = 1 - p
        prev_reach = reach


@njit(cache=True, inline="always")
def _walk_state(N):
    """The state arrays of ``_score_range`` (records.block_arrays makes them in Python)."""
    return np.zeros((2, N + 1), np.float64), np.zeros((RING, N + 1), np.uint64), np.zeros(RING, np.int64)


@njit(cache=True, parallel=True)
def score_ids(ids, cuts, M, out_lp, out_ord, out_zero):
    """Score a stream of sentences ``<s> w1 .. wk </s> <s> ...`` (int32 ids, ``<s>`` = 1) with the
    ``HashedModel`` M.

    Writes, per position, log10 p of the token given its sentence so far (0 at ``<s>``),
    the order of the longest matched n-gram (0 at ``<s>``) and whether p = 0 (the final log10 p,
    backoff weights included, or the matched entry's at or below -99).
    The segments ids[cuts[i]:cuts[i+1]] (each starting a sentence) are scored in parallel; one
    segment (cuts = [0, len(ids)]) is the serial case. (Compiled as a parallel loop even then:
    numba generates faster code for the loop body there, ~80 instead of ~140 ns per token here.)
    """
    for s in prange(cuts.shape[0] - 1):
        bo, keys, tops = _walk_state(M.order)
        _score_range(ids, cuts[s], cuts[s + 1], M, out_lp, out_ord, out_zero, bo, keys, tops)


@njit(cache=True)
def ppl_sums(ids, oov, lp, zero):
    """(log10 p of all tokens but zero-probability ones, the same without OOVs, scored tokens,
    </s> tokens, OOVs, zero-probability in-vocabulary tokens) of a scored stream, in one pass."""
    lp_all = 0.0
    lp_iv = 0.0
    n_tok = 0
    n_eos = 0
    n_oov = 0
    n_zero = 0
    for t in range(ids.shape[0]):
        w = ids[t]
        if w == BOS or w < 0:
            continue
        n_tok += 1
        if w == 2:
            n_eos += 1
        if oov[t]:
            n_oov += 1
            lp_all += lp[t]
        elif zero[t]:
            n_zero += 1
        else:
            lp_all += lp[t]
            lp_iv += lp[t]
    return lp_all, lp_iv, n_tok, n_eos, n_oov, n_zero


@njit(cache=True)
def line_sums(ids, oov, lp, zero, out, first):
    """Per sentence of a scored stream, into the ``LineSums`` out from entry ``first`` on: log10 p
    of all its tokens, the same without zero-probability tokens (OOVs kept), without OOVs and
    zero-probability tokens, and its tokens, OOVs and zero-probability in-vocabulary tokens. Sums run
    in token order (as ``score_lines``). Returns the number of sentences."""
    out_lp = out.lp[first:]
    out_nz = out.lp_nz[first:]
    out_iv = out.lp_iv[first:]
    out_tokens = out.tokens[first:]
    out_oovs = out.oovs[first:]
    out_zeros = out.zeros[first:]
    li = -1
    for t in range(ids.shape[0]):
        w = ids[t]
        if w == BOS or w < 0:
            li += 1
            out_lp[li] = 0.0
            out_nz[li] = 0.0
            out_iv[li] = 0.0
            out_tokens[li] = 0
            out_oovs[li] = 0
            out_zeros[li] = 0
            continue
        v = lp[t]
        out_lp[li] += v
        out_tokens[li] += 1
        if oov[t]:
            out_oovs[li] += 1
            out_nz[li] += v
        elif zero[t]:
            out_zeros[li] += 1
        else:
            out_nz[li] += v
            out_iv[li] += v
    return li + 1


@njit(cache=True, inline="always")
def _tokenize_line(buf, i, e, vh, vs, vp, vo, vmask, remap, ids, oov, k):
    """Token ids of the line buf[i:e] (no newline inside) as ``<s> w.. </s>`` at ids[k:], the words
    found in the token table (vh, vs, vp, vo: a ``WordTable``'s arrays).
    Returns (new k, literal <s>/</s> dropped). The text rule of kernels/tokenize.py (next_token)."""
    dropped = 0
    ids[k] = BOS
    oov[k] = False
    k += 1
    while True:
        start, i, h = next_token_hashed(buf, i, e)
        if start == i:  # the end of the line
            break
        _, wid = find_word(buf, start, i, h, vh, vs, vp, vo, vmask)
        if is_sentence_mark(wid):
            dropped += 1
            continue
        if wid < 0:
            ids[k] = 0
            oov[k] = True
        else:
            r = remap[wid]
            ids[k] = r
            oov[k] = r == 0 and wid != 0
        k += 1
    ids[k] = 2
    oov[k] = False
    return k + 1, dropped


line_capacity = njit(inline="always")(records.line_capacity)


@njit(cache=True, inline="always")
def _score_block(A, k, M, out, li):
    """Score A's first k tokens (whole lines) and fold them into the lines' results from line li;
    returns the next line's index."""
    _score_range(A.ids, 0, k, M, A.lp, A.order, A.zero, A.bo, A.keys, A.tops)
    return li + line_sums(A.ids[:k], A.oov[:k], A.lp[:k], A.zero[:k], out, li)


@njit(cache=True, inline="always")
def score_lines_from(buf, i, end, words, remap, M, out, li, A):
    """Tokenize and score the whole lines of buf[i:end] (the last may lack its newline) in blocks of
    the ``BlockArrays`` A, their results into the ``LineSums`` out from line li; stops at the end or
    before a line that needs more than A's entries (``line_capacity``), with every line before it
    scored. Returns (where it stopped, next line's index, literal <s>/</s> dropped).

    ``words``: the vocabulary's ``WordTable``; ``remap[id]``: the model's id of a word of the table;
    M: the ``HashedModel``. The one body of the run-time kernel (``score_lines``) and of the
    ahead-of-time one (kernels/aot.py)."""
    vh = words.hashes
    vs = words.slots
    vp = words.pool
    vo = words.offsets
    vmask = np.uint64(vh.shape[0] - 1)
    cap = A.ids.shape[0]
    k = 0
    dropped = 0
    limit = end  # drops to i before a line too long
    while i < limit:
        e = i
        while e < end and buf[e] != 10:
            e += 1
        need = line_capacity(e - i)
        if k + need > cap and k > 0:
            li = _score_block(A, k, M, out, li)
            k = 0
        if need > cap:
            limit = i
        else:
            k, d = _tokenize_line(buf, i, e, vh, vs, vp, vo, vmask, remap, A.ids, A.oov, k)
            dropped += d
            i = e + 1
            if k >= BLOCK or (i >= end and k > 0):
                li = _score_block(A, k, M, out, li)
                k = 0
    return min(i, end), li, dropped


@njit(cache=True, inline="always")
def score_tokens_from(buf, i, end, words, remap, M, A):
    """Tokenize the whole lines of buf[i:end] (the last may lack its newline) into A.ids / A.oov as
    ``<s> w.. </s>`` per line and score every token into A.lp, A.order, A.zero (as ``score_ids``);
    stops before a line that would not fit in A. Returns (tokens, where it stopped, lines, literal
    <s>/</s> dropped). The per-token kernel compiled ahead of time (kernels/aot.py)."""
    vmask = np.uint64(words.hashes.shape[0] - 1)
    cap = A.ids.shape[0]
    k = 0
    lines = 0
    dropped = 0
    limit = end  # drops to i before a line that would not fit
    while i < limit:
        e = i
        while e < end and buf[e] != 10:
            e += 1
        if k + line_capacity(e - i) > cap:
            limit = i
        else:
            k, d = _tokenize_line(buf, i, e, words.hashes, words.slots, words.pool, words.offsets, vmask, remap,
                                  A.ids, A.oov, k)
            dropped += d
            lines += 1
            i = e + 1
    _score_range(A.ids, 0, k, M, A.lp, A.order, A.zero, A.bo, A.keys, A.tops)
    return k, min(i, end), lines, dropped


@njit(cache=True)
def _new_block_arrays(cap, N):
    bo, keys, tops = _walk_state(N)
    return BlockArrays(np.empty(cap, np.int32), np.empty(cap, np.bool_), np.empty(cap, np.float64),
                       np.empty(cap, np.int32), np.empty(cap, np.bool_), bo, keys, tops)


@njit(cache=True)
def _score_long_line(buf, i, end, words, remap, M, out, li):
    """The line at buf[i:] too long for the block arrays, scored alone in arrays of its own:
    (where the next line starts, its index, literal <s>/</s> dropped)."""
    e = i
    while e < end and buf[e] != 10:
        e += 1
    A = _new_block_arrays(line_capacity(e - i), M.order)
    return score_lines_from(buf, i, min(e + 1, end), words, remap, M, out, li, A)


@njit(cache=True)
def _score_segment(buf, i, end, words, remap, M, out, li):
    """Score the whole lines of buf[i:end] into out from line li; returns the literal <s>/</s> dropped.
    Lines are tokenized into block arrays until they hold BLOCK tokens, then scored; a line that would
    not fit is scored alone. (A function of its own, called from the parallel loop: inlined into it,
    numba's parallel lowering indexed out of bounds.)"""
    A = _new_block_arrays(2 * BLOCK, M.order)
    i, li, dropped = score_lines_from(buf, i, end, words, remap, M, out, li, A)
    while i < end:
        i, li, d = _score_long_line(buf, i, end, words, remap, M, out, li)
        dropped += d
        if i < end:
            i, li, d = score_lines_from(buf, i, end, words, remap, M, out, li, A)
            dropped += d
    return dropped


@njit(cache=True, parallel=True)
def score_lines(buf, seg_start, seg_line, words, remap, M, out, seg_dropped):
    """Tokenize and score whole lines of UTF-8 bytes in one pass, per-line results only.

    ``buf[seg_start[s]:seg_start[s+1]]`` are whole lines (the last line may lack its newline),
    scored in parallel; ``seg_line[s]`` is the index of the segment's first line in the outputs.
    ``words``: the vocabulary's token table (a ``WordTable``), ``remap[id]`` the model's id of a
    word of the table; ``M``: the ``HashedModel``. Per line: as ``line_sums``, into the ``LineSums``
    out. ``seg_dropped[s]``: literal <s>/</s> dropped in segment s.
    """
    for s in prange(seg_start.shape[0] - 1):
        seg_dropped[s] = _score_segment(buf, seg_start[s], seg_start[s + 1], words, remap, M, out, seg_line[s])
