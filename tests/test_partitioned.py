"""Estimation one partition at a time (lmtools.ngram.partitioned) gives smooth()'s model bit for bit:
every method, form and option, 1 to 7 partitions, random corpora, empty partitions, KenLM's
reference model; and its merges against plain sorting."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from lmtools.errors import LmError
from lmtools.ngram.counts import Counts
from lmtools.ngram.partition import partition_of_rows
from lmtools.ngram.partitioned import (
    combine, estimate_partition, estimate_partitioned, merge, merge_sorted, merge_streams, partition_index,
    partition_stats, plan, split_counts, sum_stats,
)
from lmtools.ngram.smoothing import smooth, truncate
from tests import naive

HERE = Path(__file__).parent
SHAKESPEARE = HERE.parent / "lmtools" / "data" / "tinyshakespeare.txt"
PTB = HERE.parent.parent / "shared" / "data" / "ptb"


def counts_of(sents: list[list[str]], order: int) -> Counts:
    """Counts by the plain counter (tests/naive.py), ids in order of first appearance."""
    tables = naive.count_ngrams(sents, order)
    vocab = ["<unk>", "<s>", "</s>"]
    idx = {w: i for i, w in enumerate(vocab)}
    for s in sents:
        for w in s:
            if w not in idx:
                idx[w] = len(vocab)
                vocab.append(w)
    ngrams, counts = [], []
    for n in range(1, order + 1):
        rows = sorted((tuple(idx[w] for w in g), c) for g, c in tables[n - 1].items())
        if n == 1:
            have = {r[0][0] for r in rows}
            rows = sorted(rows + [((i,), 0) for i in range(len(vocab)) if i not in have])
        ngrams.append(np.array([r for r, _ in rows], np.int32).reshape(len(rows), n))
        counts.append(np.array([c for _, c in rows], np.int64))
    return Counts(vocab=vocab, ngrams=ngrams, counts=counts, tokens=sum(len(s) + 1 for s in sents),
                  sentences=len(sents), text={"chars": False, "lower": False})


@pytest.fixture(scope="module")
def shakes():
    """The first 800 lines of Tiny Shakespeare, counted to order 5 by the plain counter."""
    lines = SHAKESPEARE.read_text(encoding="utf-8").split("\n")[:800]
    return counts_of(naive.sentences("\n".join(lines) + "\n"), 5)


def assert_same_model(got, want):
    assert got.vocab == want.vocab
    assert got.order == want.order
    for n in range(want.order):
        for name in ("ngrams", "logprob", "backoff"):
            a, b = getattr(got, name)[n], getattr(want, name)[n]
            assert a.dtype == b.dtype and a.shape == b.shape, (name, n + 1)
            assert np.array_equal(a, b), (name, n + 1)
    assert got.info == want.info
    assert (got.method, got.scores_only, got.provenance, got.text) == \
           (want.method, want.scores_only, want.provenance, want.text)


CASES = [
    dict(method="kn-modified"), dict(method="kn-modified", interpolate=False),
    dict(method="kn-modified", prune=[0, 1, 1]), dict(method="kn-modified", interpolate=False, prune=[0, 0, 1, 2]),
    dict(method="kn-modified", kenlm_compat=True), dict(method="kn-modified", kenlm_compat=True, prune=[0, 1]),
    dict(method="kn-modified", discount=[[0.5, 1, 1.5], None, [0.7]]),
    dict(method="kn"), dict(method="kn", interpolate=False, prune=[0, 1]), dict(method="kn", discount=[0.6]),
    dict(method="abs"), dict(method="abs", interpolate=False, prune=[0, 0, 1]),
    dict(method="wb"), dict(method="wb", interpolate=False), dict(method="wb", prune=[0, 1, 2]),
    dict(method="stupid"), dict(method="stupid", alpha=0.3, prune=[0, 1]),
    dict(method="add-k", k=0.1), dict(method="laplace"), dict(method="mle"),
    dict(method="katz"), dict(method="katz", prune=[0, 1]),
]


def _check_case(counts, case, order, parts_list):
    case = dict(case)
    if case.get("prune") and len(case["prune"]) > order:
        case["prune"] = case["prune"][:order]
    if case.get("discount") and len(case["discount"]) > order:
        case["discount"] = case["discount"][:order]
    want_warn, got_warn = [], []
    want = smooth(counts, order=order, warn=want_warn.append, **case)
    for parts in parts_list:
        got = estimate_partitioned(counts, parts=parts, order=order, warn=got_warn.append, **case)
        assert_same_model(got, want)
        assert got_warn == want_warn
        got_warn.clear()


@pytest.mark.parametrize("order", [2, 4])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_equals_smooth(shakes, case, order):
    """Every method, form and option: smooth()'s arrays and info exactly, and its warnings."""
    _check_case(shakes, case, order, (2, 7))


@pytest.mark.slow
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_equals_smooth_every_order(shakes, case, order):
    _check_case(shakes, case, order, (1, 2, 3, 7))


@pytest.mark.parametrize("order", [1, 3, 5])
def test_equals_smooth_default_method(shakes, order):
    """lm-train's default (kn-modified, interpolated, estimated discounts) at orders 1, 3, 5."""
    _check_case(shakes, {}, order, (1, 2, 3, 7))


def test_kenlm_compat_where_it_changes_the_discounts():
    """Random corpora where lmplz's counts of counts give other discounts than the adjusted counts
    (about 1 in 10; 4 of these 50): the partition holding the last N-gram in suffix order is found among the
    partitions' candidates and its suffixes' entries corrected, as smooth() does on the whole."""
    checked = 0
    for seed in range(50):
        rng = random.Random(seed)
        words = [f"w{i}" for i in range(rng.randint(5, 30))]
        sents = [[rng.choice(words) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(20, 200))]
        counts = counts_of(sents, 3)
        compat = smooth(counts, kenlm_compat=True, warn=lambda m: None)
        if compat.info["discounts"] == smooth(counts, warn=lambda m: None).info["discounts"]:
            continue
        checked += 1
        for parts in (2, 11):
            assert_same_model(estimate_partitioned(counts, parts=parts, kenlm_compat=True, warn=lambda m: None), compat)
        # pass 1 reduced as a tree of partial sums (as a cluster would), in shuffled order
        spec = plan("kn-modified", 3, kenlm_compat=True)
        uni, parts = split_counts(counts, 6)
        stats = [partition_stats(p, spec, uni.size) for p in parts]
        rng.shuffle(stats)
        glob = combine(uni, [sum_stats(stats[:2]), sum_stats([sum_stats(stats[2:5]), stats[5]])], spec, lambda m: None)
        assert_same_model(merge(uni, [estimate_partition(p, glob) for p in parts], glob), compat)
    assert checked >= 3


def test_stages_one_at_a_time_with_empty_partitions():
    """More partitions than next-to-last words: some partitions are empty, and the stages, run one
    partition at a time and in any order, give smooth()'s model."""
    sents = [s.split() for s in ["a b a b", "b a", "a a b", "b", "a b b a"]]
    counts = counts_of(sents, 3)
    spec = plan("kn-modified", 3)
    uni, parts = split_counts(counts, 16)
    sizes = [sum(g.shape[0] for g in p.ngrams) for p in parts]
    assert sizes.count(0) >= 10 and sum(sizes) == sum(counts.sizes()[1:])
    for p in parts:  # each is the filter of the sorted arrays by the partition of the rows
        for n in (2, 3):
            g = counts.ngrams[n - 1]
            mine = partition_of_rows(g, 16) == p.index
            assert np.array_equal(p.ngrams[n - 2], g[mine])
            assert np.array_equal(p.counts[n - 2], counts.counts[n - 1][mine])
    # a lower order than the counts': the partitions' orders 2..2
    spec2 = plan("kn-modified", 2)
    low = [p.upto(2) for p in parts]
    glob2 = combine(uni, [partition_stats(p, spec2, uni.size) for p in low], spec2, warn=lambda m: None)
    assert_same_model(merge(uni, [estimate_partition(p, glob2) for p in low], glob2),
                      smooth(counts, order=2, warn=lambda m: None))
    rng = random.Random(3)
    order = list(range(16))
    rng.shuffle(order)
    stats = [partition_stats(parts[i], spec, uni.size) for i in order]
    glob = combine(uni, stats, spec, warn=lambda m: None)
    rng.shuffle(order)
    results = [estimate_partition(parts[i], glob) for i in order]
    assert_same_model(merge(uni, results, glob), smooth(counts, warn=lambda m: None))


def test_count_shards_are_partitions(tmp_path, shakes):
    """A directory of count shards (lm-count --dask --shards) holds the partitions: each shard read
    back and estimated alone, in pass 1 and again in pass 2, gives smooth()'s model."""
    from lmtools.io.countshards import (
        META, meta_record, partition_file, read_meta, read_partition, write_meta, write_partition,
    )
    from lmtools.ngram.partitioned import Partition, Unigrams

    counts = truncate(shakes, 4)
    uni, parts = split_counts(counts, 5)
    sizes = []
    for p in parts:
        with open(tmp_path / partition_file(p.index), "wb") as f:
            sizes.append(write_partition(f, p.ngrams, p.counts))
    with open(tmp_path / META, "wb") as f:
        write_meta(f, meta_record(vocab=counts.vocab, unigrams=counts.counts[0], tokens=counts.tokens,
                                  sentences=counts.sentences, order=4, sizes=sizes, text=counts.text, provenance={}))
    meta = read_meta(str(tmp_path))
    shards = Unigrams(vocab=meta["vocab"], counts=np.array(meta["unigrams"], np.int64), order=meta["order"],
                      tokens=meta["tokens"], sentences=meta["sentences"], text=meta["text"])

    def load(p):
        return Partition(p, meta["partitions"], *read_partition(str(tmp_path), p, meta))

    spec = plan("kn-modified", 4, interpolate=False, prune=[0, 0, 1])
    glob = combine(shards, [partition_stats(load(p), spec, shards.size) for p in range(5)], spec, lambda m: None)
    model = merge(shards, [estimate_partition(load(p), glob) for p in range(5)], glob)
    assert_same_model(model, smooth(counts, interpolate=False, prune=[0, 0, 1], warn=lambda m: None))


@pytest.mark.parametrize("seed", range(40))
def test_random_corpora(seed):
    """Random small corpora (few words, so repeated n-grams and degenerate statistics), random
    method, options, order and number of partitions."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(rng.randint(1, 9))]
    sents = [[rng.choice(words) for _ in range(rng.randint(0, 8))] for _ in range(rng.randint(1, 25))]
    if not any(sents):
        sents.append([words[0]])
    order = rng.randint(1, 5)
    counts = counts_of(sents, order)
    case = dict(rng.choice(CASES))
    if case.get("prune"):
        case["prune"] = case["prune"][:order]
    if case.get("discount"):
        case["discount"] = case["discount"][:order]
    parts = rng.randint(1, 9)
    want_warn, got_warn = [], []
    try:
        want = smooth(counts, warn=want_warn.append, **case)
    except LmError as e:  # the same refusal (e.g. the counts hold no words to predict)
        with pytest.raises(LmError) as got:
            estimate_partitioned(counts, parts=parts, warn=got_warn.append, **case)
        assert got.value.message == e.message
        return
    assert_same_model(estimate_partitioned(counts, parts=parts, warn=got_warn.append, **case), want)
    assert got_warn == want_warn


def test_single_sentence_and_orders_one_and_two():
    counts = counts_of([["hello"]], 3)
    for order in (1, 2, 3):
        for method in ("kn-modified", "wb", "stupid", "katz"):
            want = smooth(counts, method, order=order, warn=lambda m: None)
            for parts in (1, 2, 3):
                assert_same_model(estimate_partitioned(counts, method, parts, order=order, warn=lambda m: None), want)


def test_closed_vocabulary(shakes):
    vocab = ["the", "king", "and", "zzz-never-seen", "of"]
    want = smooth(shakes, order=3, vocab=vocab)
    assert_same_model(estimate_partitioned(shakes, parts=3, order=3, vocab=vocab), want)


def test_same_errors(shakes):
    with pytest.raises(LmError, match="kenlm-compat applies to kn-modified only"):
        estimate_partitioned(shakes, "wb", 2, kenlm_compat=True)
    with pytest.raises(LmError, match="must not decrease"):
        estimate_partitioned(shakes, "kn", 2, prune=[0, 2, 1])
    with pytest.raises(LmError, match="number of partitions"):
        estimate_partitioned(shakes, "kn", 0)
    # a 3-gram whose last two words are no bigram: smooth's message, from the partition holding it
    bad = truncate(shakes, 3)
    g3 = bad.ngrams[2].copy()
    bigrams = {tuple(r) for r in bad.ngrams[1].tolist()}
    g3[5, 2] = next(w for w in range(3, len(bad.vocab)) if (int(g3[5, 1]), w) not in bigrams)
    order = np.lexsort(g3.T[::-1])
    bad = Counts(bad.vocab, bad.ngrams[:2] + [g3[order]], bad.counts[:2] + [bad.counts[2][order]], bad.tokens,
                 bad.sentences)
    with pytest.raises(LmError) as want:
        smooth(bad)
    with pytest.raises(LmError) as got:
        estimate_partitioned(bad, parts=3)
    assert got.value.message == want.value.message


@pytest.mark.parametrize("prune", [None, [0, 0, 1]])
def test_missing_prefix_is_reported_by_the_merge(shakes, prune):
    """A 3-gram whose first two words are no bigram (its prefix would live in another partition):
    smooth()'s message, from the merge."""
    counts = truncate(shakes, 3)
    bigrams = {tuple(r) for r in counts.ngrams[1].tolist()}
    g3, c3 = counts.ngrams[2].copy(), counts.counts[2].copy()
    i = int(np.flatnonzero(c3 >= 2)[0])  # kept under the cutoffs too
    g3[i, 0] = next(w for w in range(3, len(counts.vocab)) if (w, int(g3[i, 1])) not in bigrams)
    order = np.lexsort(g3.T[::-1])
    bad = Counts(counts.vocab, counts.ngrams[:2] + [g3[order]], counts.counts[:2] + [c3[order]], counts.tokens,
                 counts.sentences)
    with pytest.raises(LmError) as want:
        smooth(bad, prune=prune)
    with pytest.raises(LmError) as got:
        estimate_partitioned(bad, parts=4, prune=prune)
    assert "first 2 words are not a 2-gram" in got.value.message
    assert got.value.message == want.value.message


def _sorted_runs(rng: np.random.Generator, k: int, n: int, spread: int = 1, offset: int = 0):
    """k sorted runs of n-grams; ids ``offset + spread * (0..4)``: a large spread leaves the merge's
    packed keys room for fewer ids than a row has, so the rest are compared on a tie."""
    runs = []
    for _ in range(k):
        rows = np.unique(rng.integers(0, 5, (int(rng.integers(0, 40)), n)) * spread + offset, axis=0).astype(np.int32)
        runs.append((rows, rng.random(rows.shape[0]).astype(np.float32)))
    return runs


def _blocks(run, rng):
    """A run cut into blocks of random sizes (empty ones too)."""
    cuts = np.sort(rng.integers(0, run[0].shape[0] + 1, int(rng.integers(0, 5))))
    edges = [0, *cuts.tolist(), run[0].shape[0]]
    for a, b in zip(edges, edges[1:]):
        yield tuple(x[a:b] for x in run)


@pytest.mark.parametrize("seed", range(10))
def test_merges_against_sorting(seed):
    """merge_sorted and merge_streams (runs in blocks) give the rows in sorted() order, each with its
    payload, equal rows of different runs in run order."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    runs = _sorted_runs(rng, int(rng.integers(1, 7)), n, spread=[1, 1 << 18, 1 << 28][seed % 3], offset=-(seed % 2))
    want = sorted((tuple(r), i, float(v)) for i, (rows, vals) in enumerate(runs) for r, v in zip(rows.tolist(), vals))
    rows, vals = merge_sorted(runs)
    assert [tuple(r) for r in rows.tolist()] == [w[0] for w in want]
    assert vals.tolist() == [np.float32(w[2]) for w in want]
    blocks = list(merge_streams([_blocks(r, rng) for r in runs]))
    srows = np.concatenate([b[0] for b in blocks]) if blocks else np.zeros((0, n), np.int32)
    svals = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0, np.float32)
    assert np.array_equal(srows, rows.reshape(-1, n)) and np.array_equal(svals, vals)


def test_merge_of_many_runs():
    """Hundreds of runs (the heap of the k-way merge), equal rows across runs in run order."""
    rng = np.random.default_rng(7)
    runs = [(np.unique(rng.integers(0, 30, (int(rng.integers(0, 12)), 2)).astype(np.int32), axis=0),) for _ in range(300)]
    runs = [(r[0], np.full(r[0].shape[0], i, np.int64)) for i, r in enumerate(runs)]
    rows, src = merge_sorted(runs)
    want = sorted((tuple(r), i) for i, (g, _) in enumerate(runs) for r in g.tolist())
    assert [(tuple(r), int(i)) for r, i in zip(rows.tolist(), src)] == want
    blocks = list(merge_streams([_blocks(r, rng) for r in runs]))
    assert np.array_equal(np.concatenate([b[1] for b in blocks]), src)


def test_partition_index_matches_plain_lookup(shakes):
    uni, parts = split_counts(shakes, 3)
    for p in parts:
        ix = partition_index(p)
        for n in range(2, 6):
            g = p.ngrams[n - 2]
            if n > 2:
                where = {tuple(r): i for i, r in enumerate(p.ngrams[n - 3].tolist())}
                assert ix.suf[n].tolist() == [where[tuple(r[1:])] for r in g.tolist()]
            ctx = [tuple(r[:-1]) for r in g.tolist()]
            firsts = sorted(set(ctx))
            assert ix.group[n].tolist() == [firsts.index(c) for c in ctx]
            assert [ctx[i] for i in ix.first[n].tolist()] == firsts


def test_kenlm_reference_o3_through_partitions(kenlm_train_counts5, kenlm_train_kn3, kenlm_arpa3):
    """lmplz -o 3's whole ARPA (vendored) to 1.2e-6 through 3 partitions; smooth()'s model exactly."""
    from tests.test_smoothing import _compare_to_arpa

    model = estimate_partitioned(kenlm_train_counts5, parts=3, order=3, warn=lambda m: None)
    assert_same_model(model, kenlm_train_kn3)
    _compare_to_arpa(model, kenlm_arpa3, tol=1.2e-6)


@pytest.mark.slow
def test_kenlm_reference_o5_through_partitions(kenlm_train_counts5, kenlm_train_kn5):
    """lmplz -o 5's model (the vendored sample, to 1.2e-6) through 4 partitions, equal to smooth()'s,
    and with --kenlm-compat through 3."""
    from tests.conftest import KENLM_O5_SAMPLE, KENLM_O5_SAMPLE_BUCKETS
    from tests.test_smoothing import _compare_to_arpa_sample, _read_arpa_sample

    sizes, lines = _read_arpa_sample(KENLM_O5_SAMPLE)
    model = estimate_partitioned(kenlm_train_counts5, parts=4, warn=lambda m: None)
    assert_same_model(model, kenlm_train_kn5)
    _compare_to_arpa_sample(model, sizes, lines, KENLM_O5_SAMPLE_BUCKETS)
    compat = estimate_partitioned(kenlm_train_counts5, parts=3, kenlm_compat=True, warn=lambda m: None)
    _compare_to_arpa_sample(compat, sizes, lines, KENLM_O5_SAMPLE_BUCKETS)


@pytest.mark.slow
@pytest.mark.skipif(not (PTB / "train.txt").exists(),
                    reason="PTB absent: it lives in ../shared/data/ptb beside the checkout (CI has it)")
def test_ptb_5gram():
    """PTB train, 5-gram: the default method, the backoff form with cutoffs and --kenlm-compat, and
    Witten-Bell, at 4 and 16 partitions, equal to smooth()'s."""
    from lmtools.ngram.counting import count_text

    counts = count_text([str(PTB / "train.txt")], 5)
    for case in (dict(), dict(interpolate=False, prune=[0, 0, 1], kenlm_compat=True), dict(method="wb")):
        want = smooth(counts, warn=lambda m: None, **case)
        for parts in (4, 16):
            assert_same_model(estimate_partitioned(counts, parts=parts, warn=lambda m: None, **case), want)


def test_search_rows_in_threads_finds_the_same_rows(monkeypatch):
    """Queries taken in first-id order and cut into slices searched at once (each slice starts its own
    galloping): find_rows' rows, for sorted queries, suffixes of sorted rows, and ids out of range."""
    from lmtools.kernels.partitioned import find_rows, first_id_starts
    from lmtools.ngram import partitioned as PT

    rng = np.random.default_rng(7)
    table = np.unique(rng.integers(0, 40, size=(5000, 3)).astype(np.int32), axis=0)
    queries = np.concatenate([table[rng.integers(0, len(table), 3000)],
                              rng.integers(0, 45, size=(1000, 3)).astype(np.int32)])
    queries = np.ascontiguousarray(queries[np.lexsort(queries.T[::-1])])  # sorted
    longer = np.unique(np.concatenate([rng.integers(0, 45, size=(3000, 1)), table[rng.integers(0, len(table), 3000)]],
                                      axis=1).astype(np.int32), axis=0)
    suffixes = np.ascontiguousarray(longer[:, 1:])  # as a partition's suffix search: runs per first word
    odd = table[rng.integers(0, len(table), 500)]  # a third with a negative first id, a third past the table's
    odd[::3, 0] = rng.integers(-3, 0, size=len(odd[::3]))
    odd[1::3, 0] = rng.integers(40, 50, size=len(odd[1::3]))
    monkeypatch.setattr(PT, "SEARCH_SLICE_MIN", 100)
    for q in (queries, suffixes, odd):
        want = find_rows(q, table, first_id_starts(table))
        assert (want >= 0).sum() >= 100 and ((want < 0).any() or q is suffixes)
        for threads in (1, 2, 3, 7):
            assert np.array_equal(PT.search_rows(q, table, threads), want), threads
