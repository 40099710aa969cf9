"""Sampling from back-off n-gram models, and what every sampler shares (the API behind lm-gen).

    from lmtools.io.models import load_model
    from lmtools.kinds import sample, next_word_distribution
    m = load_model("kn5.lm")
    sents = sample(m, 5, seed=7)                       # lists of word ids (prefix included)
    p = next_word_distribution(m, "the company said")  # p[w] = p(w | <s> the company said)

An n-gram model (or ARPA file) is sampled from its exact back-off distribution over the whole
vocabulary (the kernels of lmtools/kernels/backoff_distribution.py, backoff_draw.py and
sample_sentences.py, over the ``FlatModel`` built here); an FFNN model from its softmax output (its
sampler lives beside it, lmtools/nn/sample.py); a counts model is smoothed first (lmtools.kinds,
the one dispatch). Every sentence starts after ``<s>`` (and the prefix) and ends with ``</s>`` or after
``max_len`` words; ``<unk>`` is never drawn unless ``allow_unk``. Sentence i of a call with seed s
always uses the same random stream, whatever n and however the work is split, so a seed
reproduces the output exactly. ``SamplerBase`` is the base of every kind's sampler (the
``Sampler`` interface of lmtools.kinds); ``sampler_for(model)`` prepares a model once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.errors import LmError
from lmtools.vocab import BOS_ID, EOS_ID, SPECIALS, UNK_ID

DEFAULT_MAX_LEN = 100
CHUNK = 8192  # sentences per kernel call
# Up to this many sentences are drawn in plain Python (lmtools/ngram/sample_steps.py) when the nested
# way applies: ~5 ms a sentence with the PTB 5-gram, against ~0.35 s to load numba and its first kernel.
PYTHON_SENTENCES = 32


@dataclass
class Samples:
    """Sentences ``first .. first+n-1`` of a seed, as arrays."""

    tokens: np.ndarray  # int32 (n, max_len): the words drawn (prefix not included), row i up to lengths[i]
    lengths: np.ndarray  # int64 (n,)
    ended: np.ndarray  # bool (n,): ended with </s> (False: cut by max_len, or no word had weight)
    log10: np.ndarray  # float64 (n,): model log10 p of prefix + words (+ </s> when ended), untempered
    failed: int = 0  # sentences that met a context where no allowed word has probability

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def rows(self) -> list[list[int]]:
        return [self.tokens[i, : self.lengths[i]].tolist() for i in range(len(self))]


@dataclass
class SamplingOptions:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False
    max_len: int = DEFAULT_MAX_LEN
    allow_unk: bool = False

    def check(self) -> "SamplingOptions":
        t = self.temperature
        if not (t > 0.0) or not np.isfinite(t):
            raise LmError(f"--temperature must be a positive number, got {t}",
                          "use 1 for the model's own distribution, below 1 for sharper, above 1 for flatter "
                          "(--greedy for the most likely word)")
        if self.top_k < 0:
            raise LmError(f"--top-k must be at least 1, got {self.top_k}", "use --top-k 50, say (omit it for no limit)")
        if not (0.0 < self.top_p <= 1.0):
            raise LmError(f"--top-p must be in (0, 1], got {self.top_p}", "use --top-p 0.9, say (1: no limit)")
        if self.max_len < 1:
            raise LmError(f"--max-len must be at least 1, got {self.max_len}", "use --max-len 100, say")
        return self

    def draw_options(self):
        """The kernels' ``DrawOptions`` (types fixed: numba compiles one version)."""
        from lmtools.kernels.draw import DrawOptions

        return DrawOptions(1.0 / float(self.temperature), int(self.top_k), float(self.top_p), bool(self.greedy),
                           bool(self.allow_unk))


def check_options(temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0, greedy: bool = False,
                  max_len: int = DEFAULT_MAX_LEN, allow_unk: bool = False) -> SamplingOptions:
    """Validated sampling options (LmError with what to do otherwise). ``top_k`` None: no limit."""
    if top_k is not None and int(top_k) < 1:
        raise LmError(f"--top-k must be at least 1, got {top_k}", "use --top-k 50, say (omit it for no limit)")
    return SamplingOptions(float(temperature), int(top_k or 0), float(top_p), bool(greedy), int(max_len),
                           bool(allow_unk)).check()


# ----------------------------------------------------------------------------------------------
# Samplers


class SamplerBase:
    vocab: list[str]
    order: int
    scores_only = False

    def index(self) -> dict[str, int]:
        if getattr(self, "_index", None) is None:
            self._index = {w: i for i, w in enumerate(self.vocab)}
        return self._index

    def encode(self, words: Sequence[str | int]) -> tuple[np.ndarray, int]:
        """Word ids of a word list (strings or ids); words outside the vocabulary become <unk>.
        Returns (ids, number of such OOVs). A literal ``<s>``/``</s>`` is an error."""
        out = np.empty(len(words), np.int32)
        oov = 0
        idx = None
        for i, w in enumerate(words):
            if isinstance(w, (int, np.integer)):
                if not 0 <= int(w) < len(self.vocab):
                    raise LmError(f"word id {int(w)} outside the vocabulary (0..{len(self.vocab) - 1})",
                                  "give ids of the model's vocabulary")
                out[i] = int(w)
                continue
            if idx is None:
                idx = self.index()
            j = idx.get(w)
            if j is None:
                oov += 1
                j = UNK_ID
            out[i] = j
        if np.any((out == BOS_ID) | (out == EOS_ID)):
            raise LmError("a history or prefix cannot contain <s> or </s>",
                          "give the words only: <s> is put before them, and </s> ends a sentence")
        return out, oov

    def python_draws(self, n: int, opts: "SamplingOptions") -> bool:
        """Will ``sample_all`` draw n sentences with these options without numba (the caller may then
        leave numba unloaded)?"""
        return False

    def sample_all(self, n: int, seed: int, prefix: np.ndarray, opts: SamplingOptions,
                   chunk: int = CHUNK, threads: int = 0):
        """Yield ``Samples`` of up to ``chunk`` sentences until n sentences are drawn."""
        chunk = max(1, min(chunk, (1 << 25) // (opts.max_len + len(prefix) + 1)))  # token arrays <= 128 MB
        first = 0
        while first < n:
            m = min(chunk, n - first)
            yield self.sample_batch(m, seed, first, prefix, opts, threads)
            first += m


def rows_of_orders(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, id_base): the rows of orders 2..N (``rows[n-2]``, int32 (m, n)) as one read-only int32
    array, order n's at ``ids[id_base[n]:]`` (FlatModel's ids). Rows mapped from one model file are
    one view of the mapping from the first order's rows to the last's, nothing copied (the kernels
    read each order's rows only, never what the file holds between them); else they are
    concatenated."""
    N = len(rows) + 1
    id_base = np.zeros(N + 1, np.int64)
    if not rows:
        return _read_only(np.zeros(0, np.int32)), id_base
    addr = [int(g.ctypes.data) for g in rows]
    root = _buffer_of(rows[0])
    if root is not None and all(_buffer_of(g) is root for g in rows):
        start = np.frombuffer(root, np.uint8)
        off = [x - int(start.ctypes.data) for x in addr]
        ends = [o + g.nbytes for o, g in zip(off, rows)]
        if all(o % 4 == 0 for o in off) and all(off[k + 1] >= ends[k] for k in range(len(rows) - 1)):
            ids = np.frombuffer(root, np.int32, (ends[-1] - off[0]) // 4, off[0])
            id_base[2:] = [(o - off[0]) // 4 for o in off]
            return _read_only(ids), id_base
    sizes = [g.size for g in rows]
    id_base[3:] = np.cumsum(sizes[:-1])
    return _read_only(np.concatenate([g.reshape(-1) for g in rows])), id_base


def _buffer_of(a: np.ndarray):
    """The object (a mapping, bytes) whose memory the array views, or None."""
    while isinstance(a, (np.ndarray, memoryview)):
        a = a.base if isinstance(a, np.ndarray) else a.obj
        if a is None:
            return None
    return a


def _read_only(a: np.ndarray) -> np.ndarray:
    # one compiled specialization of the kernels whether the rows are mapped (read-only) or copied
    a.flags.writeable = False
    return a


class NGramSampler(SamplerBase):
    """A back-off n-gram model prepared for sampling: flat sorted rows, dense unigrams.

    ``force_explicit``: draw every step the explicit way (tests compare the two ways)."""

    force_explicit = False
    python_sentences = PYTHON_SENTENCES  # at most this many sentences drawn in plain Python (tests: 0)

    def __init__(self, model, name: str = "model"):
        from lmtools.kernels.flat_model import FlatModel
        from lmtools.ngram.model import NGramModel
        from lmtools.ngram.sample_steps import FlatSteps

        if not isinstance(model, NGramModel):
            raise TypeError("NGramSampler needs an NGramModel")
        V = len(model.vocab)
        if V < 3 or list(model.vocab[:3]) != list(SPECIALS):
            raise LmError(f"{name}: the vocabulary does not start with <unk> <s> </s>", "recreate the model")
        self.vocab = list(model.vocab)
        self.order = N = model.order
        self.scores_only = bool(model.scores_only)
        uni = np.zeros(V, np.float64)
        uni_bo = np.ones(V, np.float64)
        g1 = np.asarray(model.ngrams[0]).reshape(-1)
        if g1.size and (g1.min() < 0 or g1.max() >= V):
            raise LmError(f"{name}: unigram ids outside the vocabulary", "recreate the model")
        lp1 = np.asarray(model.logprob[0], np.float64)
        uni[g1] = np.where((lp1 <= LOG_ZERO) | np.isnan(lp1), 0.0, 10.0 ** lp1)
        bo1 = np.nan_to_num(np.asarray(model.backoff[0], np.float64))
        uni_bo[g1] = 10.0 ** bo1
        uni[BOS_ID] = 0.0
        self.uni, self.uni_bo = uni, uni_bo
        n_rows = np.zeros(N + 1, np.int64)
        row_base = np.zeros(N + 1, np.int64)
        rows = [np.ascontiguousarray(model.ngrams[n - 1], dtype=np.int32) for n in range(2, N + 1)]
        for n, g in enumerate(rows, start=2):
            if g.size and (g.min() < 0 or g.max() >= V):
                raise LmError(f"{name}: order {n} ids outside the vocabulary", "recreate the model")
            n_rows[n] = g.shape[0]
        row_base[3:] = np.cumsum(n_rows[2:N])
        total = int(n_rows.sum())
        # 10^log10 p, 10^backoff and the running sums written in place, the rows not copied (a
        # mapped model): lm-gen's start-up with the PTB 5-gram 0.58 -> 0.54 s, 366 -> 257 MB
        pr = np.empty(total, np.float64)
        bof = np.empty(total, np.float64)
        cum = np.empty(total + max(N - 1, 0), np.float64)
        for n in range(2, N + 1):
            a, b = int(row_base[n]), int(row_base[n]) + int(n_rows[n])
            lp = np.asarray(model.logprob[n - 1])
            np.power(10.0, lp, out=pr[a:b], dtype=np.float64)
            pr[a:b][(lp <= LOG_ZERO) | np.isnan(lp)] = 0.0
            bo = np.asarray(model.backoff[n - 1])
            np.power(10.0, bo, out=bof[a:b], dtype=np.float64)
            bof[a:b][np.isnan(bo)] = 1.0
            c = a + n - 2  # order n's running sums: 0, then one per row
            cum[c] = 0.0
            np.cumsum(pr[a:b], out=cum[c + 1:c + 1 + b - a])
        ids, id_base = rows_of_orders(rows)
        self.F = FlatModel(ids=ids, id_base=id_base, row_base=row_base, n_rows=n_rows, pr=pr, bof=bof, cum=cum,
                           uni=uni, uni_bo=uni_bo, ucum=np.cumsum(uni))
        self.steps = FlatSteps(self.F, N)
        self._weights: dict = {}
        self.normalized = not self.scores_only and self._check_normalized()

    def _check_normalized(self, contexts: int = 16) -> bool:
        """Does p(. | h) sum to 1 (to 1e-3) for the empty context and some seen contexts?

        The nested draw relies on it; a model that fails (stupid backoff, hand-edited ARPA) is
        sampled the explicit way, which normalizes every step."""
        if abs(self.uni.sum() - 1.0) > 1e-3:
            return False
        for n in range(2, self.order + 1):
            m = int(self.F.n_rows[n])
            if m == 0:
                continue
            ids, base = self.F.ids, int(self.F.id_base[n])
            for r in np.linspace(0, m - 1, min(m, contexts)).astype(np.int64):
                h = ids[base + r * n: base + r * n + n - 1].tolist()
                if abs(self.steps.dense_distribution(h).sum() - 1.0) > 1e-3:
                    return False
        return True

    def _unigram_weights(self, inv_t: float, allow_unk: bool):
        from lmtools.kernels.backoff_draw import UnigramWeights

        key = (inv_t, allow_unk)
        if key not in self._weights:
            allowed = self.uni > 0.0
            allowed[BOS_ID] = False
            if not allow_unk:
                allowed[UNK_ID] = False
            umax = float(self.uni[allowed].max()) if allowed.any() else 1.0
            uq = np.where(allowed, (self.uni / umax) ** inv_t, 0.0)
            ucum = np.cumsum(uq)
            order = np.argsort(-self.uni, kind="stable")
            uorder = np.ascontiguousarray(order[uq[order] > 0.0], dtype=np.int64)
            self._weights = {key: UnigramWeights(uq, ucum, uorder, umax, float(ucum[-1]))}
        return self._weights[key]

    def _tempered(self, inv_t: float):
        """pr, bof and uni_bo to the power 1/T (empty at T = 1), for the explicit draw."""
        from lmtools.kernels.backoff_distribution import Tempered

        if inv_t == 1.0:
            e = np.zeros(0, np.float64)
            return Tempered(e, e, e)
        if getattr(self, "_temp_key", None) != inv_t:
            F = self.F
            self._temp = Tempered(F.pr ** inv_t, F.bof ** inv_t, F.uni_bo ** inv_t)
            self._temp_key = inv_t
        return self._temp

    def distribution(self, history: np.ndarray) -> np.ndarray:
        """p(w | <s> history) for every word (float64, word-id order)."""
        return self.steps.dense_distribution([BOS_ID] + np.asarray(history, np.int64).tolist())

    def prefix_log10(self, prefix: np.ndarray) -> float:
        return float(self.steps.word_logprobs([BOS_ID] + np.asarray(prefix, np.int64).tolist(), 1).sum())

    def _nested(self, opts: SamplingOptions) -> bool:
        """Do the options draw from the model's own distribution, so that the nested way applies?"""
        return (self.normalized and not opts.greedy and 1.0 / opts.temperature == 1.0 and opts.top_k == 0
                and opts.top_p >= 1.0 and not self.force_explicit)

    def python_draws(self, n: int, opts: SamplingOptions) -> bool:
        return n <= self.python_sentences and self._nested(opts)

    def sample_batch(self, n: int, seed: int, first: int, prefix: np.ndarray, opts: SamplingOptions,
                     threads: int = 0) -> Samples:
        if self.python_draws(n, opts):
            from lmtools.ngram.sample_steps import init_states

            start = [BOS_ID] + np.asarray(prefix, np.int64).tolist()
            drawn = self.steps.sample(start, init_states(seed & 0xFFFFFFFFFFFFFFFF, first, n), opts.max_len,
                                      opts.allow_unk)
            if drawn is not None:  # else a step needs the explicit way: the kernels draw the batch
                tok, lens, ended, logp = drawn
                logp += self.prefix_log10(prefix) if len(prefix) else 0.0
                return Samples(tok, lens, ended, logp, 0)
        from lmtools.kernels.draw import init_states
        from lmtools.kernels.sample_sentences import SentenceArrays, sample_ngram

        inv_t = 1.0 / opts.temperature
        if opts.greedy and n > 1:  # one sentence, the same every time
            one = self.sample_batch(1, seed, first, prefix, opts, threads)
            return Samples(np.repeat(one.tokens, n, 0), np.repeat(one.lengths, n), np.repeat(one.ended, n),
                           np.repeat(one.log10, n), one.failed * n)
        weights = self._unigram_weights(inv_t, opts.allow_unk)
        start = np.concatenate([[BOS_ID], np.asarray(prefix, np.int32)]).astype(np.int32)
        states = init_states(np.uint64(seed & 0xFFFFFFFFFFFFFFFF), np.uint64(first), n)
        tok = np.zeros((n, opts.max_len), np.int32)
        lens = np.zeros(n, np.int64)
        ended = np.zeros(n, np.bool_)
        logp = np.zeros(n, np.float64)
        blocks = max(1, min(n, 4 * (threads or _threads())))
        nested = self._nested(opts)
        failed = sample_ngram(self.F, self._tempered(inv_t), weights, opts.draw_options(), self.order, start, states,
                              nested, opts.max_len, blocks, SentenceArrays(tok, lens, ended, logp))
        logp += self.prefix_log10(prefix) if len(prefix) else 0.0
        return Samples(tok, lens, ended, logp, int(failed))


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())
