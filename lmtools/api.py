"""A Python API for scoring, in the shape Python users know from the kenlm module.

    >>> import lmtools.api as lm
    >>> model = lm.Model("kn5.lm")                 # lmtools model of any kind, or ARPA (.gz)
    >>> model.score("the cat sat", bos=True, eos=True)     # log10 p of the sentence
    >>> list(model.full_scores("the cat sat"))     # (log10 p, matched n-gram length, oov) per token
    >>> model.perplexity("the cat sat")
    >>> model.perplexity_of_file("test.txt")       # the figures lm-ppl prints, as a dict

Sentences are split at ASCII whitespace; ``<s>``/``</s>`` are added as asked (bos, eos), and
literal ones inside the sentence are dropped. Words outside the vocabulary are scored as ``<unk>``.
Several models interpolate linearly: ``Model(["a.lm", "b.lm"], lambdas=[0.6, 0.4])``.

A decoder scores word by word from a kept ``State`` (kenlm's incremental interface); the numbers
are lm-score's, bit for bit (a sentence's BaseScores, summed in order from 0.0, are its total)::

    >>> state, out = lm.State(), lm.State()
    >>> model.BeginSentenceWrite(state)            # the context <s> (NullContextWrite: none)
    >>> total = 0.0
    >>> for w in "the cat sat </s>".split():
    ...     total += model.BaseScore(state, w, out)   # log10 p(w | state); out: the state after w
    ...     state, out = out, state
    >>> model.BaseFullScore(state, "the", out)     # (log_prob, ngram_length, oov)

States compare equal when the model would score every continuation of them alike (a decoder
recombines hypotheses on it). The context a state keeps is as short as the model allows: for an
n-gram model the longest n-gram found ending at its last word (at most N-1 words), as KenLM keeps.
An n-gram model's BaseScore walks its query tables in plain Python (no numba to load): 130-230k
calls/s on the PTB 5-gram on a loaded 2-core machine, where the compiled kenlm module makes ~1M
(bench/api_peer.py, bench/RESULTS.md). Opening a model file maps it (PTB 5-gram: ~0.1 s).

nltk.lm's word-level interface is ``model.nltk`` (``Model.score`` is kenlm's sentence score)::

    >>> model.nltk.score("sat", ["<s>", "the", "cat"])     # p(sat | <s> the cat), a probability
    >>> model.nltk.logscore("sat", ["the", "cat"])         # log2 p(sat | the cat), mid-sentence
    >>> model.nltk.perplexity(["the cat sat", "a dog"])    # of sentences (</s> counted, <s> not)
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.kinds import load_scorer, scorer_for
from lmtools.ngram.scores import NO_CONTEXT, PplStats, Scored
from lmtools.vocab import BOS, BOS_ID, EOS_ID

LOG2_10 = math.log2(10.0)


class State:
    """A decoder's state (kenlm.State): the context a model keeps after the words scored so far.
    Filled by ``Model.BeginSentenceWrite``, ``NullContextWrite`` and ``BaseScore``; equal states
    score every continuation alike (hashable: use them as keys to recombine hypotheses)."""

    __slots__ = ("words", "backoffs")

    def __init__(self):
        self.words: tuple = ()  # context word ids, newest first (a mixture: one tuple per model)
        self.backoffs: tuple = ()  # log10 backoff of the context's k newest words, k = 1, 2, ...

    def __eq__(self, other) -> bool:
        return isinstance(other, State) and self.words == other.words

    def __hash__(self) -> int:
        return hash(self.words)

    def __len__(self) -> int:
        """Words of context kept (for a mixture: models)."""
        return len(self.words)

    def __copy__(self) -> "State":
        s = State()
        s.words, s.backoffs = self.words, self.backoffs
        return s

    copy = __copy__

    def __repr__(self) -> str:
        return f"State(words={self.words!r})"


class FullScoreReturn(NamedTuple):
    """What ``Model.BaseFullScore`` returns (kenlm's names)."""

    log_prob: float  # log10 p(word | state)
    ngram_length: int  # length of the matched n-gram (<s> counted; 0 for a dropped literal <s>)
    oov: bool  # the word is outside the vocabulary (scored as <unk>)


class Model:
    def __init__(self, source, lambdas: list[float] | None = None, threads: int = 1):
        """``source``: a path ('-' for stdin), a list of paths (a mixture), or a loaded model object."""
        if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
            self._scorer = load_scorer([str(source)], lambdas)
        elif isinstance(source, (list, tuple)):
            self._scorer = load_scorer([str(s) for s in source], lambdas)
        else:
            self._scorer = scorer_for(source)
            self._scorer.text = getattr(source, "text", None)
        # How the model's text was read (lm-count --chars/--lower): sentences are read the same way.
        self.text = getattr(self._scorer, "text", None)
        self.threads = threads
        # Nothing is built or loaded here beyond the model itself: a model file's query tables are
        # mapped as they are, and numba (~0.5 s) is loaded by the first call that needs a kernel
        # (score, full_scores, ...), not by word-at-a-time scoring. ``warm()`` does it all now.
        self._steps = None  # the word-at-a-time engine (lmtools.incremental), made on first use
        self._step = None

    def warm(self) -> "Model":
        """Build (or map) the query tables and load the scoring kernels now, not on first use (for
        timing); returns the model."""
        self._scorer.warm()
        return self

    @property
    def order(self) -> int:
        return self._scorer.order

    @property
    def vocab(self) -> list[str]:
        return list(self._scorer.vocab)

    def __contains__(self, word: str) -> bool:
        return word.encode("utf-8") in self._first().vocabulary.index()

    def _first(self):
        return self._scorer.scorers[0] if hasattr(self._scorer, "scorers") else self._scorer

    def _read(self, text: str) -> str:
        """The text as the model's training text was read: lower-cased, as characters, as recorded."""
        if self.text is None:
            return text
        if self.text["lower"]:
            text = text.lower()
        if self.text["chars"]:
            from lmtools.io.text import chars_text

            text = chars_text(text)
        return text

    def _score_sentence(self, sentence: str, bos: bool, eos: bool) -> Scored:
        from lmtools.io.text import line_words

        words = line_words(self._read(sentence))[0]
        scorers = self._scorer.scorers if hasattr(self._scorer, "scorers") else [self._scorer]
        parts = []
        for s in scorers:
            ids, oov = s.vocabulary.encode_words(words)
            head = np.array([BOS_ID if bos else NO_CONTEXT], np.int32)
            tail = np.array([EOS_ID], np.int32) if eos else np.zeros(0, np.int32)
            all_ids = np.concatenate([head, ids, tail])
            all_oov = np.concatenate([[False], oov, [False] * len(tail)]).astype(np.bool_)
            lp, order, zero = s.score_ids(all_ids, True, 1)
            parts.append(Scored(all_ids, all_oov, lp, order, zero, 1, 0))
        return parts[0] if len(parts) == 1 else self._scorer.combine(parts)

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        """log10 p of the sentence (of its words and, with eos, of </s>): summed in token order, the
        number lm-score prints (and the sum of the sentence's BaseScores)."""
        total = 0.0
        for v in self._score_sentence(sentence, bos, eos).logp[1:].tolist():
            total += v
        return total

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True) -> Iterator[tuple[float, int, bool]]:
        """(log10 p, length of the matched n-gram, is OOV) for each word and </s>."""
        s = self._score_sentence(sentence, bos, eos)
        for lp, o, v in zip(s.logp[1:].tolist(), s.order[1:].tolist(), s.oov[1:].tolist()):
            yield lp, o, v

    def perplexity(self, sentence: "str | Iterable[str]") -> float:
        """10^(-log10 p / (words + 1)), OOVs scored as <unk> (as kenlm's Model.perplexity). Given
        several sentences (any iterable of strings), of them together: 10^(-sum log10 p / sum (words + 1))."""
        if isinstance(sentence, str):
            s = self._score_sentence(sentence, True, True)
            return 10.0 ** (-float(s.logp[1:].sum()) / (s.ids.size - 1))
        data = "".join(self._read(line.rstrip("\n")) + "\n" for line in sentence).encode("utf-8")
        ls = self._scorer.line_scores(data, self.threads)
        tokens = int(ls.tokens.sum())
        if tokens == 0:
            raise ValueError("no sentences to compute a perplexity of")
        return 10.0 ** (-math.fsum(ls.lp.tolist()) / tokens)

    # -- word by word (kenlm's incremental interface) ------------------------------------------

    def _engine(self):
        if self._steps is None:
            from lmtools.incremental import steps_for

            self._steps = steps_for(self._scorer)
            step = self._steps.step_word
            if self.text is not None and self.text["lower"]:  # read as the model's text was read
                self._step = lambda words, backoffs, word: step(words, backoffs, word.lower())
            else:
                self._step = step
        return self._steps

    def BeginSentenceWrite(self, state: State) -> State:
        """Set ``state`` to the start of a sentence (the context <s>); returns it."""
        state.words, state.backoffs = self._engine().begin()
        return state

    def NullContextWrite(self, state: State) -> State:
        """Set ``state`` to no context at all (scoring from the middle of a text, as bos=False); returns it.
        A neural model has none (it always starts from <s>): LmError."""
        state.words, state.backoffs = self._engine().null()
        return state

    def BaseScore(self, in_state: State, word: str, out_state: State) -> float:
        """log10 p(word | in_state), the number lm-score gives the word after that context; writes the
        state after the word into ``out_state`` (which may be ``in_state`` itself). ``</s>`` ends a
        sentence (score it, then start the next from BeginSentenceWrite); a word outside the
        vocabulary is scored as <unk>; a literal ``<s>`` is dropped as lm-score drops it (0.0, state kept)."""
        if self._step is None:
            self._engine()
        lp, _, _, out_state.words, out_state.backoffs = self._step(in_state.words, in_state.backoffs, word)
        return lp

    def BaseFullScore(self, in_state: State, word: str, out_state: State) -> FullScoreReturn:
        """As ``BaseScore``, with the matched n-gram's length and whether the word is an OOV (the
        ORDER and OOV columns of lm-score --words)."""
        if self._step is None:
            self._engine()
        lp, m, oov, out_state.words, out_state.backoffs = self._step(in_state.words, in_state.backoffs, word)
        return FullScoreReturn(lp, m, oov)

    def begin_sentence_state(self, state: State | None = None) -> State:
        """``BeginSentenceWrite`` into ``state`` (a new State when none is given); returns it."""
        return self.BeginSentenceWrite(State() if state is None else state)

    def null_context_state(self, state: State | None = None) -> State:
        """``NullContextWrite`` into ``state`` (a new State when none is given); returns it."""
        return self.NullContextWrite(State() if state is None else state)

    def base_score(self, in_state: State, word: str, out_state: State | None = None) -> float:
        """``BaseScore`` (``out_state`` may be left out when only the number is wanted)."""
        return self.BaseScore(in_state, word, State() if out_state is None else out_state)

    def base_full_score(self, in_state: State, word: str, out_state: State | None = None) -> FullScoreReturn:
        return self.BaseFullScore(in_state, word, State() if out_state is None else out_state)

    @property
    def nltk(self) -> "NLTKScores":
        """nltk.lm's word-level interface to this model (score, logscore, perplexity)."""
        return NLTKScores(self)

    def score_lines(self, lines: Iterable[str]) -> np.ndarray:
        """log10 p of each line (bos and eos), through the batched kernels."""
        data = "".join(self._read(line.rstrip("\n")) + "\n" for line in lines).encode("utf-8")
        return self._scorer.line_scores(data, self.threads).lp

    def perplexity_of_file(self, *paths: str) -> dict:
        """The figures lm-ppl prints for the files together (see man lm-ppl)."""
        from lmtools.io.text import TextOptions, iter_text_chunks

        opts = TextOptions(lower=bool(self.text and self.text["lower"]), chars=bool(self.text and self.text["chars"]))
        stats = PplStats()
        for chunk in iter_text_chunks(list(paths), opts):
            stats.add(self._scorer.line_scores(chunk.data, self.threads))
        return stats.figures()


class NLTKScores:
    """nltk.lm's ``score(word, context)`` and ``logscore`` for a Model (``Model.nltk``).

    ``context`` is a sequence of words, oldest first (None or empty: no context). A context holding
    ``<s>`` starts a sentence there (the words before its last ``<s>`` are not used); one without is
    taken from the middle of a sentence: for an n-gram model, ``score(w)`` is the unigram
    probability. A neural model always reads its context as a sentence start padded with ``<s>``.
    Words outside the vocabulary are ``<unk>`` (in the context too, as nltk.lm masks them). ``<s>``
    is never predicted: ``score("<s>", ...)`` is 0. A log10 p at or below -99 is p = 0 (ARPA's
    convention, as lm-ppl counts it): ``score`` gives 0.0 and ``logscore`` -inf. Over the
    vocabulary, ``score(w, context)`` sums to 1 (for a stupid-backoff model they are scores).
    """

    def __init__(self, model: Model):
        self.model = model

    @property
    def vocab(self) -> list[str]:
        return self.model.vocab

    def _log10(self, word: str, context) -> float:
        m = self.model
        steps = m._engine()
        if word == BOS:
            return -math.inf
        words = [] if context is None else [str(w) for w in context]
        if m.text is not None and m.text["lower"]:
            words = [w.lower() for w in words]
        bos = BOS in words
        if bos:
            words = words[len(words) - words[::-1].index(BOS):]
        state = steps.after_words(words, bos)
        lp = m._step(*state, word)[0]
        return -math.inf if lp <= LOG_ZERO else lp

    def score(self, word: str, context=None) -> float:
        """p(word | context), a probability."""
        lp = self._log10(word, context)
        return 0.0 if lp == -math.inf else 10.0 ** lp

    def logscore(self, word: str, context=None) -> float:
        """log2 p(word | context) (nltk.lm's logscore is base 2); -inf for p = 0."""
        return self._log10(word, context) * LOG2_10

    def perplexity(self, sentences: "str | Iterable[str]") -> float:
        """Perplexity of sentences (one string, or an iterable of them; <s>/</s> added to each):
        2^(-mean log2 p) over their words and </s>, every token counted (OOVs as <unk>; as ``Model.perplexity``)."""
        return self.model.perplexity([sentences] if isinstance(sentences, str) else sentences)

    def entropy(self, sentences: "str | Iterable[str]") -> float:
        """Cross-entropy in bits per token (log2 of ``perplexity``)."""
        return math.log2(self.perplexity(sentences))
