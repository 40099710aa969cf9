"""The query structure stored in n-gram model files (lmtools-model(5), "The query structure"):
scores with stored tables are those with tables built at load, bit for bit; opening a model with
them builds nothing; stored tables that do not fit the model are rebuilt (another layout) or
refused with one line, never used."""

from __future__ import annotations

import io

import numpy as np
import pytest

from lmtools.constants import query_table_bases, query_table_bytes, query_table_slots
from lmtools.errors import LmError
from lmtools.io.modelfile import read_model
from lmtools.io.modelwrite import write_model
from lmtools.io.models import QUERY_ARRAYS, load_model, ngram_to_parts, save_model
from lmtools.ngram import model as M
from lmtools.ngram.model import QUERY_LAYOUT, NGramModel
from lmtools.ngram.query import QueryModel
from tests import naive_query as NQ
from tests.conftest import error_line, shakespeare_lines
from tests.inprocess import keep_signal_handlers  # noqa: F401 (in-process lm-train below)

LINES = shakespeare_lines()
TRAIN = "\n".join(LINES[:6000]) + "\n"
# held-out lines (unseen words and n-grams) and training lines (long matches); above the small-input
# threshold, so that line_scores takes the kernels' path as lm-ppl does
TEST = ("\n".join(LINES[-3000:] + LINES[100:400]) + "\n").encode()


def _roundtrip(model: NGramModel, query_tables: bool = True) -> NGramModel:
    buf = io.BytesIO()
    save_model(model, buf, query_tables)
    buf.seek(0)
    return load_model(buf)


def _rebuilt(model: NGramModel) -> NGramModel:
    """The same loaded model with its stored structure dropped: QueryModel builds it."""
    return NGramModel(model.vocab, model.ngrams, model.logprob, model.backoff, model.method, model.info,
                      model.provenance, model.scores_only, model.text)


def _same_scores(a: NGramModel, b: NGramModel, text: bytes = TEST) -> None:
    qa, qb = QueryModel(a, "a"), QueryModel(b, "b")
    la, lb = qa.line_scores(text, fast=True), qb.line_scores(text, fast=True)
    for f in ("lp", "lp_nz", "lp_iv", "tokens", "oovs", "zeros"):
        assert np.array_equal(getattr(la, f), getattr(lb, f)), f
    sa, sb = qa.score_text(text, fast=True), qb.score_text(text, fast=True)
    assert np.array_equal(sa.logp, sb.logp) and np.array_equal(sa.order, sb.order)
    assert np.array_equal(sa.ids, sb.ids) and np.array_equal(sa.oov, sb.oov)


@pytest.fixture(scope="module")
def counts5():
    from lmtools.ngram.counting import count_text

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "train.txt"
        p.write_text(TRAIN, encoding="utf-8")
        return count_text([str(p)], 5)


def _smooth(counts, method, order):
    from lmtools.ngram.smoothing import smooth

    return smooth(counts, method, order=order, warn=lambda m: None)


@pytest.mark.parametrize("method", ["kn-modified", "wb", "stupid"])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_stored_tables_score_as_built_ones(counts5, method, order):
    loaded = _roundtrip(_smooth(counts5, method, order))
    assert loaded.query is not None and loaded.query.layout == QUERY_LAYOUT
    qm = QueryModel(loaded, "stored")
    assert qm.stored is loaded.query  # used, not rebuilt
    _same_scores(loaded, _rebuilt(loaded))


def test_the_kernel_scores_agree_with_the_plain_scorer(counts5):
    # stored tables against the rule written out in Python (tests/naive_query.py)
    loaded = _roundtrip(_smooth(counts5, "kn-modified", 4))
    text = "\n".join(LINES[-40:]) + "\n"
    s = QueryModel(loaded).score_text(text.encode(), fast=True)
    table, order = NQ.tables_from_model(loaded)
    ref = []
    for line in text.split("\n")[:-1]:
        ref += [None] + NQ.score_line(table, order, line)
    assert len(ref) == s.ids.size
    for i, r in enumerate(ref):
        if r is not None:
            assert s.logp[i] == pytest.approx(r[1], abs=1e-9)
            assert s.order[i] == r[2]


def _holes_model() -> NGramModel:
    """A 4-gram model lacking suffixes ("b c" of "a b c", "b c" of "x a b c"), as some pruned
    ARPA files do: the stored tables need placeholders for them."""
    vocab = ["<unk>", "<s>", "</s>", "a", "b", "c", "x"]
    grams = {("<unk>",): (-2.0, 0.0), ("<s>",): (-99.0, -0.3), ("</s>",): (-1.0, 0.0), ("a",): (-1.1, -0.2),
             ("b",): (-1.2, -0.25), ("c",): (-1.3, -0.1), ("x",): (-1.4, -0.15),
             ("<s>", "x"): (-0.5, -0.05), ("x", "a"): (-0.4, -0.07), ("a", "b"): (-0.3, -0.11),
             ("x", "a", "b"): (-0.2, -0.13), ("a", "b", "c"): (-0.15, -0.02),
             ("x", "a", "b", "c"): (-0.05, 0.0)}
    index = {w: i for i, w in enumerate(vocab)}
    ngrams, lps, bos = [], [], []
    for n in range(1, 5):
        rows = sorted(tuple(index[w] for w in g) for g in grams if len(g) == n)
        ngrams.append(np.array(rows, np.int32).reshape(len(rows), n))
        lps.append(np.array([grams[tuple(vocab[i] for i in r)][0] for r in rows], np.float32))
        bos.append(np.array([grams[tuple(vocab[i] for i in r)][1] for r in rows], np.float32))
    return NGramModel(vocab=vocab, ngrams=ngrams, logprob=lps, backoff=bos, method="arpa")


def test_missing_suffixes_are_stored_with_their_placeholders():
    loaded = _roundtrip(_holes_model())
    q = loaded.query
    # placeholders: entries whose log10 p is nan ("b c" and its like), stored with the tables
    values = q.tab.reshape(-1, 2)[:, 1].copy().view(np.float32).reshape(-1, 2)
    used = q.tab.reshape(-1, 2)[:, 0] != 0
    assert np.isnan(values[used, 0]).sum() >= 1
    assert used.sum() > sum(loaded.sizes()[1:])
    text = b"x a b c\na b c\nb c x a b c </s>\nc c c\n\nzz a b c\n" * 2000
    _same_scores(loaded, _rebuilt(loaded), text)
    s = QueryModel(loaded).score_text(b"x a b c\n", fast=True)
    assert 4 in s.order.tolist()  # matched through the missing "b c"


@pytest.mark.slow
def test_a_pruned_model_read_from_arpa(counts5, tmp_path, prog):
    """lm-prune's model written as ARPA and read back by lm-train --from-arpa (suffixes missing),
    and lm-prune's own output: scores with stored tables equal rebuilt ones, in lm-ppl and lm-score."""
    from lmtools.io.arpa import write_arpa

    kn = _smooth(counts5, "kn-modified", 4)
    src = tmp_path / "kn4.lm"
    with open(src, "wb") as f:
        save_model(kn, f, query_tables=False)
    pruned = tmp_path / "pruned.lm"
    assert prog("lm-prune", src, "--threshold", "1e-6", "-o", pruned).returncode == 0
    assert load_model(str(pruned)).query is not None  # lm-prune writes them too
    arpa = tmp_path / "pruned.arpa"
    with open(arpa, "w", encoding="utf-8") as f:
        write_arpa(load_model(str(pruned)), f)
    with_t, without = tmp_path / "with.lm", tmp_path / "without.lm"
    assert prog("lm-train", "--from-arpa", arpa, "-o", with_t).returncode == 0
    assert prog("lm-train", "--from-arpa", arpa, "--no-query-tables", "-o", without).returncode == 0
    assert load_model(str(with_t)).query is not None and load_model(str(without)).query is None
    text = tmp_path / "test.txt"
    text.write_bytes(TEST)
    for p in ("lm-ppl", "lm-score"):
        outs = [prog(p, "-m", m, text) for m in (with_t, without, pruned)]
        assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
        assert outs[0].stdout == outs[1].stdout and outs[0].stdout
        if p == "lm-ppl":  # the same model, from its ARPA text: the same perplexity line
            assert outs[2].stdout.split(b"\n")[-2:] == outs[0].stdout.split(b"\n")[-2:]


def test_opening_builds_nothing(counts5, monkeypatch):
    loaded = _roundtrip(_smooth(counts5, "kn-modified", 3))
    from lmtools.kernels import query_tables as KQ

    def refuse(*a, **k):
        raise AssertionError("rebuilt")

    monkeypatch.setattr(KQ, "build_tables", refuse)
    monkeypatch.setattr(KQ, "build_word_table", refuse)
    qm = QueryModel(loaded)
    qm.line_scores(TEST, fast=True)
    qm.score_text(TEST, fast=True)
    assert qm.vocabulary._index is None  # no dict of the vocabulary on the fast path
    # the stored arrays are used as they are, read-only
    assert qm.tables()[0] is loaded.query.tab and not loaded.query.tab.flags.writeable
    with pytest.raises(AssertionError, match="rebuilt"):  # the check above is a real one
        QueryModel(_rebuilt(loaded)).tables()


def test_python_hashes_are_the_kernels(counts5):
    from lmtools.kernels.query_tables import ngram_keys
    from lmtools.kernels.tokenize import fnv1a

    kn = _smooth(counts5, "kn-modified", 4)
    for n in (2, 3, 4):
        rows = kn.ngrams[n - 1][:50]
        keys, suf, pre = (np.empty(len(rows), np.uint64) for _ in range(3))
        ngram_keys(np.ascontiguousarray(rows), np.uint64(0x5EED0000), keys, suf, pre)
        assert [M.ngram_key(r.tolist(), 0x5EED0000) for r in rows] == keys.tolist()
    for w in ("a", "<unk>", "thee", "héllo", "x" * 40):
        b = w.encode()
        assert M.word_hash(b) == int(fnv1a(np.frombuffer(b, np.uint8), 0, len(b)))


def _write_parts(path, model, change):
    header, arrays = ngram_to_parts(model)
    change(header, arrays)
    with open(path, "wb") as f:
        write_model(f, "ngram", header, arrays)


@pytest.mark.parametrize("what", ["base", "tab", "uni", "words", "pool", "foreign", "seed", "missing"])
def test_tables_that_do_not_fit_are_refused(counts5, tmp_path, prog, what):
    kn = _smooth(counts5, "kn-modified", 3)

    def change(h, a):
        if what == "base":
            a["query.base"] = a["query.base"] + 2
        elif what == "tab":
            a["query.tab"] = a["query.tab"][:-2]
        elif what == "uni":
            u = a["query.unigram_lp"].copy()
            u[5] -= 0.5
            a["query.unigram_lp"] = u
        elif what == "words":
            a["query.word_slots"] = np.roll(a["query.word_slots"], 1)
        elif what == "pool":
            p = a["query.word_pool"].copy()
            p[-1] ^= 1
            a["query.word_pool"] = p
        elif what == "foreign":  # tables of the same shape holding another model's values
            t = a["query.tab"].copy()
            t[1::2] = np.where(t[::2] != 0, np.float32(-0.5).view(np.uint32).astype(np.uint64) * 0x100000001, 0)
            a["query.tab"] = t
        elif what == "seed":  # the keys were made with another hash: nothing is found
            h["query"]["seed"] += 1
        else:
            del a["query.word_pool"]
    path = tmp_path / "bad.lm"
    _write_parts(path, kn, change)
    with pytest.raises(LmError, match="query"):
        QueryModel(load_model(str(path)), "bad")
    text = tmp_path / "t.txt"
    text.write_bytes(TEST[:2000])
    line = error_line(prog("lm-ppl", "-m", path, text), "lm-ppl", 1)
    assert "query" in line


@pytest.mark.slow
@pytest.mark.parametrize("other", ["layout 1", "a later one"])
def test_another_layout_is_rebuilt_with_a_note(counts5, tmp_path, prog, other):
    kn = _smooth(counts5, "kn-modified", 3)
    path = tmp_path / "old.lm"

    def change(h, a):
        if other == "layout 1":  # power-of-two tables: their sizes as query.log2s
            h["query"]["layout"] = 1
            slots = a.pop("query.slots")
            a["query.log2s"] = np.array([max(0, int(x).bit_length()) for x in slots], np.int64)
        else:
            h["query"]["layout"] = QUERY_LAYOUT + 1
        a["query.tab"] = a["query.tab"][::2].copy()  # whatever the other layout holds

    _write_parts(path, kn, change)
    good = tmp_path / "good.lm"
    with open(good, "wb") as f:
        save_model(kn, f)
    text = tmp_path / "t.txt"
    text.write_bytes(TEST)
    r_old, r_good = prog("lm-ppl", "-m", path, text), prog("lm-ppl", "-m", good, text)
    assert r_old.returncode == 0 and r_old.stdout == r_good.stdout
    note = r_old.stderr.decode().strip().splitlines()
    assert len(note) == 1 and "layout" in note[0] and "lm-train" in note[0]
    # rewriting it stores the current layout (and the note goes)
    new = tmp_path / "new.lm"
    assert prog("lm-train", path, "-o", new).returncode == 0
    assert load_model(str(new)).query.layout == QUERY_LAYOUT
    r_new = prog("lm-ppl", "-m", new, text)
    assert r_new.stdout == r_good.stdout and r_new.stderr == b""


def _order_keys(q, n: int, N: int) -> np.ndarray:
    """The keys of order n's table, entry by entry (0: empty)."""
    b, m = int(q.base[n]), int(q.slots[n])
    if n < N:
        return np.asarray(q.tab[2 * b: 2 * (b + m): 2])
    u = np.asarray(q.tab).view(np.uint32)[4 * b: 4 * b + 3 * m].reshape(m, 3).astype(np.uint64)
    return u[:, 0] | (u[:, 1] << np.uint64(32))


def _homes(keys: np.ndarray, m: int) -> np.ndarray:
    return (((keys >> np.uint64(32)) * np.uint64(m)) >> np.uint64(32)).astype(np.int64)


def test_table_sizes_follow_the_ngrams(counts5):
    kn = _smooth(counts5, "kn-modified", 5)
    q = _roundtrip(kn).query
    sizes = kn.sizes()
    N = len(sizes)
    assert q.slots.tolist() == [0, 0] + [query_table_slots(m) for m in sizes[1:]]
    assert q.base.tolist() == query_table_bases(q.slots.tolist())
    assert [int(q.base[n + 1] - q.base[n]) for n in range(2, N)] == q.slots.tolist()[2:N]  # 16-byte entries
    assert int(q.base[N + 1] - q.base[N]) * 4 == -(-int(q.slots[N]) * 3 // 4) * 4  # 12-byte entries
    assert q.tab.nbytes == query_table_bytes(sizes) < 16 * 1.2 * sum(sizes[1:])
    # every n-gram is one entry, the rest are empty
    assert [int(np.count_nonzero(_order_keys(q, n, N))) for n in range(2, N + 1)] == sizes[1:]


def test_tables_are_in_key_order_along_each_run(counts5):
    """Robin Hood order (kernels/query.py): every key lies at or after its home entry with no empty
    entry between, and keys increase along each run but where it wraps past the table's end."""
    kn = _smooth(counts5, "kn-modified", 5)
    q = _roundtrip(kn).query
    N = kn.order
    for n in range(2, N + 1):
        keys, m = _order_keys(q, n, N), int(q.slots[n])
        used = np.flatnonzero(keys)
        homes = _homes(keys[used], m)
        wrapped = homes > used
        assert keys[0] == 0 or keys[-1] != 0  # a run can only wrap from the end
        # no gap between a key's home and its entry
        empty = np.flatnonzero(keys == 0)
        gap_after_home = np.searchsorted(empty, homes, side="left")
        first_empty_after = np.where(gap_after_home < empty.size, empty[np.minimum(gap_after_home, empty.size - 1)], m)
        assert np.all(wrapped | (first_empty_after > used))
        # ordered: neighbours in a run rise, unless the first has wrapped and the second has not
        pairs = used[:-1][np.diff(used) == 1]
        rise = keys[pairs] < keys[pairs + 1]
        wrap_edge = _homes(keys[pairs], m) > pairs
        assert np.all(rise | wrap_edge)


def test_probes_of_a_full_table_wrap_and_stop(tmp_path):
    """The kernels' insert and lookups, the Python and numpy ones, on a table 19/20 full whose keys
    crowd its end (runs wrap): the same table whatever order the keys come in; every key found where
    it is, absent keys not found."""
    from lmtools.kernels.query import find_entry, find_top
    from lmtools.kernels.query_tables import STRIDE, STRIDE_TOP, insert_entry
    from lmtools.ngram import query_numpy

    rng = np.random.default_rng(7)
    m = 200
    keys = np.unique(np.concatenate([rng.integers(1, 2**63, 120, dtype=np.uint64) * np.uint64(2) | np.uint64(1),
                                     np.uint64(2**64 - 2**56) + rng.integers(0, 2**55, 70, dtype=np.uint64) | np.uint64(1)]))
    absent = rng.integers(1, 2**63, 300, dtype=np.uint64) * np.uint64(2) | np.uint64(1)
    absent = np.setdiff1d(np.concatenate([absent, keys + np.uint64(2), keys - np.uint64(2)]), keys)
    for top in (False, True):
        tables = []
        for order in (keys, keys[::-1], rng.permutation(keys)):
            tab = np.zeros(2 * m, np.uint64)
            for k in order:
                i, found = insert_entry(tab.view(np.uint32), 0, STRIDE_TOP if top else STRIDE, m, k)
                assert not found
            tables.append(tab)
        assert all(np.array_equal(tables[0], t) for t in tables[1:])
        tab = tables[0]
        u = tab.view(np.uint32)
        stored = (u[0:3 * m].reshape(m, 3)[:, 0].astype(np.uint64) | u[0:3 * m].reshape(m, 3)[:, 1].astype(np.uint64) << np.uint64(32)
                  if top else tab[::2])
        assert stored[0] != 0 and stored[-1] != 0  # a run wraps
        find = find_top if top else find_entry
        for k in keys:
            i = find(u if top else tab, 0, m, k)
            assert stored[i] == k
            assert M.probe_words(memoryview(u), 0, m, int(k), top) == (3 * i if top else 4 * i) + 2
        assert (query_numpy._probe(u, 0, m, keys, top) == [(3 if top else 4) * find(u if top else tab, 0, m, k) + 2
                                                             for k in keys]).all()
        for k in absent:
            assert find(u if top else tab, 0, m, k) == -1
            assert M.probe_words(memoryview(u), 0, m, int(k), top) == -1
        assert (query_numpy._probe(u, 0, m, absent, top) == -1).all()


def test_an_order_too_big_for_a_table_is_one_line(counts5, tmp_path, prog, monkeypatch):
    import lmtools.kernels.query_tables as KQ

    kn = _smooth(counts5, "kn-modified", 3)
    monkeypatch.setattr(KQ, "MAX_QUERY_SLOTS", 1000)
    with pytest.raises(LmError, match="more n-grams than a query table holds"):
        save_model(kn, io.BytesIO())
    with pytest.raises(LmError, match="more n-grams than a query table holds"):
        QueryModel(_rebuilt(_roundtrip(kn, query_tables=False)), "big").line_scores(TEST, fast=True)


def test_rewriting_a_model_keeps_its_tables(counts5, monkeypatch):
    loaded = _roundtrip(_smooth(counts5, "kn-modified", 3))
    from lmtools.kernels import query_tables as KQ

    monkeypatch.setattr(KQ, "build_tables", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt")))
    again = _roundtrip(loaded)  # the arrays it was read with: reused, not built
    for k in M.QueryTables.ARRAYS:
        assert np.array_equal(getattr(again.query, k), getattr(loaded.query, k)), k
    loaded.ngrams = list(loaded.ngrams)  # other arrays (a changed model): built again
    loaded.ngrams[2] = loaded.ngrams[2][:-1]
    loaded.logprob = [*loaded.logprob[:2], loaded.logprob[2][:-1]]
    loaded.backoff = [*loaded.backoff[:2], loaded.backoff[2][:-1]]
    with pytest.raises(AssertionError, match="rebuilt"):
        _roundtrip(loaded)


@pytest.mark.slow
def test_no_query_tables_and_lm_info(counts5, tmp_path, prog):
    kn = _smooth(counts5, "kn-modified", 3)
    src = tmp_path / "c.lm"
    with open(src, "wb") as f:
        save_model(counts5, f)
    a, b = tmp_path / "a.lm", tmp_path / "b.lm"
    assert prog("lm-train", "-q", "-n", "3", src, "-o", a).returncode == 0
    assert prog("lm-train", "-q", "-n", "3", "--no-query-tables", src, "-o", b).returncode == 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        ha, hb = read_model(fa)[0], read_model(fb)[0]
    assert set(QUERY_ARRAYS) <= set(ha["arrays"]) and not set(QUERY_ARRAYS) & set(hb["arrays"])
    assert "query" in ha and "query" not in hb
    q = load_model(str(a)).query
    assert a.stat().st_size - b.stat().st_size >= q.nbytes()
    ia = dict(l.split("\t", 1) for l in prog("lm-info", a).stdout.decode().splitlines())
    ib = dict(l.split("\t", 1) for l in prog("lm-info", b).stdout.decode().splitlines())
    assert ia["query_tables"] == "true" and ib["query_tables"] == "false"
    assert int(ia["query_bytes"]) == q.nbytes() and ia["query_layout"] == str(QUERY_LAYOUT)
    assert "query_bytes" not in ib
    error_line(prog("lm-train", "--no-query-tables", "--arpa", src), "lm-train", 2)
    assert kn.query is None  # a model estimated here has none until it is written


def test_a_mapped_model_is_scored_from_the_file(counts5, tmp_path):
    """Loaded by path (mapped where the format allows): the stored arrays are read-only and scored
    as they are; the result equals the streamed load's."""
    kn = _smooth(counts5, "kn-modified", 4)
    path = tmp_path / "kn4.lm"
    with open(path, "wb") as f:
        save_model(kn, f)
    by_path = load_model(str(path))
    with open(path, "rb") as f:
        streamed = load_model(f)
    for k in M.QueryTables.ARRAYS:
        assert not getattr(by_path.query, k).flags.writeable, k
    _same_scores(by_path, streamed)
    _same_scores(by_path, _rebuilt(streamed))


def test_the_verify_hook_runs_once_before_first_use(counts5):
    """A mapped file's reader may leave the tables' checksums for their first use (QueryTables.verify):
    it runs once, before any stored array is scored with, and its error stops the scoring."""
    loaded = _roundtrip(_smooth(counts5, "kn-modified", 3))
    calls = []
    loaded.query.verify = lambda: calls.append(1)
    qm = QueryModel(loaded)
    assert calls == []
    qm.line_scores(b"a b\n", fast=False)  # a few lines: the stored tables walked from Python
    assert calls == [1]
    qm.line_scores(TEST, fast=True)
    qm.score_text(TEST, fast=True)
    assert calls == [1]

    def damaged():
        raise LmError("model.lm: model file is corrupt (checksum of array 'query.tab' does not match)", "recreate it")

    again = _roundtrip(_smooth(counts5, "kn-modified", 3))
    again.query.verify = damaged
    with pytest.raises(LmError, match="query.tab"):
        QueryModel(again).line_scores(TEST, fast=True)
    with pytest.raises(LmError, match="query.tab"):
        QueryModel(again).line_scores(b"a b\n", fast=False)


def _growing_model() -> NGramModel:
    """A trigram model whose trigrams' suffixes are nearly all missing (one bigram for hundreds of
    trigrams): the placeholders outgrow the bigram table, which is grown several times."""
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(40)]
    vocab = ["<unk>", "<s>", "</s>"] + words
    V = len(vocab)
    tri = sorted({(int(a), int(b), int(c)) for a, b, c in rng.integers(3, V, size=(600, 3))})
    ngrams = [np.arange(V, dtype=np.int32).reshape(V, 1), np.array([[1, 3]], np.int32), np.array(tri, np.int32)]
    lps = [rng.uniform(-3, -0.5, V).astype(np.float32), np.array([-0.7], np.float32),
           rng.uniform(-2, -0.1, len(tri)).astype(np.float32)]
    bos = [rng.uniform(-1, 0, V).astype(np.float32), np.array([-0.2], np.float32), np.zeros(len(tri), np.float32)]
    return NGramModel(vocab=vocab, ngrams=ngrams, logprob=lps, backoff=bos, method="arpa")


@pytest.mark.parametrize("which", ["kn3", "stupid2", "holes", "growing", "unigram"])
def test_the_python_builder_builds_the_kernels_arrays(counts5, which, monkeypatch):
    """Small models are given their structure in plain Python (no numba to write a tiny model): the
    same arrays, byte for byte, as the kernels build (placeholders and growth included)."""
    from lmtools.kernels.query_tables import build_tables, build_word_table

    model = {"kn3": lambda: _smooth(counts5, "kn-modified", 3), "stupid2": lambda: _smooth(counts5, "stupid", 2),
             "holes": _holes_model, "growing": _growing_model, "unigram": lambda: _smooth(counts5, "wb", 1)}[which]()
    uni_lp, _ = M.unigram_arrays(model)
    a = M.build_tables_python(model.ngrams, model.logprob, model.backoff, uni_lp)
    b = build_tables(model.ngrams, model.logprob, model.backoff, uni_lp)
    assert a[3:] == b[3:]  # seed, closed
    for x, y in zip(a[:3], b[:3]):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    if which == "growing":
        assert a[2][2] >= 4 * query_table_slots(1)  # the bigram table was grown (twice at least)
    for x, y in zip(M.build_word_table_python(list(model.vocab)), build_word_table(list(model.vocab))):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    # a small model written by lm-train gets the Python-built structure: scores as the rebuilt one
    monkeypatch.setattr(M, "SMALL_BUILD", 10**9)
    loaded = _roundtrip(model)
    text = b"w1 w2 w3 w4\nw5 w1 w1 w2 a b c x\n" * 3000 if which in ("growing", "holes") else TEST
    _same_scores(loaded, _rebuilt(loaded), text)


@pytest.mark.slow
def test_a_damaged_mapped_table_is_found_by_verify(counts5, tmp_path, prog):
    """A mapped file's hash table (query.tab) is only probed, not checked at every start (its cost
    grows with the model): a flipped byte in it runs without a wild read, and LMTOOLS_VERIFY=1 and
    lm-info --verify find it (one line)."""
    kn = _smooth(counts5, "kn-modified", 4)
    path = tmp_path / "kn4.lm"
    with open(path, "wb") as f:
        save_model(kn, f)
    with open(path, "rb") as f:
        a = read_model(f)[1]
    assert a["query.tab"].nbytes > (1 << 20)  # above what is checked at open
    data = bytearray(path.read_bytes())
    tab = a["query.tab"]
    e = int(np.flatnonzero(tab[::2])[len(np.flatnonzero(tab[::2])) // 2])  # a used entry's value
    needle = tab[2 * e: 2 * e + 2].tobytes()
    at = data.find(needle)
    assert at > 0
    data[at + 9] ^= 0x40  # its log10 p
    path.write_bytes(bytes(data))
    text = tmp_path / "t.txt"
    text.write_bytes(TEST)
    assert prog("lm-ppl", "-m", path, text).returncode == 0  # probes stay inside the table
    line = error_line(prog("lm-ppl", "-m", path, text, env={"LMTOOLS_VERIFY": "1"}), "lm-ppl", 1)
    assert "query.tab" in line
    assert "query.tab" in error_line(prog("lm-info", "--verify", path), "lm-info", 1)


@pytest.mark.parametrize("method, order, prune", [("kn-modified", 5, None), ("kn-modified", 3, None),
                                                   ("wb", 4, None), ("stupid", 2, None), ("kn-modified", 3, [0, 1, 1])])
def test_tables_laid_out_beside_the_estimation_are_the_built_ones(counts5, method, order, prune):
    """lm-train lays out the query tables while the model is estimated (PendingTables): the arrays,
    seed and flags build_query_tables makes, byte for byte; none for a model whose n-grams are not
    the counts' (pruned), which then gets its tables built as before."""
    from lmtools.ngram.smoothing import smooth

    pending = M.PendingTables(counts5.ngrams[:order], counts5.vocab)
    model = smooth(counts5, method, order=order, prune=prune, warn=lambda m: None)
    got = pending.result(model)
    if prune is not None:
        assert got is None
        return
    want = M.build_query_tables(model)
    assert (got.layout, got.seed, got.closed) == (want.layout, want.seed, want.closed)
    for name in want.ARRAYS:
        x, y = getattr(got, name), getattr(want, name)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
    assert got.source == M.model_arrays(model)  # saving the model writes these: nothing is rebuilt


def test_no_tables_laid_out_for_placeholders_or_another_model(counts5):
    """A model missing suffixes needs placeholders, which only build_query_tables adds; a model of
    other n-grams (another order here) cannot use tables laid out for these: neither gets a layout."""
    model = _holes_model()
    assert M.PendingTables(model.ngrams, model.vocab).result(model) is None
    assert M.PendingTables(counts5.ngrams[:3], counts5.vocab).result(_smooth(counts5, "wb", 2)) is None


def test_lm_train_writes_the_same_file_with_tables_laid_out_early(counts5, tmp_path, monkeypatch):
    """The model file lm-train writes is the same whether the tables were laid out beside the
    estimation or built after it."""
    from lmtools.cli import train
    from tests.inprocess import invoke, ok

    counts = tmp_path / "c5.lm"
    with open(counts, "wb") as f:
        save_model(counts5, f)
    early = []
    real = train._lay_out_query_tables
    monkeypatch.setattr(train, "_lay_out_query_tables", lambda *a: early.append(real(*a)) or early[-1])
    ok(invoke("lm-train", "-q", "-o", tmp_path / "early.lm", counts))
    assert early and early[0] is not None
    monkeypatch.setattr(train, "_lay_out_query_tables", lambda *a: None)
    ok(invoke("lm-train", "-q", "-o", tmp_path / "late.lm", counts))
    assert (tmp_path / "early.lm").read_bytes() == (tmp_path / "late.lm").read_bytes()


def test_tables_are_laid_out_early_only_within_the_memory_budget(counts5):
    """With -S, the tables are laid out beside the estimation only where the budget holds the
    estimation and the tables at once; else they are built after it (as before)."""
    from lmtools.bounded import BYTES_PER_NGRAM
    from lmtools.cli.train import _lay_out_query_tables

    sizes = counts5.sizes()
    need = BYTES_PER_NGRAM * sum(sizes) + query_table_bytes(sizes)
    for budget, laid_out in ((None, True), (need, True), (need - 1, False)):
        pending = _lay_out_query_tables(counts5, None, budget)
        assert (pending is not None) == laid_out, budget
        if pending is not None:
            pending.result(_smooth(counts5, "kn-modified", None))  # (joins its thread)
    assert _lay_out_query_tables(counts5, 1, None) is None  # unigrams only: no tables
