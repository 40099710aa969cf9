"""Scoring text with any model: the engine behind lm-ppl, lm-score and lmtools.api.

A *scorer* turns whole lines of UTF-8 text into per-token log10 probabilities:

- ``QueryModel`` wraps an ``NGramModel`` (the back-off rule in ngram/model.py). Two paths give the
  same numbers bit for bit: the numba kernels of kernels/query.py over hash tables (built on first
  use), and for small inputs, which it answers before numba would even have loaded, the stored
  tables walked from Python (ngram/steps.py) or, without stored tables, a plain-numpy path (binary
  search in the model's sorted n-gram arrays); both tokenize in Python;
- the other kinds keep their scorers beside their models (``lmtools.nn.score.FFNNScorer``,
  ``lmtools.mixture.Mixture``); ``lmtools.kinds`` loads any model and wraps it (``load_scorer``,
  ``scorer_for``: the one dispatch), and names the interface every scorer keeps (``Scorer``).

The results (``Scored``, ``LineScores``, ``PplStats``) are in ngram/scores.py. Every path (numba
one-pass, numba per-token, numpy) gives the same bits: sums run in token order, and the per-file
totals are exact sums of the per-line ones.
"""

from __future__ import annotations


import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.model import (QUERY_LAYOUT, SMALL_BUILD, NGramModel, QueryTables, build_tables_python,
                                  query_problem, unigram_arrays)
from lmtools.ngram.scores import NO_CONTEXT, Encoded, LineScores, Scored
from lmtools.vocab import BOS_ID, EOS_ID, SPECIALS, UNK_ID

# Inputs up to this size (per chunk, and in total before the switch) are scored on the numpy path:
# importing numba and loading its first cached kernel costs ~0.4 s, more than scoring them.
SMALL_BYTES = 1 << 16
SMALL_TOTAL_BYTES = 1 << 18
# With stored tables the numpy path probes them as the kernel does (ngram/query_numpy.score_tables_numpy): ~1 us a
# token against ~0.9 s to import numba and load its kernels, so texts up to a few MB skip numba. Up to
# STEPS_MAX_TOKENS tokens the plain-Python walk (ngram/steps.py) is quicker than numpy's per-call costs.
SMALL_STORED_BYTES = 1 << 21
STEPS_MAX_TOKENS = 2000
PARALLEL_MIN_TOKENS = 100_000  # below this, threads cost more than they save
PARALLEL_MIN_BYTES = 1 << 19


# ----------------------------------------------------------------------------------------------
# Tokenizing for scorers


class Vocabulary:
    """Text -> ids for a fixed vocabulary: a Python dict for small inputs, the numba table for the rest."""

    def __init__(self, vocab: list[str], remap: np.ndarray | None = None, stored: QueryTables | None = None):
        if list(vocab[:3]) != list(SPECIALS):
            raise LmError(f"model vocabulary starts with {vocab[:3]}, not <unk> <s> </s>", "recreate the model")
        self.vocab = vocab
        self.remap = remap  # id -> id for words without a unigram (scored as <unk>)
        self.stored = stored  # a model file's query structure: its word table is used as it is
        self._index: dict[bytes, int] | None = None
        self._table = None
        self._words = None

    def index(self) -> dict[bytes, int]:
        if self._index is None:
            self._index = {w.encode("utf-8"): i for i, w in enumerate(self.vocab)}
        return self._index

    def word_table(self):
        """The kernels' ``WordTable`` (read-only arrays): the stored one, or that of ``table()``."""
        if self._words is None:
            from lmtools.kernels.records import WordTable

            q = self.stored
            if q is not None:
                _verify(q)
                self._words = WordTable(q.word_hashes, q.word_slots, q.word_pool, q.word_offsets)
            else:
                t = self.table()
                views = [a.view() for a in (t.hashes, t.slots, t.pool, t.offsets)]
                for v in views:  # read-only views (the token table itself stays writable)
                    v.flags.writeable = False
                self._words = WordTable(*views)
        return self._words

    def table(self):
        if self._table is None:
            from lmtools.io.text import TokenTable

            q = self.stored
            if q is not None:  # copies of the stored arrays (the tokenizer kernel takes writable ones)
                _verify(q)
                self._table = TokenTable.from_arrays(q.word_hashes, q.word_slots, q.word_pool, q.word_offsets)
                return self._table
            try:
                self._table = TokenTable(self.vocab[3:])
            except ValueError:
                raise LmError("the model's vocabulary has repeated words or words with whitespace",
                              "recreate the model") from None
        return self._table

    def encode(self, data: bytes, fast: bool) -> Encoded:
        if fast:
            ids, oov, n_lines, n_dropped, _ = self.table().encode(data, grow=False)
        else:
            ids, oov, n_lines, n_dropped = self._encode_small(data)
        if self.remap is not None and ids.size:
            new = self.remap[ids]
            oov = oov | ((new == UNK_ID) & (ids != UNK_ID))
            ids = new
        return Encoded(ids, oov, n_lines, n_dropped)

    def _encode_small(self, data: bytes):
        from lmtools.io.text import line_words

        index = self.index()
        ids: list[int] = []
        oov: list[bool] = []
        dropped = 0
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for line in lines:
            ids.append(BOS_ID)
            oov.append(False)
            words, n_marks = line_words(line)
            dropped += n_marks
            for tok in words:
                i = index.get(tok)
                ids.append(UNK_ID if i is None else i)
                oov.append(i is None)
            ids.append(EOS_ID)
            oov.append(False)
        return np.array(ids, np.int32), np.array(oov, np.bool_), len(lines), dropped

    def encode_words(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids and OOV flags of a list of words (no <s>/</s> added; literal ones dropped)."""
        index = self.index()
        ids, oov = [], []
        for w in words:
            i = index.get(w.encode("utf-8"))
            if i is None:
                ids.append(UNK_ID)
                oov.append(True)
            elif i == BOS_ID or i == EOS_ID:
                continue
            else:
                ids.append(i)
                oov.append(False)
        ids_a = np.array(ids, np.int32)
        oov_a = np.array(oov, np.bool_)
        if self.remap is not None and ids_a.size:
            new = self.remap[ids_a]
            oov_a |= (new == UNK_ID) & (ids_a != UNK_ID)
            ids_a = new
        return ids_a, oov_a


# ----------------------------------------------------------------------------------------------
# N-gram models


class QueryModel:
    """An NGramModel ready for scoring (see the module docstring).

    A model read from a file with its query structure (``model.query``, lmtools-model(5)) is
    scored with the stored tables, unigram arrays and word table as they are (read-only views of a
    mapped file: nothing here writes into them), after the cheap checks of ``stored_tables``;
    otherwise the structure is built on first use of the fast path, as before."""

    kind = "ngram"

    def __init__(self, model: NGramModel, name: str = "model"):
        self.model = model
        self.name = name
        self.order = model.order
        self.scores_only = bool(model.scores_only)
        V = len(model.vocab)
        self.stored = stored_tables(model, name)
        if self.stored is not None:
            self.uni_lp, self.uni_bo = self.stored.uni_lp, self.stored.uni_bo
        else:
            try:
                self.uni_lp, self.uni_bo = unigram_arrays(model)
            except ValueError:
                raise LmError(f"{name}: unigram ids outside the vocabulary", "recreate the model") from None
            _read_only(self.uni_lp, self.uni_bo)
        missing = np.isnan(self.uni_lp)
        remap = None
        if missing.any():
            remap = np.arange(V, dtype=np.int32)
            remap[missing] = UNK_ID
            _read_only(remap)
        self.vocabulary = Vocabulary(list(model.vocab), remap, self.stored)
        self._tables = None
        self._identity = None
        self._seen_bytes = 0
        self._steps = None
        self._blocks = None  # the ahead-of-time kernel's block arrays (records.BlockArrays)
        # numba's kernels are loaded (a fast path ran, or warm()): small inputs then take it too. Tables
        # alone say nothing: stored ones are mapped, small ones built in Python.
        self._kernels = False

    @property
    def vocab(self) -> list[str]:
        return self.vocabulary.vocab

    # -- the fast path's tables ------------------------------------------------------------
    def tables(self):
        """(tab, ftab, utab, base, slots, seed, prefix_closed): the stored ones, or built on first use
        (numba); ftab and utab are float32 and uint32 views of tab."""
        if self._tables is None:
            q = self.stored
            if q is not None:
                _verify(q)
                tab, base, slots, seed, closed = q.tab, q.base, q.slots, q.seed, bool(q.closed)
            else:
                tab, base, slots, seed, closed = _build_tables(self.model, self.name, self.uni_lp)
                _read_only(tab, base, slots)  # as stored ones: one compiled kernel for both
            self._tables = (tab, tab.view(np.float32), tab.view(np.uint32), base, slots, np.uint64(seed), closed)
        return self._tables

    def hashed_model(self):
        """The kernels' ``HashedModel``: the tables (built on first use) with the unigrams."""
        from lmtools.kernels.records import HashedModel

        return HashedModel(int(self.order), self.uni_lp, self.uni_bo, *self.tables())

    def use_fast(self, nbytes: int) -> bool:
        self._seen_bytes += nbytes
        chunk, total = ((SMALL_STORED_BYTES, SMALL_STORED_BYTES) if self.stored is not None
                        else (SMALL_BYTES, SMALL_TOTAL_BYTES))
        return self._kernels or nbytes > chunk or self._seen_bytes > total

    # -- scoring -----------------------------------------------------------------------------
    def score_ids(self, ids: np.ndarray, fast: bool = True, threads: int = 1):
        """(log10 p float64, matched order int32, zero-probability bool) per position of ``ids``."""
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        if ids.size:
            if ids.min() < NO_CONTEXT or ids.max() >= len(self.vocab):
                raise ValueError("token id outside the model's vocabulary")
            if ids[0] != BOS_ID and ids[0] != NO_CONTEXT:
                raise ValueError("a token stream must start a sentence (<s> or NO_CONTEXT)")
        if not fast:
            from lmtools.ngram.query_numpy import score_numpy, score_tables_numpy

            if self.stored is not None:  # the stored tables, probed: no n-gram array read whole
                if ids.size <= STEPS_MAX_TOKENS:
                    return self.steps().score_ids(ids)
                return score_tables_numpy(self, ids)
            return score_numpy(self, ids)
        from lmtools.kernels.query import score_ids

        M = self.hashed_model()
        self._kernels = True
        T = ids.size
        lp = np.empty(T, np.float64)
        order = np.empty(T, np.int32)
        zero = np.empty(T, np.bool_)
        import numba

        if threads > 1 and T > PARALLEL_MIN_TOKENS:
            cuts = _cuts(ids, threads)
        else:
            cuts = np.array([0, T], np.int64)
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS, cuts.size - 1)))
        score_ids(ids, cuts, M, lp, order, zero)
        return lp, order, zero

    def _compiled(self, data: bytes, threads: int, fast: bool | None):
        """(fast, the ahead-of-time module where it scores this text, else None): every input of a
        model with stored tables takes it (it costs nothing to start); threads > 1 on a large text
        take numba's parallel kernels."""
        from lmtools.kernels import aot

        compiled = aot.load()
        if fast is None:
            fast = (compiled is not None and self.stored is not None) or self.use_fast(len(data))
        if not fast or (threads > 1 and len(data) > PARALLEL_MIN_BYTES):
            compiled = None
        return fast, compiled

    def score_text(self, data: bytes, threads: int = 1, fast: bool | None = None) -> Scored:
        fast, compiled = self._compiled(data, threads, fast)
        if compiled is not None:
            return self._score_text_compiled(compiled, data)
        enc = self.vocabulary.encode(data, fast)
        lp, order, zero = self.score_ids(enc.ids, fast, threads)
        return Scored(enc.ids, enc.oov, lp, order, zero, enc.n_lines, enc.n_dropped)

    def line_scores(self, data: bytes, threads: int = 1, fast: bool | None = None) -> LineScores:
        """Per-line results of whole lines of text, tokenized and scored in one pass: by the kernel
        compiled ahead of time (one thread), numba's (in parallel with threads > 1), or the numpy path
        for small inputs. Same numbers."""
        fast, compiled = self._compiled(data, threads, fast)
        if not fast:
            return self.score_text(data, fast=False).line_scores()
        n = len(data)
        L = data.count(b"\n") + (1 if n and not data.endswith(b"\n") else 0)
        if compiled is not None:
            return self._line_scores_compiled(compiled, data, L)
        import numba

        from lmtools.kernels.query import score_lines

        M = self.hashed_model()
        self._kernels = True
        words = self.vocabulary.word_table()
        remap = self._remap()
        parts = threads if threads > 1 and n > PARALLEL_MIN_BYTES else 1
        starts = [0]
        for k in range(1, parts):
            p = data.find(b"\n", (k * n) // parts)
            if p >= 0 and p + 1 > starts[-1] and p + 1 < n:
                starts.append(p + 1)
        lines = [0] + [data.count(b"\n", 0, c) for c in starts[1:]]
        starts.append(n)
        seg_start = np.array(starts, np.int64)
        seg_line = np.array(lines, np.int64)
        out = LineScores.empty(L)
        dropped = np.zeros(len(lines), np.int64)
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS, len(lines))))
        score_lines(np.frombuffer(data, np.uint8), seg_start, seg_line, words, remap, M, out.kernel_view(), dropped)
        out.n_dropped = int(dropped.sum())
        return out

    def _remap(self) -> np.ndarray:
        remap = self.vocabulary.remap
        if remap is None:
            if self._identity is None:
                self._identity = np.arange(len(self.vocab), dtype=np.int32)
                _read_only(self._identity)
            remap = self._identity
        return remap

    def _line_scores_compiled(self, compiled, data: bytes, L: int) -> LineScores:
        """``line_scores`` in one thread by the ahead-of-time kernel (kernels/aot.py): numba is not
        imported. Its block arrays are kept between chunks; a line too long for them gets its own."""
        from lmtools.kernels import aot
        from lmtools.kernels.records import BLOCK, block_arrays, line_capacity

        M = self.hashed_model()
        words = self.vocabulary.word_table()
        remap = self._remap()
        if self._blocks is None:
            self._blocks = block_arrays(2 * BLOCK, self.order)
        out = LineScores.empty(L)
        sums = out.kernel_view()
        buf = np.frombuffer(data, np.uint8)
        state = np.zeros(3, np.int64)
        n = len(data)
        i = li = 0
        long_line = False  # the kernel stopped before a line too long for the block arrays
        while i < n:
            A, end = self._blocks, n
            if long_line:
                e = data.find(b"\n", i)
                e = n if e < 0 else e
                A, end = block_arrays(line_capacity(e - i), self.order), min(e + 1, n)
            i = aot.score_lines(compiled, buf, i, end, li, words, remap, M, sums, A, state)
            li = int(state[0])
            out.n_dropped += int(state[1])
            long_line = not long_line and i < n
        return out

    def _score_text_compiled(self, compiled, data: bytes) -> Scored:
        """``score_text`` in one thread by the ahead-of-time kernel (kernels/aot.py): numba is not
        imported. Arrays for every token of the text (at most one per two bytes, and <s>, </s>)."""
        from lmtools.kernels import aot
        from lmtools.kernels.records import block_arrays

        n = len(data)
        A = block_arrays(n // 2 + 3 * (data.count(b"\n") + 1), self.order)
        state = np.zeros(3, np.int64)
        k = aot.score_tokens(compiled, np.frombuffer(data, np.uint8), 0, n, self.vocabulary.word_table(),
                             self._remap(), self.hashed_model(), A, state)
        if state[2] != n:  # the arrays hold every line's tokens: it cannot stop early
            raise LmError("internal: the scoring kernel stopped early", "rerun with --debug and report it")
        return Scored(A.ids[:k], A.oov[:k], A.lp[:k], A.order[:k], A.zero[:k], int(state[0]), int(state[1]))

    def steps(self):
        """The tables walked one word at a time from Python (lmtools.ngram.steps.NGramSteps; made
        on first use): lmtools.api's BaseScore, and small inputs when the tables are stored."""
        if self._steps is None:
            from lmtools.ngram.steps import NGramSteps

            self._steps = NGramSteps(self)
        return self._steps

    def warm(self) -> None:
        """Build (or take the stored) tables and word table now (the API and benchmarks call it before timing)."""
        self.tables()
        self.vocabulary.word_table()
        self._kernels = True


def _verify(q: QueryTables) -> None:
    if q.verify is not None:
        q.verify()
        q.verify = None


def _read_only(*arrays) -> None:
    # The kernels see every table read-only, stored (a mapped file's views) or built: numba compiles
    # one specialization for read-only arrays, not a second one for writable ones.
    for a in arrays:
        a.flags.writeable = False


# -- the stored query structure ----------------------------------------------------------------

def stored_tables(model: NGramModel, name: str) -> QueryTables | None:
    """The model's stored query structure when it can be used: None when there is none, or when it
    was made with another layout (then it is rebuilt at load, with a note); a structure that
    disagrees with the model is refused (the file is damaged)."""
    q = model.query
    if q is None:
        return None
    if q.layout != QUERY_LAYOUT:
        from lmtools.messages import warn

        warn(f"{name}: query tables of layout {q.layout}, this lmtools uses {QUERY_LAYOUT}: built at load; "
             f"rewrite the model to store them (lm-train {name} -o NEW.lm)")
        return None
    why = query_problem(q, model)
    if why is not None:
        raise LmError(f"{name}: corrupt model file (query tables: {why})",
                      "recreate the model, or rewrite it without them (lm-train MODEL --no-query-tables -o NEW.lm)")
    return q


def _cuts(ids: np.ndarray, parts: int) -> np.ndarray:
    """Segment boundaries at sentence starts, about equal in size."""
    starts = np.flatnonzero((ids == BOS_ID) | (ids == NO_CONTEXT))
    want = (np.arange(1, parts) * ids.size) // parts
    inner = starts[np.minimum(np.searchsorted(starts, want), starts.size - 1)]
    return np.unique(np.concatenate([[0], inner, [ids.size]])).astype(np.int64)


def _build_tables(model: NGramModel, name: str, uni_lp: np.ndarray):
    """(tab, base, slots, seed, prefix_closed): the hash tables of orders 2..N (kernels/query_tables.build_tables),
    after checking that memory allows them."""
    from lmtools import memory

    N = model.order
    if sum(model.sizes()) <= SMALL_BUILD:  # the same arrays, without loading numba (lmtools.api on a tiny model)
        try:
            return build_tables_python(model.ngrams, model.logprob, model.backoff, uni_lp)
        except ValueError:
            raise LmError(f"{name}: the model has repeated n-grams", "recreate the model") from None
    sizes = [0, 0] + [int(model.ngrams[n - 1].shape[0]) for n in range(2, N + 1)]
    memory.check(memory.estimate_query(sizes[1:]), f"{name}: loading the {N}-gram model for queries "
                 f"({sum(sizes):,} n-grams of orders 2..{N})",
                 "use a smaller or pruned model (lm-train -n, --prune)")
    from lmtools.kernels.query_tables import build_tables

    try:
        return build_tables(model.ngrams, model.logprob, model.backoff, uni_lp, memory.zeros)
    except OverflowError as e:
        raise LmError(f"{name}: {e}", "score it as a trie (lm-train MODEL --trie -o NEW.lm), or prune it") from None
    except ValueError:
        raise LmError(f"{name}: the model has repeated n-grams", "recreate the model") from None
