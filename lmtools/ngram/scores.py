"""The results of scoring text (lmtools.ngram.query's scorers and the other kinds' make them):
``Scored``, one chunk's per-token results; ``LineScores``, its per-line sums (what lm-score prints);
``PplStats``, the perplexity figures of lm-ppl (defined in man/lm-ppl.1), whose totals are exact sums
(``exact_add``) of the per-line ones, so that every path, chunk size and thread count gives the
same bits."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from lmtools.vocab import BOS_ID

# a sentence start without <s> (bos=False): kernels/records.NO_CONTEXT, not imported here so that
# programs drawing a few sentences import no kernel module but the one they use (tests/test_startup.py)
NO_CONTEXT = -1


@dataclass
class Encoded:
    ids: np.ndarray  # int32, <s> w1 .. wk </s> per line (the first entry may be NO_CONTEXT)
    oov: np.ndarray  # bool, word outside the vocabulary (scored as <unk>)
    n_lines: int
    n_dropped: int  # literal <s>/</s> removed


@dataclass
class Scored:
    ids: np.ndarray  # of the (first) model
    oov: np.ndarray
    logp: np.ndarray  # float64 log10 p per position, 0 at <s>
    order: np.ndarray  # int32 matched n-gram order (0 at <s>)
    zero: np.ndarray  # bool: p = 0 (log10 p <= -99) for an in-vocabulary token
    n_lines: int
    n_dropped: int

    def starts(self) -> np.ndarray:
        """Index of each sentence's first position (its <s>)."""
        return np.flatnonzero((self.ids == BOS_ID) | (self.ids == NO_CONTEXT))

    def line_scores(self) -> "LineScores":
        """Per-sentence sums (in token order: the same numbers on every path)."""
        L = int(self.starts().size)
        out = LineScores.empty(L, self.n_dropped)
        # a kernel (compiled ahead of time, or numba's once it is loaded); else Python's float sums in
        # token order (the same bits; a text scored with mapped tables is scored without numba)
        if self.ids.size > 4096:
            from lmtools.kernels import aot

            compiled = aot.load()
            if compiled is not None:
                aot.line_sums(compiled, self.ids, self.oov, self.logp, self.zero, out.kernel_view(), 0)
                return out
            if "lmtools.kernels.query" in sys.modules:
                from lmtools.kernels.query import line_sums

                line_sums(self.ids, self.oov, self.logp, self.zero, out.kernel_view(), 0)
                return out
        start = (self.ids == BOS_ID) | (self.ids == NO_CONTEXT)
        line = np.cumsum(start) - 1
        tok = ~start
        out.tokens[:] = np.bincount(line[tok], minlength=L)
        out.oovs[:] = np.bincount(line[tok & self.oov], minlength=L)
        out.zeros[:] = np.bincount(line[tok & ~self.oov & self.zero], minlength=L)
        lp, lp_nz, lp_iv = out.lp.tolist(), out.lp_nz.tolist(), out.lp_iv.tolist()
        li = -1
        ids, oov, zero, logp = self.ids.tolist(), self.oov.tolist(), self.zero.tolist(), self.logp.tolist()
        for t, w in enumerate(ids):
            if w == BOS_ID or w == NO_CONTEXT:
                li += 1
                continue
            v = logp[t]
            lp[li] += v
            if oov[t]:
                lp_nz[li] += v
            elif not zero[t]:
                lp_nz[li] += v
                lp_iv[li] += v
        out.lp[:], out.lp_nz[:], out.lp_iv[:] = lp, lp_nz, lp_iv
        return out


@dataclass
class LineScores:
    """Per-sentence results of one chunk: what lm-score prints and lm-ppl sums."""
    lp: np.ndarray  # log10 p of all tokens of the line (OOVs as <unk>)
    lp_nz: np.ndarray  # the same without zero-probability tokens
    lp_iv: np.ndarray  # without OOVs and zero-probability tokens
    tokens: np.ndarray  # words + </s>
    oovs: np.ndarray
    zeros: np.ndarray  # zero-probability in-vocabulary tokens
    n_dropped: int = 0

    @classmethod
    def empty(cls, n: int, n_dropped: int = 0) -> "LineScores":
        return cls(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64),
                   np.zeros(n, np.int64), n_dropped)

    def __len__(self) -> int:
        return int(self.lp.size)

    def kernel_view(self):
        """The arrays as the kernels' ``LineSums`` (the same memory: the kernels fill them)."""
        from lmtools.kernels.records import LineSums

        return LineSums(self.lp, self.lp_nz, self.lp_iv, self.tokens, self.oovs, self.zeros)


def exact_add(parts: list[float], values: list[float]) -> list[float]:
    """Floats whose exact sum is that of ``parts`` and ``values``: the first is that sum correctly
    rounded (math.fsum), each next one the rounded rest. A running total kept so does not depend on
    how its values came in (chunks of another size, another number of threads, files merged)."""
    every = parts + values
    out: list[float] = []
    t = math.fsum(every)
    while t != 0.0:
        out.append(t)
        if not math.isfinite(t):
            break
        t = math.fsum(every + [-x for x in out])  # the rest, shrinking by 2**-52 or more each time
    return out


@dataclass
class PplStats:
    """Running totals for the perplexity report (formulas in man/lm-ppl.1)."""
    sentences: int = 0
    words: int = 0
    oovs: int = 0
    zeroprobs: int = 0
    dropped: int = 0
    replaced_lines: int = 0
    # sums of log10 p, exact (exact_add): over all scored tokens but zero-probability ones (OOVs as
    # <unk>), and the same without OOVs
    lp_parts: list = field(default_factory=list)
    lp_iv_parts: list = field(default_factory=list)

    @property
    def logprob(self) -> float:
        return self.lp_parts[0] if self.lp_parts else 0.0

    @property
    def logprob_iv(self) -> float:
        return self.lp_iv_parts[0] if self.lp_iv_parts else 0.0

    def add(self, ls: "LineScores") -> None:
        """Add a chunk's per-sentence results (summed exactly: every path, chunking and merge agree)."""
        self.sentences += len(ls)
        tokens = int(ls.tokens.sum())
        self.words += tokens - len(ls)
        self.oovs += int(ls.oovs.sum())
        self.zeroprobs += int(ls.zeros.sum())
        self.lp_parts = exact_add(self.lp_parts, ls.lp_nz.tolist())
        self.lp_iv_parts = exact_add(self.lp_iv_parts, ls.lp_iv.tolist())
        self.dropped += ls.n_dropped

    def merge(self, other: "PplStats") -> None:
        for k in ("sentences", "words", "oovs", "zeroprobs", "dropped", "replaced_lines"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.lp_parts = exact_add(self.lp_parts, other.lp_parts)
        self.lp_iv_parts = exact_add(self.lp_iv_parts, other.lp_iv_parts)

    @property
    def tokens(self) -> int:
        return self.words + self.sentences

    def figures(self) -> dict:
        n_all = self.tokens - self.zeroprobs
        n_iv = self.tokens - self.oovs - self.zeroprobs
        n_iv1 = self.words - self.oovs - self.zeroprobs

        def ppl(lp, n):
            if n <= 0:
                return None
            try:
                return 10.0 ** (-lp / n)
            except OverflowError:
                return math.inf

        bits = (-self.logprob * math.log2(10.0) / n_all) if n_all > 0 else None
        return {
            "sentences": self.sentences, "words": self.words, "tokens": self.tokens, "oovs": self.oovs,
            "zeroprobs": self.zeroprobs, "logprob": self.logprob, "logprob_excl_oov": self.logprob_iv,
            "ppl": ppl(self.logprob, n_all), "ppl_excl_oov": ppl(self.logprob_iv, n_iv),
            "ppl1": ppl(self.logprob_iv, n_iv1), "bits_per_token": bits,
        }
