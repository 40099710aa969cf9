"""ARPA n-gram sections -> arrays, in numba (no I/O).

A section of order n is a run of lines ``log10p w1 .. wn [backoff]`` separated by ASCII
whitespace. Words are looked up in an open-addressing table of 64-bit FNV-1a hashes built from
the unigram section, confirmed byte for byte. Numbers are parsed here (decimal, optional
exponent, ``inf``; no ``nan``); the value is rounded once to float64 and then to float32. A log10
probability above 0 (beyond LOGPROB_TOLERANCE, +inf included) and an infinite backoff are errors;
-inf as a log10 probability is log 0.
"""

import numpy as np
from numba import njit

from lmtools.kernels.tokenize import is_space  # fields are split at ASCII whitespace, as text tokens

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)

# error codes returned by parse_section
ERR_NONE = 0
ERR_NUMBER = 1  # the first field is not a number
ERR_FEW = 2  # fewer than n words
ERR_MANY = 3  # more fields than n words and a backoff
ERR_WORD = 4  # a word that has no unigram
ERR_BACKOFF = 5  # the last field is not a number
ERR_LOGPROB_VALUE = 6  # log10 p = +inf or above 0 (nan is not a number to begin with)
ERR_BACKOFF_VALUE = 7  # backoff +-inf
LOGPROB_TOLERANCE = 1e-4  # log10 p above 0 by more than this is not a probability
FLOAT32_MAX = 3.4028234663852886e38
ERR_MESSAGES = {
    ERR_NUMBER: "the log10 probability is not a number",
    ERR_FEW: "too few words for this section",
    ERR_MANY: "too many fields",
    ERR_WORD: "a word that is not in the unigram section",
    ERR_BACKOFF: "the backoff is not a number",
    ERR_LOGPROB_VALUE: "the log10 probability is above 0 (p > 1)",
    ERR_BACKOFF_VALUE: "the backoff is infinite",
}


@njit(cache=True, inline="always")
def _fnv1a(buf, start, end):
    # inlined: the error return of a call kept numba's reference counting of _lookup's arrays
    # (atomic operations) in parse_section's loop, once per word
    h = FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
    return h


@njit(cache=True)
def build_table(pool, offsets):
    """Hash table (hashes uint64, slots int32 word id or -1) for the words of ``pool``."""
    nw = offsets.shape[0] - 1
    cap = 16
    while cap < 2 * nw + 2:
        cap *= 2
    hashes = np.zeros(cap, np.uint64)
    slots = np.full(cap, -1, np.int32)
    mask = np.uint64(cap - 1)
    for w in range(nw):
        h = _fnv1a(pool, offsets[w], offsets[w + 1])
        j = h & mask
        while slots[j] >= 0:
            j = (j + np.uint64(1)) & mask
        hashes[j] = h
        slots[j] = w
    return hashes, slots


@njit(cache=True, inline="always")
def _lookup(buf, start, end, hashes, slots, pool, offsets):
    # One return, and loops that end in their condition: parse_section inlines this for every
    # word, and a break or early return left numba's reference counting of the arrays (atomic
    # operations) in its loop.
    h = _fnv1a(buf, start, end)
    mask = np.uint64(hashes.shape[0] - 1)
    j = h & mask
    length = end - start
    found = -1
    while found < 0 and slots[j] >= 0:
        w = slots[j]
        ps = offsets[w]
        if hashes[j] == h and offsets[w + 1] - ps == length:
            k = 0
            while k < length and buf[start + k] == pool[ps + k]:
                k += 1
            if k == length:
                found = w
        j = (j + np.uint64(1)) & mask
    return found


# states of parse_number's scan
_N_START, _N_SIGN, _N_INT, _N_FRAC, _N_EXP, _N_ESIGN, _N_EDIG, _N_I, _N_IN, _N_INF, _N_BAD = range(11)


@njit(cache=True, inline="always")
def parse_number(buf, start, end):
    """(ok, value) for the decimal number in buf[start:end] (sign, digits, '.', exponent, inf)."""
    # One loop over the bytes, which ends in its condition, and one return: parse_section inlines
    # this for every number, and a return or a read of ``buf`` in only some branches left numba's
    # reference counting of ``buf`` (atomic operations) in its loop.
    neg = False
    mant = np.int64(0)
    exp10 = 0
    ndig = 0
    eneg = False
    e = 0
    state = _N_START
    i = start
    while i < end and state != _N_BAD:
        c = buf[i]
        digit = c >= 48 and c <= 57
        if (state == _N_START or state == _N_SIGN or state == _N_INT) and digit:
            if mant < 100000000000000000:
                mant = mant * 10 + (c - 48)
            else:
                exp10 += 1
            ndig += 1
            state = _N_INT
        elif state == _N_FRAC and digit:
            if mant < 100000000000000000:
                mant = mant * 10 + (c - 48)
                exp10 -= 1
            ndig += 1
        elif (state == _N_EXP or state == _N_ESIGN or state == _N_EDIG) and digit:
            if e < 100000:
                e = e * 10 + (c - 48)
            state = _N_EDIG
        elif state == _N_START and (c == 45 or c == 43):  # - +
            neg = c == 45
            state = _N_SIGN
        elif (state == _N_START or state == _N_SIGN or state == _N_INT) and c == 46:  # .
            state = _N_FRAC
        elif (state == _N_INT or state == _N_FRAC) and (c == 101 or c == 69):  # e E
            state = _N_EXP
        elif state == _N_EXP and (c == 45 or c == 43):
            eneg = c == 45
            state = _N_ESIGN
        elif (state == _N_START or state == _N_SIGN) and (c | 32) == 105:  # inf, any case
            state = _N_I
        elif state == _N_I and (c | 32) == 110:
            state = _N_IN
        elif state == _N_IN and (c | 32) == 102:
            state = _N_INF
        else:
            state = _N_BAD
        i += 1
    ok = state == _N_INF or (ndig > 0 and (state == _N_INT or state == _N_FRAC or state == _N_EDIG))
    v = 0.0
    if state == _N_INF:
        v = np.inf
    elif ok:
        exp10 += -e if eneg else e
        v = float(mant)
        if exp10 > 0:
            if exp10 <= 22:
                v = v * 10.0 ** exp10
            else:
                v = v * 10.0 ** exp10 if exp10 < 400 else (np.inf if mant != 0 else 0.0)
        elif exp10 < 0:
            if exp10 >= -22:
                v = v / 10.0 ** (-exp10)
            elif exp10 > -400:
                v = v / 10.0 ** 22 / 10.0 ** (-exp10 - 22)
            else:
                v = 0.0
    return ok, (-v if neg and ok else v)


@njit(cache=True)
def parse_section(buf, start, end, n, hashes, slots, pool, offsets, ngrams, logprob, backoff):
    """Parse the lines of buf[start:end] as order-n ARPA entries (blank lines skipped).

    Writes rows into ngrams (m, n) int32, logprob and backoff (float32; backoff 0 when absent).
    Returns (rows, error code, index of the offending line counted from ``start``, byte offset of
    that line, number of rows that had a backoff field).
    """
    i = start
    rows = 0
    line = 0
    with_bo = 0
    while i < end:
        ls = i
        # find the end of the line
        le = i
        while le < end and buf[le] != 10:
            le += 1
        # fields
        j = ls
        field = 0
        bad = 0
        has_bo = False
        while True:
            while j < le and is_space(buf[j]):
                j += 1
            if j >= le:
                break
            fs = j
            while j < le and not is_space(buf[j]):
                j += 1
            fe = j
            if field == 0:
                ok, v = parse_number(buf, fs, fe)
                if not ok:
                    bad = ERR_NUMBER
                    break
                if v > LOGPROB_TOLERANCE:
                    bad = ERR_LOGPROB_VALUE
                    break
                if rows >= logprob.shape[0]:
                    bad = ERR_MANY
                    break
                logprob[rows] = v
                backoff[rows] = 0.0
            elif field <= n:
                w = _lookup(buf, fs, fe, hashes, slots, pool, offsets)
                if w < 0:
                    bad = ERR_WORD
                    break
                ngrams[rows, field - 1] = w
            elif field == n + 1:
                ok, v = parse_number(buf, fs, fe)
                if not ok:
                    bad = ERR_BACKOFF
                    break
                if not (abs(v) <= FLOAT32_MAX):  # infinite, or so as a float32
                    bad = ERR_BACKOFF_VALUE
                    break
                backoff[rows] = v
                has_bo = True
            else:
                bad = ERR_MANY
                break
            field += 1
        if bad == 0 and field > 0 and field <= n:
            bad = ERR_FEW
        if bad != 0:
            return rows, bad, line, ls, with_bo
        if field > 0:
            rows += 1
            if has_bo:
                with_bo += 1
        line += 1
        i = le + 1
    return rows, ERR_NONE, line, i, with_bo


# ----------------------------------------------------------------------------------------------
# Writing: shortest decimal that reads back to the same float32


_POW10 = np.array([10.0 ** k for k in range(-60, 61)])


@njit(cache=True, inline="always")
def _pow10(k):
    if -60 <= k <= 60:
        return _POW10[k + 60]
    return 10.0 ** k


@njit(cache=True)
def _parse_back(m, e10):
    # value m * 10**e10 as the reader computes it (one division or multiplication in float64)
    if e10 >= 0:
        return float(m) * _pow10(e10)
    return float(m) / _pow10(-e10)


@njit(cache=True, inline="always")
def _push(t0, t1, t2, n, c):
    """Append byte c to the text of n bytes packed in t0, t1, t2 (8 bytes each, first byte lowest)."""
    sh = np.uint64(8 * (n & 7))
    b = np.uint64(c) << sh
    if n < 8:
        t0 |= b
    elif n < 16:
        t1 |= b
    else:
        t2 |= b
    return t0, t1, t2, n + 1


@njit(cache=True)
def _float32_text(x):
    """The shortest decimal form of float32 ``x`` that reads back to x, packed as _push packs it:
    (t0, t1, t2, length). 0 is '0', integers have no '.0', -inf is '-99' (log 0 in ARPA). At most
    17 bytes: a sign, and 16 digits or '0.000' and 9 digits or 'd.dddddddde-XX'."""
    # Made in integers, not written to the output here: format_lines writes the bytes in one loop
    # (_put_text). The kernel it replaces (format_float32, called per value) wrote to its array in
    # some branches, returned early and made two arrays: numba's reference counting (atomic
    # operations) and two allocations per value in format_lines' loop.
    z = np.uint64(0)
    t0, t1, t2, n = z, z, z, 0
    xf = np.float32(x)
    if xf == 0:
        return _push(t0, t1, t2, n, 48)
    if np.isinf(xf) and xf < 0:
        for c in (45, 57, 57):  # -99
            t0, t1, t2, n = _push(t0, t1, t2, n, c)
        return t0, t1, t2, n
    if np.isnan(xf) or np.isinf(xf):
        for c in (110, 97, 110) if np.isnan(xf) else (105, 110, 102):
            t0, t1, t2, n = _push(t0, t1, t2, n, c)
        return t0, t1, t2, n
    if xf < 0:
        t0, t1, t2, n = _push(t0, t1, t2, n, 45)
        xf = -xf
    v = float(xf)
    e = int(np.floor(np.log10(v)))
    m = np.int64(0)
    exp10 = 0
    for p in range(1, 10):
        exp10 = e - p + 1
        m = np.int64(np.round(v / _pow10(exp10))) if exp10 >= 0 else np.int64(np.round(v * _pow10(-exp10)))
        if np.float32(_parse_back(m, exp10)) == xf:
            break
    # digits of m, least significant first: digit k is 48 + (d >> 4k & 15) (m has at most 10)
    d = z
    nd = 0
    mm = m
    while mm > 0:
        d |= np.uint64(mm % 10) << np.uint64(4 * nd)
        mm //= 10
        nd += 1
    # strip trailing zeros into the exponent
    start = 0
    while start < nd - 1 and (d >> np.uint64(4 * start)) & np.uint64(15) == 0:
        start += 1
        exp10 += 1
    nd_eff = nd - start
    # value = digits (most significant first: digit nd-1 .. digit start) * 10**exp10
    point = nd_eff + exp10  # position of the decimal point counted from the first digit
    if -3 <= point <= 16:  # as Python and numpy: scientific below 1e-4 and from 1e16
        if point <= 0:
            t0, t1, t2, n = _push(t0, t1, t2, n, 48)
            t0, t1, t2, n = _push(t0, t1, t2, n, 46)
            for _ in range(-point):
                t0, t1, t2, n = _push(t0, t1, t2, n, 48)
            for i in range(nd - 1, start - 1, -1):
                t0, t1, t2, n = _push(t0, t1, t2, n, 48 + ((d >> np.uint64(4 * i)) & np.uint64(15)))
        else:
            k = 0
            for i in range(nd - 1, start - 1, -1):
                if k == point:
                    t0, t1, t2, n = _push(t0, t1, t2, n, 46)
                t0, t1, t2, n = _push(t0, t1, t2, n, 48 + ((d >> np.uint64(4 * i)) & np.uint64(15)))
                k += 1
            while k < point:
                t0, t1, t2, n = _push(t0, t1, t2, n, 48)
                k += 1
    else:  # d.ddde-XX
        t0, t1, t2, n = _push(t0, t1, t2, n, 48 + ((d >> np.uint64(4 * (nd - 1))) & np.uint64(15)))
        if nd_eff > 1:
            t0, t1, t2, n = _push(t0, t1, t2, n, 46)
            for i in range(nd - 2, start - 1, -1):
                t0, t1, t2, n = _push(t0, t1, t2, n, 48 + ((d >> np.uint64(4 * i)) & np.uint64(15)))
        ex = point - 1
        t0, t1, t2, n = _push(t0, t1, t2, n, 101)
        if ex < 0:
            t0, t1, t2, n = _push(t0, t1, t2, n, 45)
            ex = -ex
        else:
            t0, t1, t2, n = _push(t0, t1, t2, n, 43)
        if ex < 10:
            t0, t1, t2, n = _push(t0, t1, t2, n, 48)
        if ex >= 10:  # ex <= 45 for a float32: two digits at most
            t0, t1, t2, n = _push(t0, t1, t2, n, 48 + ex // 10)
        if ex > 0:
            t0, t1, t2, n = _push(t0, t1, t2, n, 48 + ex % 10)
    return t0, t1, t2, n


@njit(cache=True, inline="always")
def _put_text(out, pos, t0, t1, t2, n):
    """Write the n bytes packed in t0, t1, t2 (_push) into out[pos:]; return the new position."""
    for k in range(n):
        t = t0 if k < 8 else (t1 if k < 16 else t2)
        out[pos + k] = np.uint8((t >> np.uint64(8 * (k & 7))) & np.uint64(255))
    return pos + n


@njit(cache=True)
def format_lines(ngrams, logprob, backoff, with_backoff, pool, offsets, out):
    """ARPA lines ``log10p<TAB>w1 .. wn[<TAB>backoff]\\n`` for all rows into ``out`` (uint8, large
    enough: see line_bytes_bound). Returns the number of bytes written."""
    pos = 0
    m, n = ngrams.shape
    for i in range(m):
        t0, t1, t2, nb = _float32_text(logprob[i])
        pos = _put_text(out, pos, t0, t1, t2, nb)
        out[pos] = 9
        pos += 1
        for k in range(n):
            if k:
                out[pos] = 32
                pos += 1
            w = ngrams[i, k]
            for b in range(offsets[w], offsets[w + 1]):
                out[pos] = pool[b]
                pos += 1
        if with_backoff:
            out[pos] = 9
            pos += 1
            t0, t1, t2, nb = _float32_text(backoff[i])
            pos = _put_text(out, pos, t0, t1, t2, nb)
        out[pos] = 10
        pos += 1
    return pos


@njit(cache=True)
def line_bytes_bound(ngrams, offsets):
    """An upper bound of the bytes format_lines writes for these rows."""
    total = 0
    m, n = ngrams.shape
    for i in range(m):
        total += 2 * 32 + n + 2
        for k in range(n):
            w = ngrams[i, k]
            total += offsets[w + 1] - offsets[w]
    return total
