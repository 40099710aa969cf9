"""Every model kind behind one interface: load a model (lmtools.io.models), then wrap it.

- ``Scorer``: what lm-ppl, lm-score and lmtools.api use (``QueryModel`` for n-gram models,
  lmtools/ngram/query.py; ``FFNNScorer``, lmtools/nn/score.py; ``Mixture`` of several,
  lmtools/mixture.py);
- ``Sampler``: what lm-gen uses (``NGramSampler``, lmtools/ngram/sample.py; ``FFNNSampler``,
  lmtools/nn/sample.py).

``scorer_for`` and ``sampler_for`` are the one dispatch from a model type to its implementations
(``implementations``); a counts model is smoothed on the fly first (interpolated modified
Kneser-Ney). ``load_scorer`` reads every source (io.models.read_source), checks that their text
kinds agree, starts numba without BLAS when no neural model needs it, and only then builds and
wraps the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.sample import DEFAULT_MAX_LEN, check_options

if TYPE_CHECKING:
    from lmtools.ngram.scores import LineScores, Scored
    from lmtools.ngram.sample import Samples, SamplingOptions


class Scorer(Protocol):
    """Text in, per-token log10 probabilities out (lmtools.ngram.query.Scored)."""

    kind: str  # "ngram", "ffnn", "mixture"
    name: str
    order: int
    scores_only: bool  # scores, not probabilities (stupid backoff)
    text: dict | None  # how to read text for it ({"chars", "lower"}); set by load_scorer

    @property
    def vocab(self) -> list[str]: ...

    def score_text(self, data: bytes, threads: int = 1, fast: bool | None = None) -> "Scored": ...

    def line_scores(self, data: bytes, threads: int = 1, fast: bool | None = None) -> "LineScores": ...

    def warm(self) -> None: ...


class Sampler(Protocol):
    """Sentences drawn with a seed, next-word distributions (see lmtools.ngram.sample.SamplerBase)."""

    vocab: list[str]
    order: int
    scores_only: bool

    def encode(self, words: Sequence[str | int]) -> tuple[np.ndarray, int]: ...

    def distribution(self, history: np.ndarray) -> np.ndarray: ...

    def prefix_log10(self, prefix: np.ndarray) -> float: ...

    def sample_batch(self, n: int, seed: int, first: int, prefix: np.ndarray, opts: "SamplingOptions",
                     threads: int = 0) -> "Samples": ...

    def python_draws(self, n: int, opts: "SamplingOptions") -> bool: ...

    def sample_all(self, n: int, seed: int, prefix: np.ndarray, opts: "SamplingOptions", chunk: int = ...,
                   threads: int = 0) -> Iterator["Samples"]: ...


SCORER, SAMPLER = 0, 1


def implementations() -> dict[type, tuple[type, type]]:
    """Model type -> (its scorer class, its sampler class). Imported when asked for, so that a
    program pays only for what it uses (the classes themselves import their kernels lazily)."""
    from lmtools.ngram.model import NGramModel
    from lmtools.ngram.query import QueryModel
    from lmtools.ngram.sample import NGramSampler
    from lmtools.nn.model import FFNNModel
    from lmtools.nn.sample import FFNNSampler
    from lmtools.nn.score import FFNNScorer
    from lmtools.ngram.trie import TrieModel
    from lmtools.ngram.trie_query import TrieSampler, TrieScorer

    return {NGramModel: (QueryModel, NGramSampler), FFNNModel: (FFNNScorer, FFNNSampler),
            TrieModel: (TrieScorer, TrieSampler)}


def _wrap(obj, role: int, name: str, warn):
    from lmtools.ngram.counts import Counts

    if isinstance(obj, Counts):
        from lmtools.ngram.smoothing import smooth_if_counts

        obj = smooth_if_counts(obj, name, warn)
    for model_type, classes in implementations().items():
        if isinstance(obj, model_type):
            return classes[role](obj, name)
    return None


def scorer_for(obj, name: str = "model", warn: Callable[[str], None] | None = None) -> Scorer:
    """Wrap a loaded model (Counts, NGramModel, FFNNModel) as a scorer."""
    scorer = _wrap(obj, SCORER, name, warn)
    if scorer is None:
        raise LmError(f"{name}: cannot score with a {type(obj).__name__}", "give an n-gram or ffnn model")
    return scorer


def sampler_for(model, name: str = "model", warn: Callable[[str], None] | None = None) -> Sampler:
    """Prepare a loaded model (Counts, NGramModel, FFNNModel; a sampler passes through) for sampling."""
    from lmtools.ngram.sample import SamplerBase

    if isinstance(model, SamplerBase):
        return model
    sampler = _wrap(model, SAMPLER, name, warn)
    if sampler is None:
        raise LmError(f"{name}: cannot sample from a {type(model).__name__}", "give a counts, n-gram or ffnn model")
    return sampler


def load_scorer(sources: list[str], lambdas: list[float] | None = None, warn=None, skip_blas: bool = False) -> Scorer:
    """A scorer for one model or a linear mixture of several (paths, '-' for stdin).

    Any model kind: lmtools counts (smoothed on the fly with interpolated modified Kneser-Ney),
    n-gram and ffnn models, ARPA files. With ``skip_blas`` (programs, not libraries: the process
    could not use BLAS kernels later) numba is started without its BLAS probe when no ffnn model
    is involved.
    """
    from lmtools.mixture import Mixture, check_lambdas

    weights = check_lambdas(list(lambdas or []), len(sources))
    scorers, _, text = _read_then_build(sources, skip_blas,
                                        lambda u: scorer_for(u.build(warn=warn), u.name, warn))
    scorer = scorers[0] if len(scorers) == 1 else Mixture(scorers, weights)
    scorer.text = text  # how to read text for it: {"chars", "lower"}, or None when no model records it
    return scorer


def load_models(sources: list[str], warn=None, skip_blas: bool = False) -> tuple[list, list[str], dict | None]:
    """(models, names, text kind) of several sources, for a caller that needs the model objects
    themselves (lm-mix's static mixture, a mixture's sampler and scorer): every source read first
    and the text kinds checked (as ``load_scorer``), then built; a counts model is smoothed here,
    once (interpolated modified Kneser-Ney, as ``scorer_for`` and ``sampler_for`` would)."""
    from lmtools.ngram.smoothing import smooth_if_counts

    return _read_then_build(sources, skip_blas, lambda u: smooth_if_counts(u.build(warn=warn), u.name, warn))


def _read_then_build(sources: list[str], skip_blas: bool, build: Callable) -> tuple[list, list[str], dict | None]:
    """(built objects, names, text kind): every source read first and the text kinds checked (a
    mismatch is refused before any model is built), numba started without BLAS where no ffnn model
    needs it, then ``build(unread)`` for each; the sources closed whatever happens."""
    from lmtools.io.models import read_source
    from lmtools.mixture import mixture_text_kind

    unread = []
    try:
        for src in sources:
            unread.append(read_source(src))
        text = mixture_text_kind([u.name for u in unread], [u.text_kind() for u in unread])
        if skip_blas and not any(u.kind == "ffnn" for u in unread):
            from lmtools.kernels import skip_blas as _skip

            _skip()
        built = [build(u) for u in unread]
    finally:
        for u in unread:
            u.close()
    return built, [u.name for u in unread], text


def mixture_sampler(models: list, names: list[str], lambdas: list[float] | None = None, warn=None) -> Sampler:
    """A sampler of the linear mixture of loaded models (``lmtools.mixture.MixtureSampler``), whose
    sentence scores are those of the ``Mixture`` scorer of the same models (lm-score's numbers)."""
    from lmtools.mixture import Mixture, MixtureSampler, check_lambdas

    weights = check_lambdas(list(lambdas or []), len(models))
    samplers = [sampler_for(m, n, warn) for m, n in zip(models, names)]
    scorer = Mixture([scorer_for(m, n, warn) for m, n in zip(models, names)], weights)
    return MixtureSampler(samplers, weights, scorer)


# ----------------------------------------------------------------------------------------------
# Sampling in one call


def _ids(s: Sampler, words) -> tuple[np.ndarray, int]:
    if words is None:
        return np.zeros(0, np.int32), 0
    if isinstance(words, str):
        from lmtools.io.text import split_ascii

        words = split_ascii(words)
    return s.encode(list(words))


def sample(model, n: int = 1, seed: int = 0, *, prefix: str | Sequence[str | int] | None = None,
           temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0, greedy: bool = False,
           max_len: int = DEFAULT_MAX_LEN, allow_unk: bool = False) -> list[list[int]]:
    """n sentences as lists of word ids (the prefix's ids first; no ``<s>``/``</s>``).

    ``prefix``: words (a string is split at ASCII whitespace, or a list of words or ids); words
    outside the vocabulary are taken as ``<unk>``. Same model, arguments and seed: same sentences.
    """
    opts = check_options(temperature, top_k, top_p, greedy, max_len, allow_unk)
    s = sampler_for(model)
    pre, _ = _ids(s, prefix)
    out: list[list[int]] = []
    head = pre.tolist()
    for batch in s.sample_all(int(n), int(seed), pre, opts):
        out.extend(head + r for r in batch.rows())
    return out


def next_word_distribution(model, history: str | Sequence[str | int] = ()) -> np.ndarray:
    """p(w | <s> history) for every word w of the vocabulary (float64, word-id order).

    ``history``: the start of a sentence (a string split at ASCII whitespace, or words or ids);
    words outside the vocabulary are taken as ``<unk>``. For an n-gram model ``<s>`` has p = 0 and
    the whole vector sums to 1 (to the precision of the model's float32 log10 values).
    """
    s = sampler_for(model)
    ids, _ = _ids(s, history)
    return s.distribution(ids)
