"""Numeric conventions shared by every layer (a leaf module: no lmtools imports).

numba kernels read module globals as compile-time constants, so kernels import them from here too.
"""

LOG_ZERO = -99.0  # log10 p at or below this is p = 0; ARPA files write log10 0 as -99
# Tokens are split at these bytes only (9-13 and 32), as KenLM does: a vocabulary word has none of
# them; io.text.line_words and kernels.tokenize.is_space apply the rule.
ASCII_WHITESPACE = " \t\n\v\f\r"

# The query hash tables (kernels/query.py): an order with m n-grams gets query_table_slots(m) entries
# (QUERY_TABLE_SLOTS per n-gram, 87% full: in Robin Hood order a lookup, present or absent, still reads
# about 4 entries, 1 in 10 more than 8); placeholders for missing suffixes may fill it to
# QUERY_TABLE_LOAD before it grows. A key's home entry is its top 32
# bits scaled to the table, so a table has fewer than 2**32 entries (3.7 billion n-grams of one order).
QUERY_TABLE_SLOTS = (23, 20)
QUERY_TABLE_LOAD = (19, 20)
MAX_QUERY_SLOTS = (1 << 32) - 1


def query_table_slots(entries: int) -> int:
    return entries * QUERY_TABLE_SLOTS[0] // QUERY_TABLE_SLOTS[1] + 2


def query_table_units(slots: int, top: bool) -> int:
    """16-byte units of a table of ``slots`` entries: 16-byte entries (key, log10 p, log10 backoff),
    but the highest order's of 12 bytes (key, log10 p: it has no backoff), rounded up."""
    return (3 * slots + 3) // 4 if top else slots


def query_table_bases(slots: list[int]) -> list[int]:
    """Where each order's table starts in the one array of them all, in 16-byte units: ``slots[n]``
    entries for order n = 2..N (``slots[0]``, ``slots[1]`` unused); N + 2 values (the last: the end)."""
    N = len(slots) - 1
    base = [0] * (N + 2)
    for n in range(2, N + 1):
        base[n + 1] = base[n] + query_table_units(int(slots[n]), n == N)
    return base


def query_table_bytes(sizes: list[int]) -> int:
    """Bytes of the hash tables of a model with ``sizes[k]`` n-grams of order k + 1."""
    return 16 * query_table_bases([0, 0] + [query_table_slots(int(m)) for m in sizes[1:]])[-1]


def query_table_limit(slots: int) -> int:
    """The most entries a table of ``slots`` entries holds before it grows."""
    return slots * QUERY_TABLE_LOAD[0] // QUERY_TABLE_LOAD[1]
