"""Text counts (``w1 w2 .. wn<TAB>count`` per line) <-> word ids and counts, in numba. No I/O.

Parsing shares the vocabulary table of kernels.tokenize (the same hashes, the same bytes per word,
ids in order of first appearance), so the words of a counts line are the tokens the corpus reader
would make of them: split at ASCII whitespace. Writing formats whole blocks of n-grams into one
byte buffer (Python's per-line formatting would cost seconds on millions of n-grams).
"""

import numpy as np
from numba import njit

from lmtools.kernels.tokenize import find_word, fnv1a, grow_table, is_space

INT64_MAX = np.int64(9223372036854775807)

# Why a line was refused (parse_counts' status), for the reader's message.
OK = 0
NO_TAB = 1  # no TAB in the line (an empty line too)
NO_WORDS = 2  # nothing but whitespace before the TAB
NOT_INTEGER = 3  # the count is not a decimal integer
NEGATIVE = 4  # the count is negative
TOO_LARGE = 5  # the count does not fit 64 bits
ZERO = 6  # a count of 0 for an n-gram of order 2 or more
BOS_INSIDE = 7  # <s> after the first word
EOS_INSIDE = 8  # </s> before the last word
ORDER_TOO_LARGE = 9  # more words than MAX_ORDER


@njit(cache=True)
def _parse(buf, hashes, slots, pool, offsets, ids, orders, counts, max_order, st):
    """Parse whole lines from st[0]; stop to grow the word table (returns 1) or at a bad line
    (returns 2, st[4] the reason, st[1] its index); 0 at the end of ``buf``.
    ``st``: [position, lines, ids, words, reason, needed length]."""
    n = buf.shape[0]
    mask = np.uint64(hashes.shape[0] - 1)
    pos, n_lines, n_ids, n_words = st[0], st[1], st[2], st[3]
    while pos < n:
        end = pos
        while end < n and buf[end] != 10:
            end += 1
        tab = end - 1
        while tab >= pos and buf[tab] != 9:
            tab -= 1
        reason = OK
        if tab < pos:
            reason = NO_TAB
        value = np.int64(0)
        if reason == OK:
            i = tab + 1
            while i < end and is_space(buf[i]):
                i += 1
            minus = i < end and buf[i] == 45
            if minus:
                i += 1
            first = i
            overflow = False
            while i < end and buf[i] >= 48 and buf[i] <= 57:
                d = np.int64(buf[i] - 48)
                if value > (INT64_MAX - d) // 10:
                    overflow = True
                else:
                    value = value * 10 + d
                i += 1
            digits = i - first
            while i < end and is_space(buf[i]):
                i += 1
            if digits == 0 or i != end:
                reason = NOT_INTEGER
            elif minus:
                reason = NEGATIVE
            elif overflow:
                reason = TOO_LARGE
        if reason != OK:
            st[1], st[4] = n_lines, reason
            return 2
        start_ids = n_ids
        j = pos
        while True:
            while j < tab and is_space(buf[j]):
                j += 1
            if j >= tab:
                break
            s = j
            while j < tab and not is_space(buf[j]):
                j += 1
            if n_ids - start_ids >= max_order:
                st[1], st[4] = n_lines, ORDER_TOO_LARGE
                return 2
            h = fnv1a(buf, s, j)
            slot, wid = find_word(buf, s, j, h, hashes, slots, pool, offsets, mask)
            if wid < 0:
                length = j - s
                if (offsets[n_words] + length > pool.shape[0] or n_words + 2 > offsets.shape[0]
                        or 2 * (n_words + 1) > hashes.shape[0]):
                    # room first; the line is parsed again from its start (its words found so far
                    # are in the table already)
                    st[0], st[1], st[2], st[3], st[5] = pos, n_lines, start_ids, n_words, length
                    return 1
                base = offsets[n_words]
                for k in range(length):
                    pool[base + k] = buf[s + k]
                offsets[n_words + 1] = base + length
                hashes[slot] = h
                slots[slot] = n_words
                wid = n_words
                n_words += 1
            ids[n_ids] = wid
            n_ids += 1
        order = n_ids - start_ids
        if order == 0:
            reason = NO_WORDS
        elif value == 0 and order >= 2:
            reason = ZERO
        else:
            for q in range(order):
                w = ids[start_ids + q]
                if w == 1 and q != 0:
                    reason = BOS_INSIDE
                    break
                if w == 2 and q != order - 1:
                    reason = EOS_INSIDE
                    break
        if reason != OK:
            st[1], st[3], st[4] = n_lines, n_words, reason
            return 2
        orders[n_lines] = order
        counts[n_lines] = value
        n_lines += 1
        pos = end + 1
    st[0], st[1], st[2], st[3] = pos, n_lines, n_ids, n_words
    return 0


@njit(cache=True)
def parse_counts(buf, hashes, slots, pool, offsets, n_words, ids, orders, counts, max_order):
    """Parse ``buf`` (uint8, whole lines of text counts; a last line without a newline counts too).

    Parameters
    ----------
    buf : uint8[:] the text.
    hashes, slots, pool, offsets, n_words : the word table of kernels.tokenize (grown as needed).
    ids : int32[:] output: the word ids of every line, one after the other (at least len(buf) // 2 + 1).
    orders : int32[:] output: each line's number of words; counts : int64[:] its count (a slot per line).
    max_order : int, the most words a line may have.

    Returns
    -------
    (status, lines, n_ids, hashes, slots, pool, offsets, n_words): status 0, or a reason above for
    the line with index ``lines`` (the lines before it are parsed).
    """
    st = np.zeros(6, np.int64)
    st[3] = n_words
    while True:
        r = _parse(buf, hashes, slots, pool, offsets, ids, orders, counts, max_order, st)
        if r != 1:
            break
        hashes, slots, pool, offsets = grow_table(hashes, slots, pool, offsets, st[3], st[5])
    status = 0 if r == 0 else st[4]
    return status, st[1], st[2], hashes, slots, pool, offsets, st[3]


@njit(cache=True, inline="always")
def _put_int(out, o, value):
    """Write the decimal digits of ``value`` (>= 0) at out[o:]; returns the new position."""
    if value == 0:
        out[o] = 48
        return o + 1
    k = 0
    v = value
    while v > 0:
        k += 1
        v //= 10
    v = value
    for q in range(k - 1, -1, -1):
        out[o + q] = 48 + v % 10
        v //= 10
    return o + k


@njit(cache=True)
def format_counts(pool, offsets, rows, counts, out):
    """Lines ``w1 w2 .. wn<TAB>count\\n`` of ``rows`` (m, n word ids) into ``out`` (room enough:
    see ``format_size``); returns the bytes written."""
    o = 0
    m, n = rows.shape
    for r in range(m):
        for c in range(n):
            if c:
                out[o] = 32
                o += 1
            w = rows[r, c]
            for b in range(offsets[w], offsets[w + 1]):
                out[o] = pool[b]
                o += 1
        out[o] = 9
        o = _put_int(out, o + 1, counts[r])
        out[o] = 10
        o += 1
    return o


def format_size(lengths, rows) -> int:
    """Bytes that ``format_counts`` may write for ``rows``: the words, separators, 20 digits, newline."""
    m, n = rows.shape
    return int(lengths[rows].sum()) + m * (n + 21)
