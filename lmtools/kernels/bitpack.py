"""N-gram rows and their counts packed at the bits they need, for temporary files (numba, no I/O).

Counting and estimating in a memory budget write every n-gram to disk once or twice and read it back
(lmtools.io.countstream's runs, lmtools.bounded's partitions). As int32 ids and a uint32 count a
5-gram takes 24 bytes; its ids need only the bits of the largest id in view (14 for a 10k-word
vocabulary) and most counts a few bits, so the same record packs into 11 bytes or so. Writing those
bytes through the page cache and reading them back is the larger part of the cost (system time, and
real disk traffic once the files outgrow the page cache); packing and unpacking costs a few
nanoseconds per value.

A packed chunk holds k records of ``n * id_bits + count_bits`` bits each, record i starting at bit
``i * (n * id_bits + count_bits)`` of an array of little-endian uint64 words, ids first (column
order), the count last; bit 0 of a value is its lowest. ``chunk_widths`` gives the widths a chunk
needs, ``pack_chunk`` writes it, ``unpack_rows`` reads any run of its records back into int32 rows
and int64 counts.
"""

import numpy as np
from numba import njit


def words_for(k: int, n: int, id_bits: int, count_bits: int) -> int:
    """uint64 words of a chunk of k records of order n."""
    return (k * (n * id_bits + count_bits) + 63) // 64


@njit(cache=True)
def chunk_widths(rows, counts, lo, hi):
    """(id_bits, count_bits) for records lo..hi-1: the bit lengths of the largest id and count (at
    least 1); raises for a negative id or count (nothing in a run is negative)."""
    top_id = 0
    top_count = 0
    n = rows.shape[1]
    for i in range(lo, hi):
        for c in range(n):
            x = rows[i, c]
            if x < 0:
                raise ValueError("bitpack: a negative word id")
            if x > top_id:
                top_id = x
        y = counts[i]
        if y < 0:
            raise ValueError("bitpack: a negative count")
        if y > top_count:
            top_count = y
    id_bits = 1
    while (top_id >> id_bits) != 0:
        id_bits += 1
    count_bits = 1
    while (top_count >> count_bits) != 0:
        count_bits += 1
    return id_bits, count_bits


@njit(cache=True)
def pack_chunk(rows, counts, lo, hi, id_bits, count_bits, words, at):
    """Pack records lo..hi-1 into ``words[at:]`` (words_for(hi - lo, ...) words); every id must be
    below 2**id_bits and every count below 2**count_bits (chunk_widths). Returns the next free word."""
    n = rows.shape[1]
    acc = np.uint64(0)  # the bits not yet stored, the lowest first
    held = 0
    q = at
    for i in range(lo, hi):
        for c in range(n + 1):
            if c < n:
                v = np.uint64(rows[i, c])
                w = id_bits
            else:
                v = np.uint64(counts[i])
                w = count_bits
            acc |= v << np.uint64(held)
            if held + w >= 64:
                words[q] = acc
                q += 1
                rest = held + w - 64  # bits of v that did not fit
                acc = v >> np.uint64(w - rest) if rest > 0 else np.uint64(0)
                held = rest
            else:
                held += w
    if held > 0:
        words[q] = acc
        q += 1
    return q


@njit(cache=True)
def unpack_rows(words, first, k, id_bits, count_bits, rows, counts, out):
    """Records first..first+k-1 of the chunk whose words start at ``words[0]`` into
    ``rows[out:out + k]`` (int32, n columns) and ``counts[out:out + k]``."""
    if k <= 0:
        return
    n = rows.shape[1]
    pos = first * (n * id_bits + count_bits)
    q = pos >> 6
    cur = words[q] >> np.uint64(pos & 63)  # the bits not yet read, the next lowest
    avail = 64 - (pos & 63)
    q += 1
    for i in range(k):
        for c in range(n + 1):
            w = id_bits if c < n else count_bits
            mask = (np.uint64(1) << np.uint64(w)) - np.uint64(1)
            if avail >= w:
                v = cur & mask
                cur = cur >> np.uint64(w) if avail > w else np.uint64(0)
                avail -= w
            else:  # the value goes on in the next word (avail < w <= 63)
                nxt = words[q]
                q += 1
                v = (cur | (nxt << np.uint64(avail))) & mask
                cur = nxt >> np.uint64(w - avail)
                avail = 64 - (w - avail)
            if c < n:
                rows[out + i, c] = np.int32(v)
            else:
                counts[out + i] = np.int64(v)


HEADER_WORDS = 2  # a chunk's header: k | id_bits << 32 | count_bits << 40, then its word count


def piece_words(k: int, n: int, chunk_rows: int) -> int:
    """An upper bound on the words ``pack_chunks`` writes for k records of order n."""
    chunks = -(-k // chunk_rows)
    return chunks * (HEADER_WORDS + 1) + (k * (n * 31 + 63) + 63) // 64


@njit(cache=True)
def pack_chunks(rows, counts, lo, hi, chunk_rows, words):
    """Records lo..hi-1 as chunks of at most ``chunk_rows`` records, each a header (HEADER_WORDS) and
    its records at the widths it needs, into ``words`` from its start (``piece_words`` of room);
    returns the words written."""
    n = rows.shape[1]
    at = 0
    for a in range(lo, hi, chunk_rows):
        b = min(hi, a + chunk_rows)
        id_bits, count_bits = chunk_widths(rows, counts, a, b)
        used = ((b - a) * (n * id_bits + count_bits) + 63) // 64
        words[at] = np.uint64(b - a) | (np.uint64(id_bits) << np.uint64(32)) | (np.uint64(count_bits) << np.uint64(40))
        words[at + 1] = np.uint64(used)
        at = pack_chunk(rows, counts, a, b, id_bits, count_bits, words, at + HEADER_WORDS)
    return at


@njit(cache=True)
def packed_words(rows, counts, lo, hi, chunk_rows):
    """The words ``pack_chunks`` writes for records lo..hi-1."""
    n = rows.shape[1]
    total = 0
    for a in range(lo, hi, chunk_rows):
        b = min(hi, a + chunk_rows)
        id_bits, count_bits = chunk_widths(rows, counts, a, b)
        total += HEADER_WORDS + ((b - a) * (n * id_bits + count_bits) + 63) // 64
    return total
