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
