"""The stored query tables probed with numpy (ngram/query_numpy.py score_tables_numpy): what lm-ppl and
lm-score use for texts up to SMALL_STORED_BYTES with a model file that has its tables, so that
opening a big model and scoring a test set never loads numba. The numbers must be the kernel's
(kernels/query.score_ids) bit for bit: per token, per line and in total."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

from lmtools.io.models import load_model, save_model
from lmtools.ngram import query as Q
from lmtools.ngram import query_numpy as QN
from lmtools.ngram.query import QueryModel
from tests.test_query_tables import TEST, _holes_model, _smooth, counts5  # noqa: F401 (fixture)


def _roundtrip(model):
    buf = io.BytesIO()
    save_model(model, buf, True)
    buf.seek(0)
    return load_model(buf)


def _same(a, b):
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def _variants(ids: np.ndarray):
    """The stream as it is, with every sentence after the first started without context (NO_CONTEXT),
    and cut in the middle of a sentence's context (a stream may start with NO_CONTEXT)."""
    yield ids
    nc = ids.copy()
    nc[1:][nc[1:] == Q.BOS_ID] = Q.NO_CONTEXT
    yield nc
    yield np.concatenate([[Q.NO_CONTEXT], ids[5:]]).astype(np.int32)


@pytest.mark.parametrize("method,order", [("kn-modified", 5), ("kn-modified", 2), ("wb", 3), ("stupid", 4),
                                          ("kn-modified", 1)])
def test_numpy_probes_give_the_kernels_numbers(counts5, method, order):  # noqa: F811
    qm = QueryModel(_roundtrip(_smooth(counts5, method, order)))
    assert qm.stored is not None
    ids = qm.vocabulary.encode(TEST, False).ids
    for v in _variants(ids):
        _same(QN.score_tables_numpy(qm, v), qm.score_ids(v, fast=True))


def test_without_the_prefix_closed_stop(counts5):  # noqa: F811
    # a model whose tables do not say prefix-closed: every order is walked up to the context
    qm = QueryModel(_roundtrip(_smooth(counts5, "kn-modified", 4)))
    t = qm.tables()
    qm._tables = t[:6] + (False,)
    ids = qm.vocabulary.encode(TEST, False).ids
    for v in _variants(ids):
        _same(QN.score_tables_numpy(qm, v), qm.score_ids(v, fast=True))


def test_placeholders_of_missing_suffixes():
    qm = QueryModel(_roundtrip(_holes_model()))
    text = b"x a b c\na b c\nb c x a b c </s>\nc c c\n\nzz a b c\n" * 500
    ids = qm.vocabulary.encode(text, False).ids
    got = QN.score_tables_numpy(qm, ids)
    _same(got, qm.score_ids(ids, fast=True))
    assert 4 in got[1].tolist()  # matched through the missing "b c"


def test_line_scores_without_numba_are_the_kernels(counts5):  # noqa: F811
    qm = QueryModel(_roundtrip(_smooth(counts5, "kn-modified", 5)))
    assert len(TEST) <= Q.SMALL_STORED_BYTES and not qm.use_fast(len(TEST))
    slow = QueryModel(qm.model).line_scores(TEST, fast=False)
    fast = qm.line_scores(TEST, fast=True)
    for f in ("lp", "lp_nz", "lp_iv", "tokens", "oovs", "zeros"):
        assert np.array_equal(getattr(slow, f), getattr(fast, f)), f
    assert fast.oovs.sum() > 0  # held-out lines: OOVs counted on both paths


def test_a_stored_model_scores_a_test_set_without_numba(counts5, tmp_path):  # noqa: F811
    model = tmp_path / "m.lm"
    with open(model, "wb") as f:
        save_model(_smooth(counts5, "kn-modified", 4), f, True)
    text = tmp_path / "t.txt"
    text.write_bytes(TEST * 4)  # well above the kernels' threshold without stored tables
    assert Q.SMALL_TOTAL_BYTES < len(TEST) * 4 <= Q.SMALL_STORED_BYTES
    code = ("import sys; from lmtools.kinds import load_scorer;"
            f"s = load_scorer([{str(model)!r}], [], warn=print);"
            f"ls = s.line_scores(open({str(text)!r}, 'rb').read());"
            "print(int(ls.tokens.sum()), repr(float(ls.lp.sum())), 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    ref = QueryModel(load_model(str(model))).line_scores(TEST * 4, fast=True)
    assert out == [str(int(ref.tokens.sum())), repr(float(ref.lp.sum())), "False"]
