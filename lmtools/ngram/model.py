"""The smoothed n-gram model: what an ARPA file holds, as arrays.

Contract (smoothers produce it, ARPA reads/writes it, the query engine consumes it):
- ``vocab[i]`` is the word with id i; ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``.
- ``ngrams[n-1]``: int32 (m_n, n), the n-grams of order n (ids oldest first), lexicographic order.
- ``logprob[n-1]``: float32 (m_n,), log10 p(w | h) as written in ARPA. The unigram ``<s>`` is only
  ever a context, never predicted: smoothers write 0 there (as KenLM does), ARPA files may hold -99;
  consumers must not predict ``<s>`` whatever the value.
- ``backoff[n-1]``: float32 (m_n,), log10 backoff weight of the n-gram as a context (0 where the
  ARPA line has none, and all zeros for the highest order).
- ``method``: how it was estimated ("kn-modified", "wb", ... or "arpa" when read from a file);
  ``info``: method details (discounts per order, interpolation, warnings); ``provenance``: how made.
- ``scores_only``: True for stupid backoff (scores, not probabilities: lm-ppl refuses it).
Query rule (KenLM/SRILM backoff): log10 p(w|h) = logprob(h_m w) + sum of backoff(h_k) for the suffixes
h_k of h longer than h_m, where h_m w is the longest n-gram in the model; a word without a unigram is
scored as ``<unk>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class NGramModel:
    vocab: list[str]
    ngrams: list[np.ndarray]
    logprob: list[np.ndarray]
    backoff: list[np.ndarray]
    method: str = "kn-modified"
    info: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    scores_only: bool = False
    text: dict | None = None  # how the text was read: {"chars": bool, "lower": bool}; None: unknown (ARPA)

    @property
    def order(self) -> int:
        return len(self.ngrams)

    def sizes(self) -> list[int]:
        return [int(a.shape[0]) for a in self.ngrams]
