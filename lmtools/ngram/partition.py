"""Which partition an n-gram of order >= 2 belongs to: a hash of its next-to-last word.

Modified Kneser-Ney (and Witten-Bell, stupid backoff...) can be estimated one partition at a time
when n-grams are split by the last word of their context, w_{n-1}: every context group (the
n-grams h w of one h) shares h's last word, and every suffix of h w of order >= 2 (h[k:] w) has the
same next-to-last word, so the counts of left extensions (adjusted counts), the context sums and the
interpolation with the lower orders of an n-gram all stay inside its partition. Only the unigrams
(vocabulary-sized) and a handful of sums (counts of counts) are global. The bounded-memory lm-train
(spilled partitions on disk) and the cluster path (one partition per task) both split this way, so a
count shard is an estimation partition.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def partition_of_words(words: np.ndarray, parts: int) -> np.ndarray:
    """Partition (0..parts-1, int64) of each word id as a next-to-last word: a multiplicative hash, so
    that the frequent words (the small ids) spread over the partitions."""
    if parts <= 1:
        return np.zeros(np.shape(words), np.int64)
    h = (np.asarray(words).astype(np.uint64) * _GOLDEN) >> np.uint64(32)
    return (h % np.uint64(parts)).astype(np.int64)


def partition_of_rows(rows: np.ndarray, parts: int) -> np.ndarray:
    """Partition of each n-gram of one order n >= 2 (rows: (m, n) word ids, oldest first)."""
    if rows.ndim != 2 or rows.shape[1] < 2:
        raise ValueError("partitions are defined for n-grams of order 2 and more")
    return partition_of_words(rows[:, -2], parts)
