"""Bytes -> token ids, in numba: the fast path of every text reader.

A line is a sentence: the kernel writes ``<s>`` (id 1), the ids of its whitespace-separated tokens
and ``</s>`` (id 2). Tokens are split at ASCII whitespace only (space, tab, CR, VT, FF), as KenLM
does; a literal ``<s>`` or ``</s>`` in the text is dropped. ``next_token`` and ``is_sentence_mark``
are that text rule in numba, for every kernel that reads text (io.text.line_words is the Python
copy; tests check they agree). Words are found through an open-addressing hash table of 64-bit FNV-1a hashes whose hits are
confirmed byte for byte against the word's stored bytes, so two words never share an id.

The vocabulary state is a tuple of arrays (see ``new_table``); kernels return the grown arrays.
No I/O here.
"""

import numpy as np
from numba import njit

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, inline="always")
def is_space(b):
    # space, \t, \n, \v, \f, \r
    return b == 32 or (b >= 9 and b <= 13)


@njit(cache=True, inline="always")
def _skip_blanks(buf, i, end):
    """The first position from i that is not whitespace other than a newline (or ``end``)."""
    # The loops here and in next_token_hashed end in their condition, with no break or early return:
    # a break left numba's reference counting of ``buf`` (two atomic increments and decrements per
    # token) in the tokenizing loop that inlines them (kernels.tokenize._scan: ~25% slower).
    while i < end and buf[i] != 10 and is_space(buf[i]):
        i += 1
    return i


@njit(cache=True, inline="always")
def next_token(buf, i, end):
    """The text rule: (start, stop) of the next token of buf[i:end], skipping ASCII whitespace.
    A newline is a sentence end, not skipped: start == stop at a newline (start is its position) and
    at ``end`` (start == end)."""
    start = i = _skip_blanks(buf, i, end)
    if i < end and buf[i] == 10:
        return start, start
    while i < end and not is_space(buf[i]):
        i += 1
    return start, i


@njit(cache=True, inline="always")
def next_token_hashed(buf, i, end):
    """``next_token`` that also gives the token's ``fnv1a`` hash, made in the same pass over its
    bytes: (start, stop, hash); no token (start == stop), no meaning to the hash."""
    start = i = _skip_blanks(buf, i, end)
    h = FNV_OFFSET
    while i < end and not is_space(buf[i]):  # at a newline: no bytes, start == stop
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
        i += 1
    return start, i, _fnv_spread(h)


@njit(cache=True, inline="always")
def is_sentence_mark(wid):
    """A literal <s> (id 1) or </s> (id 2) in the text: dropped from the sentence."""
    return wid == 1 or wid == 2


@njit(cache=True, inline="always")
def fnv1a(buf, start, end):
    h = FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
    return _fnv_spread(h)


@njit(cache=True, inline="always")
def _fnv_spread(h):
    # FNV's low bits cluster for short words; mix so that the table index (low bits) spreads.
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, inline="always")
def _same_bytes(buf, start, end, pool, pstart, pend):
    if pend - pstart != end - start:
        return False
    for k in range(end - start):
        if buf[start + k] != pool[pstart + k]:
            return False
    return True


@njit(cache=True)
def _rehash(hashes, slots, capacity):
    """A table of ``capacity`` slots holding the same words (capacity a power of two)."""
    new_hashes = np.zeros(capacity, np.uint64)
    new_slots = np.full(capacity, -1, np.int32)
    mask = np.uint64(capacity - 1)
    for s in range(slots.shape[0]):
        wid = slots[s]
        if wid >= 0:
            j = hashes[s] & mask
            while new_slots[j] >= 0:
                j = (j + np.uint64(1)) & mask
            new_hashes[j] = hashes[s]
            new_slots[j] = wid
    return new_hashes, new_slots


@njit(cache=True, inline="always")
def find_word(buf, start, end, h, hashes, slots, pool, offsets, mask):
    """(slot, word id) of the word buf[start:end], or (free slot, -1) when it is not in the table."""
    j = h & mask
    while True:
        cand = slots[j]
        if cand < 0:
            return j, -1
        if hashes[j] == h and _same_bytes(buf, start, end, pool, offsets[cand], offsets[cand + 1]):
            return j, cand
        j = (j + np.uint64(1)) & mask


@njit(cache=True)
def grow_table(hashes, slots, pool, offsets, n_words, length):
    """Room for one more word of ``length`` bytes: bigger pool, offsets or hash table as needed."""
    if offsets[n_words] + length > pool.shape[0]:
        new_pool = np.empty(max(2 * pool.shape[0], offsets[n_words] + length), np.uint8)
        new_pool[: offsets[n_words]] = pool[: offsets[n_words]]
        pool = new_pool
    if n_words + 2 > offsets.shape[0]:
        new_off = np.empty(2 * offsets.shape[0], np.int64)
        new_off[: n_words + 1] = offsets[: n_words + 1]
        offsets = new_off
    if 2 * (n_words + 1) > hashes.shape[0]:
        hashes, slots = _rehash(hashes, slots, 2 * hashes.shape[0])
    return hashes, slots, pool, offsets


# The scanning loop never reassigns its arrays (that would stop numba from keeping their data
# pointers in registers and cost ~5x); when a new word needs room it stops, the driver grows the
# arrays, and the loop resumes at the same token. ``st`` holds the resumable state:
# [position, n_ids, n_lines, n_dropped, n_oov, line_open, n_words, needed_length].
@njit(cache=True)
def _scan(buf, hashes, slots, pool, offsets, grow, ids, oov, st):
    n = buf.shape[0]
    mask = np.uint64(hashes.shape[0] - 1)
    i, n_ids, n_lines, n_dropped, n_oov, line_open, n_words = st[0], st[1], st[2], st[3], st[4], st[5], st[6]
    while i < n:
        start, end, h = next_token_hashed(buf, i, n)
        if start == end:
            i = start
            if i == n:
                break
            # a newline ends the sentence
            if line_open == 0:
                ids[n_ids] = 1
                oov[n_ids] = False
                n_ids += 1
            ids[n_ids] = 2
            oov[n_ids] = False
            n_ids += 1
            n_lines += 1
            line_open = 0
            i += 1
            continue
        if line_open == 0:
            ids[n_ids] = 1
            oov[n_ids] = False
            n_ids += 1
            line_open = 1
        i = end
        j, wid = find_word(buf, start, end, h, hashes, slots, pool, offsets, mask)
        is_oov = False
        if wid < 0:
            if grow:
                length = end - start
                if (offsets[n_words] + length > pool.shape[0] or n_words + 2 > offsets.shape[0]
                        or 2 * (n_words + 1) > hashes.shape[0]):
                    st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7] = (
                        start, n_ids, n_lines, n_dropped, n_oov, line_open, n_words, length)
                    return False
                base = offsets[n_words]
                for k in range(length):
                    pool[base + k] = buf[start + k]
                offsets[n_words + 1] = base + length
                hashes[j] = h
                slots[j] = n_words
                wid = n_words
                n_words += 1
            else:
                wid = 0
                is_oov = True
                n_oov += 1
        if is_sentence_mark(wid):  # a literal <s> or </s> inside a line is dropped
            n_dropped += 1
            continue
        ids[n_ids] = wid
        oov[n_ids] = is_oov
        n_ids += 1
    if line_open == 1 or (n > 0 and buf[n - 1] != 10):  # last line without a newline (blank: an empty sentence)
        if line_open == 0:
            ids[n_ids] = 1
            oov[n_ids] = False
            n_ids += 1
        ids[n_ids] = 2
        oov[n_ids] = False
        n_ids += 1
        n_lines += 1
        line_open = 0
    st[0], st[1], st[2], st[3], st[4], st[5], st[6] = i, n_ids, n_lines, n_dropped, n_oov, line_open, n_words
    return True


@njit(cache=True)
def tokenize(buf, hashes, slots, pool, offsets, n_words, grow, ids, oov):
    """Tokenize ``buf`` (uint8, whole lines; a last line without newline is a line too).

    Parameters
    ----------
    buf : uint8[:] the text bytes.
    hashes, slots : the hash table (uint64 hash and int32 word id per slot, -1 = empty).
    pool, offsets : the words' bytes; word i is ``pool[offsets[i]:offsets[i + 1]]``.
    n_words : number of words in the table.
    grow : add unknown words to the table (counting) or map them to ``<unk>`` (scoring).
    ids : int32[:] output, at least (tokens + 2 * lines) long; oov : bool[:] output, same length.

    Returns
    -------
    (n_ids, n_lines, n_dropped, n_oov, hashes, slots, pool, offsets, n_words): ids[:n_ids] holds
    ``<s> w.. </s>`` per line, oov marks words mapped to ``<unk>``, n_dropped counts literal
    ``<s>``/``</s>`` tokens removed from the text.
    """
    st = np.zeros(8, np.int64)
    st[6] = n_words
    while not _scan(buf, hashes, slots, pool, offsets, grow, ids, oov, st):
        hashes, slots, pool, offsets = grow_table(hashes, slots, pool, offsets, st[6], st[7])
    return st[1], st[2], st[3], st[4], hashes, slots, pool, offsets, st[6]


def new_table(capacity: int = 1 << 16):
    """An empty vocabulary state: (hashes, slots, pool, offsets, n_words)."""
    return (np.zeros(capacity, np.uint64), np.full(capacity, -1, np.int32), np.empty(1 << 16, np.uint8),
            np.zeros(1 << 12, np.int64), 0)
