"""Plain-Python reference for text counts ('w1 .. wn<TAB>count' per line): a reader that gives the
counts per order as {word tuple: count}, or the first bad line as the reader must report it, and a
writer. No numpy, no numba, nothing of lmtools: a disagreement points at lmtools.io.countstext.
"""

from __future__ import annotations

import re
from collections import Counter

from tests.naive import split_ascii

SPECIALS = ("<unk>", "<s>", "</s>")
ASCII_WS = " \t\r\v\f"
INT64_MAX = 2**63 - 1


class Bad(Exception):
    """The line (1-based) the reader must name, and why (a short word for the test's own use)."""

    def __init__(self, line: int, why: str):
        super().__init__(f"line {line}: {why}")
        self.line, self.why = line, why


def read(data: bytes, max_order: int = 1000):
    """(tables: {n: Counter(word tuple -> count)}, vocabulary in first-appearance order, tokens,
    sentences), or raises Bad. The checks come in the order the reader makes them: each line in turn
    (its format), then the orders (none missing below the highest), then per order 2..N the
    prefixes of its n-grams and then their suffixes (the earliest line missing one)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    tables: dict[int, Counter] = {}
    first_seen: dict[tuple, int] = {}
    vocab = list(SPECIALS)
    for i, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Bad(i, "utf8") from None
        if "\x00" in line:
            raise Bad(i, "nul")
        if "\t" not in line:
            raise Bad(i, "no-tab")
        gram, _, count = line.rpartition("\t")
        count = count.strip(ASCII_WS)
        if not re.fullmatch(r"-?[0-9]+", count, re.ASCII):
            raise Bad(i, "not-integer")
        if count.startswith("-"):
            raise Bad(i, "negative")
        value = int(count)
        if value > INT64_MAX:
            raise Bad(i, "too-large")
        words = tuple(split_ascii(gram))
        if len(words) > max_order:
            raise Bad(i, "order")
        for w in words:
            if w not in vocab:
                vocab.append(w)
        if not words:
            raise Bad(i, "empty")
        if value == 0 and len(words) >= 2:
            raise Bad(i, "zero")
        for q, w in enumerate(words):
            if w == "<s>" and q != 0:
                raise Bad(i, "bos")
            if w == "</s>" and q != len(words) - 1:
                raise Bad(i, "eos")
        tables.setdefault(len(words), Counter())[words] += value
        first_seen.setdefault(words, i)
    if not tables:
        raise Bad(0, "empty-input")
    top = max(tables)
    for n in range(1, top):
        if n not in tables:
            above = min(m for m in tables if m > n)
            raise Bad(min(first_seen[g] for g in tables[above]), "gap")
    for n in range(2, top + 1):
        for part, why in ((lambda g: g[:-1], "prefix"), (lambda g: g[1:], "suffix")):
            missing = [g for g in tables[n] if part(g) not in tables[n - 1]]
            if missing:
                raise Bad(min(first_seen[g] for g in missing), why)
    uni = tables[1]
    sentences = uni.get(("<s>",), 0)
    tokens = sum(uni.values()) - sentences
    for w in SPECIALS:
        uni.setdefault((w,), 0)
    return tables, vocab, tokens, sentences


def write(tables: dict[int, Counter], vocab: list[str]) -> bytes:
    """Text counts as lm-count --text writes them: order 1 in vocabulary order (every word), then each
    order's n-grams sorted by the words' vocabulary positions."""
    pos = {w: i for i, w in enumerate(vocab)}
    out = []
    for n in sorted(tables):
        grams = [(w,) for w in vocab] if n == 1 else sorted(tables[n], key=lambda g: [pos[w] for w in g])
        for g in grams:
            out.append(" ".join(g) + "\t" + str(tables[n].get(g, 0)) + "\n")
    return "".join(out).encode("utf-8")
