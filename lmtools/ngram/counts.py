"""The counts model: exact integer n-gram counts of orders 1..N, the input of every smoother.

Contract (every producer and consumer keeps it):
- ``vocab[i]`` is the word with id i; ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``.
- ``ngrams[n-1]`` is an int32 array of shape (m_n, n): the distinct n-grams of order n, each row
  the word ids oldest first, rows in lexicographic order of ids, no duplicates.
- ``counts[n-1]`` is an int64 array of shape (m_n,): raw occurrence counts of those rows.
- Order 1 lists every vocabulary id exactly once, in id order (``ngrams[0][:, 0] == arange(V)``),
  so a word of the vocabulary that never occurred (an unseen ``<unk>``, a word of a closed
  vocabulary) has a row with count 0. ``<s>``'s unigram count is the number of sentences.
- N-grams come from ``<s> w1 .. wk </s>`` per sentence: none crosses a sentence boundary, ``<s>``
  appears only first and ``</s>`` only last.

``Levels`` is the same counts as lm-count computes and stores them (trie levels, unsorted);
``Levels.to_counts`` gives the sorted form. Both are plain data: this module imports no other part
of lmtools (but the kernel that sorts), so that the readers in lmtools.io can build them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Counts:
    vocab: list[str]
    ngrams: list[np.ndarray]
    counts: list[np.ndarray]
    tokens: int = 0  # words + one </s> per sentence (what perplexity counts)
    sentences: int = 0
    provenance: dict = field(default_factory=dict)  # program, version, options, inputs
    text: dict | None = None  # how the text was read: {"chars": bool, "lower": bool}; None: unknown

    @property
    def order(self) -> int:
        return len(self.ngrams)

    def sizes(self) -> list[int]:
        """Number of distinct n-grams per order, 1..N."""
        return [int(a.shape[0]) for a in self.ngrams]

    def as_dict(self, n: int) -> dict[tuple[int, ...], int]:
        """Order-n counts as {id tuple: count}: slow, for tests and small data only."""
        return {tuple(int(x) for x in row): int(c) for row, c in zip(self.ngrams[n - 1], self.counts[n - 1])}


@dataclass
class Levels:
    """Counts as lm-count computes and stores them: per order n >= 2, each n-gram's prefix (the id of
    its first n-1 words among order n-1) and last word, ids in order of first occurrence."""

    vocab: list[str]
    unigrams: np.ndarray  # int64 (V,)
    levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (prefix int32, word int32, count int64)
    tokens: int
    sentences: int
    provenance: dict = field(default_factory=dict)
    text: dict | None = None  # how the text was read: {"chars": bool, "lower": bool}; None: unknown

    def to_counts(self, provenance: dict | None = None, numba: bool | None = None) -> Counts:
        """The sorted counts; ``numba``: sort with the numba kernels (True), in plain numpy (False),
        or by size (None: numpy for small counts, where loading the kernels would dominate)."""
        from lmtools.kernels.small import SMALL_ROWS

        if numba is None:
            numba = sum(int(p.shape[0]) for p, _, _ in self.levels) >= SMALL_ROWS
        if not numba:
            from lmtools.kernels.small import build_sorted
        else:
            from lmtools.kernels.count import build_sorted
        V = len(self.vocab)
        rows = np.arange(V, dtype=np.int32).reshape(V, 1)
        rank = np.arange(V, dtype=np.int64)
        ngrams, counts = [rows], [self.unigrams]
        for k, (prefix, word, count) in enumerate(self.levels):
            # the highest order's ranks would index nothing: not made
            rows, rank, order = build_sorted(prefix, word, rank, rows, V, k + 1 < len(self.levels))
            ngrams.append(rows)
            counts.append(count[order])
        return Counts(vocab=self.vocab, ngrams=ngrams, counts=counts, tokens=self.tokens,
                      sentences=self.sentences, provenance=dict(provenance or {}), text=self.text)
