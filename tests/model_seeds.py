"""Small real models of every kind, as file bytes: the seeds that the reader property tests and the
fuzz target (fuzz/fuzz_readers.py) mutate."""

from __future__ import annotations

import io
import tempfile

import numpy as np


def small_models(text: bytes, seed: int, dim: int, hidden: int) -> dict[str, bytes]:
    """{"counts", "ngram", "ffnn", "arpa"}: a 3-gram counts file and its KN model from ``text``, a random
    FFNN (context 2) over the same vocabulary, and the KN model as ARPA."""
    from lmtools.io.arpa import write_arpa
    from lmtools.io.models import save_model
    from lmtools.ngram.counting import count_text
    from lmtools.ngram.smoothing import smooth
    from lmtools.nn.model import FFNNModel

    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        f.write(text)
        f.flush()
        counts = count_text([f.name], 3)
    model = smooth(counts, "kn-modified", warn=lambda s: None)
    V = len(counts.vocab)
    rng = np.random.default_rng(seed)
    ffnn = FFNNModel(vocab=list(counts.vocab), context=2, E=rng.standard_normal((V, dim)).astype(np.float32),
                     W=rng.standard_normal((hidden, 2 * dim)).astype(np.float32), b=np.zeros(hidden, np.float32),
                     U=rng.standard_normal((V, hidden)).astype(np.float32), c=np.zeros(V, np.float32))
    out = {}
    for kind, obj in (("counts", counts), ("ngram", model), ("ffnn", ffnn)):
        buf = io.BytesIO()
        save_model(obj, buf)
        out[kind] = buf.getvalue()
    arpa = io.BytesIO()
    write_arpa(model, arpa)
    out["arpa"] = arpa.getvalue()
    return out
