"""Slow, plainly correct reference versions of lmtools' kernels, for tests only.

Everything here is plain Python over lists, tuples and collections.Counter: no numpy tricks,
no numba, so that a disagreement with a kernel points at the kernel.
"""

from collections import Counter

ASCII_WS = " \t\r\v\f"


def split_ascii(line: str) -> list[str]:
    """Split at runs of ASCII whitespace only (not U+00A0 and friends), as KenLM does."""
    out, cur = [], []
    for ch in line:
        if ch in ASCII_WS:
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def sentences(text: str) -> list[list[str]]:
    """One token list per line (a last line without newline counts; literal <s>, </s> dropped)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [[t for t in split_ascii(line) if t not in ("<s>", "</s>")] for line in lines]


def count_ngrams(sents: list[list[str]], order: int) -> list[Counter]:
    """Counter of word tuples per order 1..order over <s> w1 .. wk </s> of every sentence.

    The unigram <unk> is always present (count 0 when unseen), like lm-count's output.
    """
    tables = [Counter() for _ in range(order)]
    for words in sents:
        toks = ["<s>"] + list(words) + ["</s>"]
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                tables[n - 1][tuple(toks[i:i + n])] += 1
    tables[0][("<unk>",)] += 0
    return tables


def pack_chunks(rows: list[tuple[int, ...]], counts: list[int], chunk_rows: int) -> list[int]:
    """lmtools.kernels.bitpack.pack_chunks as a list of 64-bit words: per chunk of at most
    ``chunk_rows`` records, a header word (records | id bits << 32 | count bits << 40), the count
    of data words, then the records as one integer, each record's ids then its count, every value
    at its chunk's width above the bits of the values before it, cut into 64-bit words."""
    words = []
    for a in range(0, len(rows), chunk_rows):
        chunk = list(zip(rows[a:a + chunk_rows], counts[a:a + chunk_rows]))
        id_bits = max(1, max(max(r) for r, _ in chunk).bit_length())
        count_bits = max(1, max(c for _, c in chunk).bit_length())
        big, at = 0, 0
        for r, c in chunk:
            for x in r:
                big |= x << at
                at += id_bits
            big |= c << at
            at += count_bits
        k = (at + 63) // 64
        words += [len(chunk) | id_bits << 32 | count_bits << 40, k]
        words += [(big >> (64 * i)) & (2**64 - 1) for i in range(k)]
    return words
