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
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from lmtools.kinds import load_scorer, scorer_for
from lmtools.ngram.query import NO_CONTEXT, PplStats, Scored
from lmtools.vocab import BOS_ID, EOS_ID


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
        self._scorer.warm()

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
        """log10 p of the sentence (of its words and, with eos, of </s>)."""
        return float(self._score_sentence(sentence, bos, eos).logp[1:].sum())

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True) -> Iterator[tuple[float, int, bool]]:
        """(log10 p, length of the matched n-gram, is OOV) for each word and </s>."""
        s = self._score_sentence(sentence, bos, eos)
        for lp, o, v in zip(s.logp[1:].tolist(), s.order[1:].tolist(), s.oov[1:].tolist()):
            yield lp, o, v

    def perplexity(self, sentence: str) -> float:
        """10^(-log10 p / (words + 1)), OOVs scored as <unk> (as kenlm's Model.perplexity)."""
        s = self._score_sentence(sentence, True, True)
        return 10.0 ** (-float(s.logp[1:].sum()) / (s.ids.size - 1))

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
