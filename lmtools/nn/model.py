"""The feedforward neural LM (Bengio et al. 2003) as data: vocabulary, parameters, output layer.

Contract:
- ``vocab[i]`` is the word with id i; ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``.
- ``context`` = m = n-1 previous tokens (``<s>`` pads the start of a sentence), ``order`` = m+1.
- Parameters, float32 (float64 allowed for tests), in the formula's orientation:
  ``E`` (V, d), ``W`` (H, m*d), ``b`` (H,), ``U`` (V, H), ``c`` (V,):
  ``h = act(W [E x_1; ..; E x_m] + b)``, ``p(.|h) = softmax(U h + c)``.
- Class-based output layer (``output_layer == "class"``): ``word_class`` (V,) int32 gives each
  word's class in 0..C-1, ``Uc`` (C, H), ``cc`` (C,); ``p(w|h) = softmax(Uc h + cc)[k] *
  softmax over the words of class k of (U h + c)[w]``, k = word_class[w]. Exact, normalized.
- Scoring follows the n-gram convention: every token of ``<s> w1 .. wk </s>`` but ``<s>`` is
  scored; ``<s>`` has p = 1. ``<s>`` is never predicted: p(<s>|h) = 0 and the softmax runs over
  the other words (its output row is left out by the kernels, in training too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmtools.errors import LmError
from lmtools.vocab import BOS_ID, SPECIALS

LN10 = np.log(10.0)
FORMAT = 1  # of the ffnn header/arrays below


@dataclass
class FFNNModel:
    vocab: list[str]
    context: int
    E: np.ndarray
    W: np.ndarray
    b: np.ndarray
    U: np.ndarray
    c: np.ndarray
    activation: str = "tanh"
    word_class: np.ndarray | None = None  # class layer only
    Uc: np.ndarray | None = None
    cc: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)  # program, version, options, inputs, training log
    text: dict | None = None  # how the text was read: {"chars": bool, "lower": bool}; None: unknown

    # ------------------------------------------------------------------------------------------
    @property
    def order(self) -> int:
        return self.context + 1

    @property
    def dim(self) -> int:
        return int(self.E.shape[1])

    @property
    def hidden(self) -> int:
        return int(self.W.shape[0])

    @property
    def output_layer(self) -> str:
        return "softmax" if self.word_class is None else "class"

    @property
    def n_classes(self) -> int:
        return 0 if self.Uc is None else int(self.Uc.shape[0])

    def describe(self) -> dict:
        """Facts for lm-info: sizes, layer, parameter count, training summary."""
        facts = {"order": self.order, "vocabulary": len(self.vocab), "context": int(self.context), "dim": self.dim,
                 "hidden": self.hidden, "activation": self.activation, "output_layer": self.output_layer,
                 "parameters": int(sum(a.size for k, a in self.param_arrays().items() if k != "word_class")),
                 "dtype": str(self.E.dtype)}
        if self.word_class is not None:
            facts["classes"] = self.n_classes
        tr = (self.provenance or {}).get("training") or {}
        if tr.get("best_valid_ppl") is not None:
            facts["best_valid_ppl"] = round(float(tr["best_valid_ppl"]), 3)
            facts["best_epoch"] = tr.get("best_epoch")
        return facts

    def param_arrays(self) -> dict[str, np.ndarray]:
        out = {"E": self.E, "W": self.W, "b": self.b, "U": self.U, "c": self.c}
        if self.word_class is not None:
            out.update({"Uc": self.Uc, "cc": self.cc, "word_class": self.word_class})
        return out

    # ------------------------------------------------------------------------------------------
    # Model file (kind "ffnn")

    def to_file_parts(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Header (plain msgpack values) and named arrays for ``lmtools.io.modelwrite.write_model``."""
        from lmtools import __version__

        prov = dict(self.provenance or {})
        prov.setdefault("version", __version__)
        header = {"order": self.order, "vocab": list(self.vocab), "ffnn_format": FORMAT,
                  "context": int(self.context), "dim": self.dim, "hidden": self.hidden,
                  "activation": self.activation, "output_layer": self.output_layer,
                  "classes": self.n_classes, "provenance": prov}
        arrays = {k: np.ascontiguousarray(v) for k, v in self.param_arrays().items()}
        return header, arrays

    @classmethod
    def from_file_parts(cls, header: dict, arrays: dict[str, np.ndarray], name: str = "model") -> "FFNNModel":
        """Inverse of ``to_file_parts``; a file whose arrays do not fit its header raises LmError."""
        hint = "retrain it with lm-train --method ffnn"
        try:
            vocab = list(header["vocab"])
            ctx = int(header["context"])
            act = str(header.get("activation", "tanh"))
            layer = str(header.get("output_layer", "softmax"))
            E, W, b, U, c = (arrays[k] for k in ("E", "W", "b", "U", "c"))
            if layer == "class":
                wc, Uc, cc = (arrays[k] for k in ("word_class", "Uc", "cc"))
            else:
                wc = Uc = cc = None
        except (KeyError, TypeError, ValueError) as e:
            raise LmError(f"{name}: corrupt ffnn model (missing {e})", hint) from None
        if int(header.get("ffnn_format", FORMAT)) > FORMAT:
            raise LmError(f"{name}: ffnn model format {header.get('ffnn_format')} is newer than this "
                          f"lmtools reads ({FORMAT})", "upgrade lmtools")
        model = cls(vocab=vocab, context=ctx, E=E, W=W, b=b, U=U, c=c, activation=act,
                    word_class=None if wc is None else wc.astype(np.int32),
                    Uc=Uc, cc=cc, provenance=dict(header.get("provenance", {})))
        problem = model.check()
        if problem:
            raise LmError(f"{name}: corrupt ffnn model ({problem})", hint)
        return model

    def check(self) -> str | None:
        """None if the arrays agree with each other, else what is wrong."""
        from lmtools.kernels.ffnn import ACTIVATIONS

        V = len(self.vocab)
        if list(self.vocab[:3]) != list(SPECIALS):
            return "vocabulary does not start with <unk> <s> </s>"
        if self.activation not in ACTIVATIONS:
            return f"unknown activation {self.activation!r}"
        if self.context < 1:
            return "context < 1"
        d, H = self.E.shape[1] if self.E.ndim == 2 else -1, self.W.shape[0]
        if self.E.shape != (V, d) or self.W.shape != (H, self.context * d) or self.b.shape != (H,) \
                or self.U.shape != (V, H) or self.c.shape != (V,):
            return "parameter shapes disagree"
        if self.word_class is not None:
            C = self.Uc.shape[0] if self.Uc is not None and self.Uc.ndim == 2 else -1
            if self.word_class.shape != (V,) or self.Uc.shape != (C, H) or self.cc.shape != (C,):
                return "class-layer shapes disagree"
            if V and (self.word_class.min() < 0 or self.word_class.max() >= C):
                return "word class out of range"
        return None

    # ------------------------------------------------------------------------------------------
    # Kernel view

    def kernel_view(self, u_layout: int = 0):
        """The model as the kernels want it: ``(P, net, perm)``.

        ``perm[i]`` is the word id of kernel output row i (identity for the exact softmax; class
        order for the class layer); ``P``, a ``Params`` ``(E, Wt, b, U, c, Uc, cc)``, has the U/c
        rows in that order; ``net`` is the ``Net`` of the kernels (activation, ``u_layout``, the
        class layer's rows and the output row of ``<s>``).
        """
        from lmtools.kernels.ffnn import ACTIVATIONS, U_VH, Net, Params

        dt = self.E.dtype
        Wt = np.ascontiguousarray(self.W.T)
        H = self.hidden
        if self.word_class is None:
            perm = np.arange(len(self.vocab))
            U = self.U if u_layout == U_VH else self.U.T
            P = Params(self.E, Wt, self.b, np.ascontiguousarray(U), self.c, np.zeros((0, H), dt), np.zeros(0, dt))
            cls = np.zeros(0, np.int32)
            start = np.zeros(0, np.int32)
        else:
            perm, cls, start = class_layout(self.word_class, self.n_classes)
            P = Params(self.E, Wt, self.b, np.ascontiguousarray(self.U[perm]), np.ascontiguousarray(self.c[perm]),
                       np.ascontiguousarray(self.Uc), np.ascontiguousarray(self.cc))
        return P, Net(ACTIVATIONS[self.activation], u_layout, cls, start, bos_row(perm)), perm

    # ------------------------------------------------------------------------------------------
    # Scoring

    def examples(self, ids: np.ndarray):
        """(X, Y, pos) of a token stream (see ``lmtools.kernels.ffnn.build_examples``)."""
        from lmtools.kernels.ffnn import build_examples

        ids = np.ascontiguousarray(ids, dtype=np.int32)
        if ids.size and ids[0] != BOS_ID:
            raise ValueError("a token stream must start with <s>")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab)):
            raise ValueError("token id outside the model's vocabulary")
        return build_examples(ids, self.context)

    def score_ids(self, ids: np.ndarray, batch: int = 512) -> np.ndarray:
        """log10 p(w | previous tokens) for every token of a stream ``<s> w1 .. wk </s> <s> ...``.

        Returns a float64 array as long as ``ids``; ``<s>`` positions hold 0.0 (p = 1, not scored).
        """
        from lmtools.kernels.ffnn import score_examples

        X, Y, pos = self.examples(ids)
        P, net, perm = self.kernel_view()
        if self.word_class is not None:
            inv = np.empty_like(perm)
            inv[perm] = np.arange(perm.size)
            Y = inv[Y].astype(np.int32)
        ln = np.empty(Y.shape[0], np.float64)
        score_examples(P, net, X, Y, batch, ln)
        out = np.zeros(len(ids), np.float64)
        out[pos] = ln / LN10
        return out

    log10_probs = score_ids

    def next_ln_probs(self, contexts: np.ndarray, view=None) -> np.ndarray:
        """Next-word distributions: ``out[i, w] = ln p(w | contexts[i])``, word-id order (``-inf`` at
        ``<s>``, which is never predicted), each value the bits ``score_ids`` gives that word (one
        normalizer, kernels.ffnn.log_softmax_parts).

        ``contexts`` is int32 (B, context), oldest word first (``<s>``-padded at a sentence start);
        ``view``: ``kernel_view()`` when the caller keeps it between calls.
        """
        from lmtools.kernels.ffnn import next_word_logprobs

        X = np.ascontiguousarray(contexts, dtype=np.int32).reshape(-1, self.context)
        P, net, perm = view if view is not None else self.kernel_view()
        ln = np.empty((X.shape[0], len(self.vocab)), np.float64)
        next_word_logprobs(P, net, X, ln)
        if self.word_class is None:
            return ln
        out = np.empty_like(ln)
        out[:, perm] = ln
        return out

    def next_log10_probs(self, contexts: np.ndarray) -> np.ndarray:
        """``next_ln_probs`` in log10 (as ``score_ids``)."""
        return self.next_ln_probs(contexts) / LN10


def bos_row(perm: np.ndarray) -> int:
    """The kernels' output row of ``<s>`` (``perm`` from ``kernel_view``)."""
    return int(np.flatnonzero(perm == BOS_ID)[0]) if perm.size > BOS_ID else -1


def class_layout(word_class: np.ndarray, n_classes: int):
    """Word order by class (stable), each word's class in that order, and the class row ranges."""
    perm = np.argsort(word_class, kind="stable")
    cls = np.ascontiguousarray(word_class[perm], dtype=np.int32)
    start = np.zeros(n_classes + 1, np.int32)
    np.cumsum(np.bincount(word_class, minlength=n_classes), out=start[1:])
    return perm, cls, start


def frequency_classes(counts: np.ndarray, n_classes: int) -> np.ndarray:
    """Frequency-binned word classes (Mikolov's RNNLM): words by descending count, cut into bins
    of equal total sqrt(unigram probability); frequent words get small classes, rare words large.
    ``<s>`` (never predicted) and zero-count words land in the last class. Returns int32 (V,).
    """
    V = counts.shape[0]
    n_classes = max(1, min(n_classes, V))
    p = np.sqrt(np.maximum(counts, 0) / max(1, counts.sum()))
    order = np.argsort(-p, kind="stable")
    cum = np.cumsum(p[order])
    total = cum[-1] if cum.size and cum[-1] > 0 else 1.0
    # class of a word = the bin its cumulative mass (before it) falls into
    before = np.concatenate([[0.0], cum[:-1]]) / total
    k = np.minimum((before * n_classes).astype(np.int64), n_classes - 1)
    out = np.empty(V, np.int32)
    out[order] = k
    # every class must be non-empty: renumber the classes that occur
    used = np.unique(out)
    remap = np.full(n_classes, -1, np.int64)
    remap[used] = np.arange(used.size)
    return remap[out].astype(np.int32)
