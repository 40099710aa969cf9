"""Saving and loading every model kind through the one model-file module.

``load_model`` accepts an lmtools model file (any kind) or an ARPA file (plain or compressed),
from a path or ``-`` (stdin), and returns a ``Counts``, ``NGramModel`` or ``FFNNModel``.
"""

from __future__ import annotations

import io
import sys
from typing import BinaryIO

import numpy as np

from lmtools import __version__
from lmtools.errors import LmError
from lmtools.io.modelfile import read_model, write_model
from lmtools.ngram.counts import Counts
from lmtools.ngram.model import NGramModel


def _provenance(obj) -> dict:
    prov = dict(getattr(obj, "provenance", {}) or {})
    prov.setdefault("version", __version__)
    return prov


def counts_to_parts(c) -> tuple[dict, dict[str, np.ndarray]]:
    """File parts of a ``Counts`` (sorted full rows) or of ``Levels`` (lm-count's own form).

    On file, order n >= 2 is stored as each n-gram's prefix (row of its first n-1 words in order
    n-1) and last word: 8 bytes per n-gram whatever n, and what the counter produces directly.
    """
    from lmtools.ngram.counting import Levels

    if isinstance(c, Levels):
        levels, unigrams, order = c.levels, c.unigrams, len(c.levels) + 1
    else:
        from lmtools.kernels.smooth import prefix_index

        order, unigrams, levels = c.order, c.counts[0], []
        for n in range(2, order + 1):
            rows, prev = c.ngrams[n - 1], c.ngrams[n - 2]
            prefix = prefix_index(np.ascontiguousarray(rows), np.ascontiguousarray(prev)) if len(rows) else \
                np.zeros(0, np.int64)
            if (prefix < 0).any():
                raise ValueError(f"order {n} has n-grams whose prefix is not among the order {n - 1} n-grams")
            levels.append((prefix, rows[:, -1], c.counts[n - 1]))
    header = {"order": order, "vocab": list(c.vocab), "tokens": int(c.tokens), "sentences": int(c.sentences),
              "sizes": [len(unigrams)] + [len(lv[0]) for lv in levels],
              "provenance": _provenance(c)}
    arrays = {"counts_1": _narrow(unigrams)}
    for n, (prefix, word, count) in enumerate(levels, start=2):
        arrays[f"prefix_{n}"] = np.ascontiguousarray(prefix, dtype=np.int32)
        arrays[f"word_{n}"] = np.ascontiguousarray(word, dtype=np.int32)
        arrays[f"counts_{n}"] = _narrow(count)
    return header, arrays


def _narrow(count: np.ndarray) -> np.ndarray:
    # Counts are exact integers; the narrowest unsigned type that holds them keeps files small.
    small = count.size == 0 or (int(count.max()) < 2**32 and int(count.min()) >= 0)
    return count.astype(np.uint32 if small else np.int64, copy=False)


def counts_from_parts(h: dict, a: dict[str, np.ndarray], name: str) -> Counts:
    lv = levels_from_parts(h, a, name)
    return lv.to_counts(lv.provenance)


def levels_from_parts(h: dict, a: dict[str, np.ndarray], name: str):
    """A counts file as stored (``Levels``: trie levels, not sorted)."""
    from lmtools.ngram.counting import Levels

    order = _order(h, name)
    V = len(h["vocab"])
    try:
        unigrams = a["counts_1"].astype(np.int64)
        levels = [(a[f"prefix_{n}"], a[f"word_{n}"], a[f"counts_{n}"].astype(np.int64)) for n in range(2, order + 1)]
    except KeyError as e:
        raise LmError(f"{name}: counts file lacks array {e.args[0]}", "recreate it with lm-count") from None
    sizes = [V]
    for n, (prefix, word, count) in enumerate(levels, start=2):
        if not (prefix.shape == word.shape == count.shape) or prefix.ndim != 1:
            raise LmError(f"{name}: corrupt counts file (order {n} arrays disagree)", "recreate it with lm-count")
        if len(prefix) and (prefix.min() < 0 or prefix.max() >= sizes[-1] or word.min() < 0 or word.max() >= V):
            raise LmError(f"{name}: corrupt counts file (order {n} ids out of range)", "recreate it with lm-count")
        sizes.append(len(prefix))
    if unigrams.shape != (V,):
        raise LmError(f"{name}: corrupt counts file (unigram counts)", "recreate it with lm-count")
    return Levels(list(h["vocab"]), unigrams, levels, int(h.get("tokens", 0)), int(h.get("sentences", 0)),
                  dict(h.get("provenance", {})), text=_text_kind(h, name))


def ngram_to_parts(m: NGramModel) -> tuple[dict, dict[str, np.ndarray]]:
    header = {"order": m.order, "vocab": list(m.vocab), "method": m.method, "info": m.info,
              "scores_only": bool(m.scores_only), "sizes": m.sizes(), "provenance": _provenance(m)}
    arrays = {}
    for n in range(1, m.order + 1):
        arrays[f"ngrams_{n}"] = np.ascontiguousarray(m.ngrams[n - 1], dtype=np.int32)
        arrays[f"logprob_{n}"] = np.ascontiguousarray(m.logprob[n - 1], dtype=np.float32)
        arrays[f"backoff_{n}"] = np.ascontiguousarray(m.backoff[n - 1], dtype=np.float32)
    return header, arrays


def ngram_from_parts(h: dict, a: dict[str, np.ndarray], name: str) -> NGramModel:
    order = _order(h, name)
    try:
        ngrams = [a[f"ngrams_{n}"] for n in range(1, order + 1)]
        logprob = [a[f"logprob_{n}"] for n in range(1, order + 1)]
        backoff = [a[f"backoff_{n}"] for n in range(1, order + 1)]
    except KeyError as e:
        raise LmError(f"{name}: model file lacks array {e.args[0]}", "recreate it with lm-train") from None
    _check_shapes(ngrams, logprob, name)
    _check_shapes(ngrams, backoff, name)
    return NGramModel(vocab=list(h["vocab"]), ngrams=ngrams, logprob=logprob, backoff=backoff,
                      method=h.get("method", "?"), info=dict(h.get("info", {})),
                      provenance=dict(h.get("provenance", {})), scores_only=bool(h.get("scores_only", False)),
                      text=_text_kind(h, name))


def _text_kind(h: dict, name: str) -> dict | None:
    from lmtools.io.text import header_text_kind

    return header_text_kind(h, name)


def _order(h: dict, name: str) -> int:
    order = h.get("order")
    if not isinstance(order, int) or order < 1 or not isinstance(h.get("vocab"), list):
        raise LmError(f"{name}: corrupt model header (order/vocabulary)", "recreate the model")
    return order


def _check_shapes(ngrams, values, name):
    for n, (g, v) in enumerate(zip(ngrams, values), start=1):
        if g.ndim != 2 or g.shape[1] != n or v.shape[0] != g.shape[0]:
            raise LmError(f"{name}: corrupt model file (order {n} arrays disagree)", "recreate the model")


def save_model(obj, stream: BinaryIO) -> None:
    """Write a Counts, NGramModel or FFNNModel to a binary stream."""
    from lmtools.ngram.counting import Levels

    if isinstance(obj, (Counts, Levels)):
        kind, (header, arrays) = "counts", counts_to_parts(obj)
    elif isinstance(obj, NGramModel):
        kind, (header, arrays) = "ngram", ngram_to_parts(obj)
    elif hasattr(obj, "to_file_parts"):
        kind, (header, arrays) = "ffnn", obj.to_file_parts()
    else:
        raise TypeError(f"cannot save {type(obj).__name__}")
    text = getattr(obj, "text", None)
    if text is not None:  # how the text was read, for every consumer to apply (see header_text_kind)
        header["text"] = {"chars": bool(text["chars"]), "lower": bool(text["lower"])}
    write_model(stream, kind, header, arrays)


def model_from_parts(header: dict, arrays: dict, name: str, sort_counts: bool = True):
    kind = header["kind"]
    if kind == "counts":
        return counts_from_parts(header, arrays, name) if sort_counts else levels_from_parts(header, arrays, name)
    if kind == "ngram":
        return ngram_from_parts(header, arrays, name)
    from lmtools.nn.model import FFNNModel  # only FFNN users pay for importing it

    return FFNNModel.from_file_parts(header, arrays)


def load_levels(source: str = "-"):
    """Load a counts file without sorting it (for merging); refuses other kinds."""
    from lmtools.io.text import open_binary

    name = "<stdin>" if source == "-" else str(source)
    stream = open_binary(source)
    try:
        header, arrays = read_model(stream, name)
    finally:
        if source != "-":
            stream.close()
    if header["kind"] != "counts":
        raise LmError(f"{name} holds a model of kind {header['kind']}, not counts", "give files written by lm-count")
    return levels_from_parts(header, arrays, name)


def load_model(source: str | BinaryIO = "-", sort_counts: bool = True):
    """Load any model: an lmtools model file or an ARPA file (plain, .gz, .bz2, .xz), path or '-'.

    A counts file becomes ``Counts`` (sorted rows), or with ``sort_counts=False`` the ``Levels`` as
    stored (cheaper, for looking inside or merging)."""
    from lmtools.io.text import open_binary

    name = "<stdin>" if source == "-" else str(getattr(source, "name", source))
    stream = open_binary(source) if isinstance(source, str) else source
    try:
        head, whole = _peek(stream, 64)
        if head.lstrip()[:6] == b"\\data\\":
            from lmtools.io.arpa import read_arpa

            return read_arpa(whole, name=name)
        header, arrays = read_model(whole, name)  # refuses anything that is not a model file
        return model_from_parts(header, arrays, name, sort_counts)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _peek(stream, n: int) -> tuple[bytes, BinaryIO]:
    """The first n bytes of a stream (fewer at its end), and a stream that still starts with them."""
    head = b""
    while len(head) < n:
        part = stream.read(n - len(head))
        if not part:
            break
        head += part
    return head, io.BufferedReader(_Prefixed(head, stream), buffer_size=1 << 20)


class _Prefixed(io.RawIOBase):
    """Raw stream: some bytes already read, then the rest of the underlying stream."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read1(len(b)) if hasattr(self.rest, "read1") else self.rest.read(len(b))
        b[: len(data)] = data
        return len(data)
