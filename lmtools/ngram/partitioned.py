"""Estimation one partition at a time: the same NGramModel as ``smoothing.smooth``, bit for bit.

The n-grams of orders >= 2 are split by a hash of their next-to-last word (``lmtools.ngram.partition``).
A context group (every h w of one h) shares h's last word, and every suffix of order >= 2 of h w has
the same next-to-last word as h w, so within one partition lie: the adjusted counts of its orders
>= 2 (distinct left extensions: the order n+1 rows whose suffix is the row), the context sums, the
gammas, and the interpolation with the lower order (p of the suffix; for bigrams, the unigram p,
which every partition is given). What is global is small: the unigrams (vocabulary-sized; their
adjusted count is a sum over partitions of per-partition bincounts) and the counts of counts per
order (sums), hence the discounts. The backoff weight of an n-gram g is the gamma of g as a context,
computed in the partition of g's last word, while g's row lives in the partition of its
next-to-last word: each partition emits (context rows, log10 backoff) and the merge joins them
onto the rows.

Stages (pure: arrays in, arrays out; the caller decides where partitions live, in memory or on disk,
in one process or on a cluster):

    spec = plan(method, N, ...)                          options checked, before any data
    uni, parts = split_counts(counts, P)                 or partitions built elsewhere (a count shard)
    stats = [partition_stats(p, spec, uni.size) ...]     pass 1: sums over partitions (small)
    glob = combine(uni, stats, spec, warn)               discounts, unigram p, info
    results = [estimate_partition(p, glob) ...]          pass 2: log10 p and backoffs of a partition
    model = merge(uni, results, glob)                    rows in order, backoffs joined

``merge`` calls ``merge_order`` for n = 2..N, which needs only order n's results and the merged
order n-1, so a driver with results on disk can merge one order at a time (``model_info`` and
``model_provenance`` give the rest of the model). A pass may rebuild a partition's index
(``partition_index``) or be handed the one built for the other pass. ``estimate_partitioned`` runs
every stage in memory. ``merge_sorted`` and ``merge_streams`` are k-way merges of sorted runs of
rows with payloads (in memory, or as iterators of blocks) for a driver that merges rows from disk.
A partition may come from anywhere (a count shard: ``io.countshards.read_partition``) as long as
every n-gram of one next-to-last word is in the same partition.

Equality with ``smooth`` holds because each partition's arrays are its part of the whole order in
the same element order, and every float reduction over a context (np.bincount) adds the context's
n-grams in that order; the formulas themselves are shared with ``smoothing_methods`` and
``smoothing_stages`` (``discounted_groups``, ``order_probs``...), not copied.

Every method of ``smooth`` partitions: kn-modified (interpolated or backoff form, user discounts,
``kenlm_compat``: the last N-gram in suffix order is picked among the partitions' candidates and its
suffixes' counts-of-counts entries are corrected in ``combine``), kn, abs, wb, stupid, add-k /
laplace, mle and katz (Good-Turing counts of counts are sums; its per-order number of enlarged
contexts is summed in ``merge``). Count cutoffs (``prune``) act per n-gram and per context, as in
``assemble``. What ``smooth`` checks that a partition cannot: that every n-gram's prefix is an
n-gram (the prefix lives in another partition) is checked in ``merge_order`` (with count cutoffs:
for the kept n-grams); ``check_memory`` (the whole estimation's memory) is not applied: bounding
it is the point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.counts import Counts
from lmtools.ngram.model import NGramModel
from lmtools.ngram.partition import partition_of_rows
from lmtools.ngram.smoothing_methods import (
    KATZ_K, add_k_groups, good_turing_of, katz_denominators, katz_discounted, katz_groups,
    mkn_order_discounts, relative_frequency_groups, single_discount, witten_bell_groups,
)
from lmtools.ngram.smoothing_stages import (
    STUPID_ALPHA, Order, check_nonempty, discounted_groups, discounted_order, form_of, log10_probs, order_probs, per_order,
)
from lmtools.vocab import BOS_ID

# counts of counts kept per order: n_0..n_KMAX and one bin for all above (modified KN reads n_1..n_4,
# Kneser-Ney and absolute discounting n_1, n_2, Katz n_1..n_{K+1})
KMAX = 8
ADJUSTED = ("kn-modified", "kn")  # methods whose statistics are over adjusted counts
RAW_NK = ("abs", "katz")  # methods whose statistics are counts of raw counts


# ----------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Spec:
    """What to estimate (from ``plan``): the canonical method and its options, expanded per order."""

    method: str  # canonical name (add-k given as laplace stays "laplace")
    order: int
    form: str  # interpolated, backoff or stupid
    discounts: tuple  # per order 1..N: the user's value or None
    thresholds: tuple | None  # count cutoffs per order 1..N (None: no pruning)
    prune: tuple | None  # the cutoffs as given (recorded in the model's info)
    k: float
    alpha: float
    kenlm_compat: bool


@dataclass
class Unigrams:
    """The global part of the counts: the vocabulary and the unigram counts (every id, in order)."""

    vocab: list[str]
    counts: np.ndarray  # int64 (V,)
    order: int  # N, the order of the counts being estimated
    tokens: int = 0
    sentences: int = 0
    provenance: dict = field(default_factory=dict)
    text: dict | None = None

    @property
    def size(self) -> int:
        return int(self.counts.shape[0])


@dataclass
class Partition:
    """The n-grams of orders 2..N whose next-to-last word falls in partition ``index`` of ``parts``:
    ``ngrams[n-2]`` (m_n, n) int32 sorted lexicographically, ``counts[n-2]`` int64 raw counts."""

    index: int
    parts: int
    ngrams: list[np.ndarray]
    counts: list[np.ndarray]

    @property
    def order(self) -> int:
        return len(self.ngrams) + 1

    def nbytes(self) -> int:
        return sum(int(g.nbytes) + int(c.nbytes) for g, c in zip(self.ngrams, self.counts))

    def upto(self, order: int) -> "Partition":
        """The partition's orders 2..order (a model of a lower order than the counts')."""
        return Partition(self.index, self.parts, self.ngrams[: order - 1], self.counts[: order - 1])


@dataclass
class PartitionIndex:
    """Per order n >= 2 of a partition: ``group[n]`` numbers each row's context among the partition's
    contexts (rows are sorted, so a context's rows are contiguous), ``first[n]`` the first row of each
    context, ``suf[n]`` the row of the suffix (the word id for bigrams; else a row of order n-1 of the
    same partition)."""

    group: dict
    first: dict
    suf: dict


@dataclass
class PartitionStats:
    """Pass 1 of a partition: what is summed over partitions."""

    extensions: np.ndarray | None = None  # int64 (V,): distinct left extensions of each word (bigrams ending in it)
    nk: list = field(default_factory=list)  # per order 2..N: int64 (KMAX+2,) counts of counts (last bin: above)
    last: np.ndarray | None = None  # kenlm_compat: this partition's last N-gram in suffix order
    last_counts: list = field(default_factory=list)  # its suffixes of orders 2..N-1: (adjusted, raw)


@dataclass
class Globals:
    """What every partition's pass 2 needs (from ``combine``), and the model's unigram level."""

    spec: Spec
    vocab_size: int
    p1: np.ndarray  # float64 (V,) unigram probabilities (<s>: 1)
    logprob1: np.ndarray  # float32 (V,)
    params: list  # per order 1..N: D array (discounting methods), (d, K) for katz, None otherwise
    info: dict
    enlarged1: int = 0  # katz: 1 when the unigram denominator was enlarged


@dataclass
class OrderResult:
    """One order n >= 2 of one partition after pass 2."""

    ngrams: np.ndarray  # (m, n) int32 kept rows, sorted (so each context's rows are contiguous)
    logprob: np.ndarray  # float32
    contexts: np.ndarray  # (c, n-1) int32 the contexts of the partition's rows (before pruning), sorted
    kept: np.ndarray  # int64 (c,) rows of each context kept (not pruned)
    ctx_backoff: np.ndarray | None  # float32 log10 backoff of each context (None: stupid backoff's constant)


@dataclass
class PartitionResult:
    index: int
    orders: list[OrderResult]  # orders 2..N
    enlarged: list = field(default_factory=list)  # katz: enlarged contexts per order 2..N


# ----------------------------------------------------------------------------------------------
# Options and split


def plan(method: str = "kn-modified", order: int = 3, *, interpolate: bool | None = None, discount=None,
         k: float = 1.0, alpha: float = STUPID_ALPHA, prune: Sequence[int] | None = None,
         kenlm_compat: bool = False) -> Spec:
    """Check the options as ``smooth`` does and expand them per order (LmError for a bad one)."""
    from lmtools.ngram.smoothing import check_options

    m = check_options(method, interpolate=interpolate, discount=discount, k=k, alpha=alpha, prune=prune)
    if kenlm_compat and m != "kn-modified":
        raise LmError(f"--kenlm-compat applies to kn-modified only, not {m}", "drop --kenlm-compat")
    N = int(order)
    if m in ("kn-modified", "kn", "abs", "wb"):
        form = form_of(interpolate, True)
    elif m == "stupid":
        form = "stupid"
    else:
        form = "backoff"
    thresholds = None
    if prune:
        t = [int(x) for x in prune]
        thresholds = tuple(t + [t[-1]] * max(0, N - len(t)))
    if m == "laplace":
        k = 1.0
    return Spec(method=m, order=N, form=form, discounts=tuple(per_order(discount, N, "--discount")),
                thresholds=thresholds, prune=tuple(int(x) for x in prune) if prune else None,
                k=float(k), alpha=float(alpha), kenlm_compat=bool(kenlm_compat))


def split_counts(counts: Counts, parts: int) -> tuple[Unigrams, list[Partition]]:
    """The unigrams and ``parts`` partitions of a Counts (each a filter of the sorted arrays, so its
    rows stay sorted)."""
    if parts < 1:
        raise LmError(f"the number of partitions must be >= 1, got {parts}", "give 1 or more")
    _check_unigrams(counts.ngrams[0])
    uni = Unigrams(vocab=list(counts.vocab), counts=counts.counts[0].astype(np.int64), order=counts.order,
                   tokens=int(counts.tokens), sentences=int(counts.sentences),
                   provenance=dict(counts.provenance), text=counts.text)
    out = [Partition(i, parts, [], []) for i in range(parts)]
    for n in range(2, counts.order + 1):
        g, c = counts.ngrams[n - 1], counts.counts[n - 1]
        pid = partition_of_rows(g, parts).astype(np.int32 if parts > 32767 else np.int16)
        perm = np.argsort(pid, kind="stable")  # a filter per partition: each keeps the sorted order
        bounds = np.searchsorted(pid[perm], np.arange(parts + 1))
        for p in out:
            sel = perm[bounds[p.index]:bounds[p.index + 1]]
            p.ngrams.append(np.ascontiguousarray(np.take(g, sel, axis=0), dtype=np.int32))
            p.counts.append(np.take(c, sel).astype(np.int64))
    return uni, out


def _check_unigrams(rows: np.ndarray) -> None:
    V = rows.shape[0]
    if not np.array_equal(rows[:, 0], np.arange(V)):
        raise LmError("the counts are inconsistent: unigrams must list every word id once, in order",
                      "recreate them with lm-count")


SEARCH_SLICE_MIN = 1 << 17  # queries below this many per thread are searched by one thread


def search_rows(queries: np.ndarray, table: np.ndarray, threads: int = 1) -> np.ndarray:
    """``kernels.partitioned.find_rows`` of ``queries`` in ``table``, the queries taken in order of
    their first id (``find_rows_ordered_into``: the searches of one first id stay in cache) and cut
    into up to ``threads`` slices searched at once (the kernel releases the GIL); the same rows."""
    from lmtools.kernels.partitioned import find_rows_ordered_into, first_id_order, first_id_starts

    starts = first_id_starts(table)
    m = queries.shape[0]
    out = np.empty(m, np.int64)
    order = first_id_order(queries)
    threads = max(1, min(int(threads), m // SEARCH_SLICE_MIN))
    if threads == 1:
        find_rows_ordered_into(queries, order, table, starts, out)
        return out
    from concurrent.futures import ThreadPoolExecutor

    cuts = np.linspace(0, m, threads + 1).astype(np.int64)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: find_rows_ordered_into(queries, order[cuts[i]:cuts[i + 1]], table, starts, out),
                      range(threads)))
    return out


def partition_index(part: Partition, suffixes: dict | None = None, threads: int = 1) -> PartitionIndex:
    """Context groups and suffix rows of every order of a partition. ``suffixes``: the suffix rows
    of orders >= 3 as an earlier ``partition_index`` of the same partition found them (``suf``, any
    integer type: a driver that keeps them on disk between its passes), so that they are not searched
    for again (the searches are most of the index's cost); else they are searched in ``threads``
    threads (``search_rows``)."""
    from lmtools.kernels.partitioned import context_groups

    group, first, suf = {}, {}, {}
    for n in range(2, part.order + 1):
        g = np.ascontiguousarray(part.ngrams[n - 2])
        m = g.shape[0]
        group[n], first[n] = context_groups(g)
        if n == 2:
            suf[n] = g[:, 1].astype(np.int64)
        elif suffixes is not None:
            suf[n] = np.asarray(suffixes[n]).astype(np.int64)
        else:
            lower = part.ngrams[n - 3]
            s = search_rows(np.ascontiguousarray(g[:, 1:]), lower, threads)
            if m and s.min() < 0:
                raise LmError(f"the counts are inconsistent: a {n}-gram's last {n - 1} words are not a {n - 1}-gram",
                              "recreate them with lm-count")
            suf[n] = s
    return PartitionIndex(group, first, suf)


def _adjusted(part: Partition, index: PartitionIndex, n: int) -> np.ndarray:
    """Kneser-Ney adjusted counts of order n >= 2 of a partition (``adjusted_counts``)."""
    raw = part.counts[n - 2].astype(np.int64)
    if n == part.order:
        return raw.copy()
    a = np.bincount(index.suf[n + 1], minlength=raw.shape[0]).astype(np.int64)
    bos = part.ngrams[n - 2][:, 0] == BOS_ID
    a[bos] = raw[bos]
    return a


def _nk(a: np.ndarray) -> np.ndarray:
    return np.bincount(np.minimum(a, KMAX + 1), minlength=KMAX + 2).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Pass 1


def partition_stats(part: Partition, spec: Spec, vocab_size: int, index: PartitionIndex | None = None) -> PartitionStats:
    """Pass 1: a partition's share of the global sums (nothing for wb, add-k, mle, stupid)."""
    N = spec.order
    if part.order != N:
        raise ValueError(f"partition of order {part.order}, estimating order {N}")
    st = PartitionStats()
    if spec.method not in ADJUSTED + RAW_NK or N < 2:
        return st
    if spec.method in RAW_NK:
        st.nk = [_nk(part.counts[n - 2].astype(np.int64)) for n in range(2, N + 1)]
        return st
    index = index or partition_index(part)
    a = [_adjusted(part, index, n) for n in range(2, N + 1)]
    st.extensions = np.bincount(index.suf[2], minlength=vocab_size).astype(np.int64)
    st.nk = [_nk(x) for x in a]
    if spec.kenlm_compat:
        g = part.ngrams[N - 2]
        if g.shape[0]:
            cand = np.arange(g.shape[0])
            for col in range(N - 1, -1, -1):  # the last N-gram, the last word compared first
                v = g[cand, col]
                cand = cand[v == v.max()]
            row = int(cand[0])
            st.last = g[row].copy()
            chain = []
            for n in range(N - 1, 1, -1):
                row = int(index.suf[n + 1][row])
                chain.append((int(a[n - 2][row]), int(part.counts[n - 2][row])))
            st.last_counts = chain[::-1]  # orders 2..N-1
    return st


# ----------------------------------------------------------------------------------------------
# Combine


def sum_stats(stats: Iterable[PartitionStats]) -> PartitionStats:
    """Several partitions' pass 1 as one (sums; the last N-gram in suffix order among their
    candidates): ``combine`` takes any grouping of partial sums, so a cluster can reduce them as a
    tree rather than gather a vocabulary-sized array per partition."""
    out = PartitionStats()
    for st in stats:
        if st.extensions is not None:
            out.extensions = st.extensions.copy() if out.extensions is None else out.extensions + st.extensions
        if st.nk:
            out.nk = [x.copy() for x in st.nk] if not out.nk else [a + b for a, b in zip(out.nk, st.nk)]
        if st.last is not None and (out.last is None or _suffix_key(st.last) > _suffix_key(out.last)):
            out.last, out.last_counts = st.last, list(st.last_counts)
    return out


def _suffix_key(row: np.ndarray) -> tuple:
    return tuple(int(x) for x in row[::-1])  # the last word compared first


def combine(uni: Unigrams, stats: Iterable[PartitionStats], spec: Spec,
            warn: Callable[[str], None] | None = None) -> Globals:
    """The global statistics from every partition's pass 1 (or partial sums of them, ``sum_stats``):
    discounts (with the warnings and fallbacks of ``smooth``), the unigram level, the model's info."""
    if warn is None:
        from lmtools.messages import warn
    N, m = spec.order, spec.method
    V = uni.size
    raw1 = uni.counts.astype(np.int64)
    c1 = raw1.copy()
    c1[BOS_ID] = 0  # raw_counts(counts, 1)
    check_nonempty(float(c1.sum()))
    total = sum_stats(stats)
    nk = [None] + (list(total.nk) if total.nk else [np.zeros(KMAX + 2, np.int64) for _ in range(2, N + 1)])
    a1 = None
    if m in ADJUSTED:
        a1 = raw1.copy() if N == 1 else (total.extensions if total.extensions is not None else np.zeros(V, np.int64))
        a1[BOS_ID] = 0
        nk[0] = _nk(a1)
    elif m in RAW_NK:
        nk[0] = _nk(c1)
    if spec.kenlm_compat and total.last is not None:
        # lmplz's counts of counts: the suffixes of the last N-gram in suffix order enter n_k with
        # their raw count instead of their adjusted count (``modified_kneser_ney``'s kenlm_compat)
        w = int(total.last[N - 1])
        for n, (adj, raw) in enumerate([(int(a1[w]), int(raw1[w]))] + list(total.last_counts), start=1):
            nk[n - 1][min(adj, KMAX + 1)] -= 1
            nk[n - 1][min(raw, KMAX + 1)] += 1

    params: list = [None] * N
    info: dict = {}
    enlarged1 = 0
    base = None
    if m in ("kn-modified", "kn", "abs"):
        info_d, fallback = [], []
        for n in range(1, N + 1):
            if m == "kn-modified":
                D = mkn_order_discounts(spec.discounts[n - 1], n, lambda: nk[n - 1], warn, fallback)
                info_d.append([float(x) for x in D])
                params[n - 1] = np.array((0.0,) + tuple(D))
            else:
                name = "Kneser-Ney" if m == "kn" else "absolute discounting"
                D = single_discount(lambda: nk[n - 1], spec.discounts[n - 1], n, name, warn, fallback)
                info_d.append(D)
                params[n - 1] = np.array([0.0, D])
            if n == 1:
                o1 = discounted_order(None, None, 1, a1 if m != "abs" else c1, params[0])
        info = {"discounts": info_d, "discount_fallback": fallback}
        if spec.kenlm_compat:
            info["kenlm_compat"] = True
    elif m == "wb":
        c = c1.astype(np.float64)
        S, T = float(c.sum()), float((c > 0).sum())
        o1 = Order(alpha=c / (S + T), gamma=T / (S + T))
    elif m in ("add-k", "laplace"):
        c = c1.astype(np.float64)
        S = float(c.sum())
        alpha = (c + spec.k) / (S + spec.k * (V - 1))
        alpha[BOS_ID] = 0.0
        o1 = Order(alpha=alpha, gamma=0.0)
        info = {"k": float(spec.k)}
    elif m in ("mle", "stupid"):
        c = c1.astype(np.float64)
        o1 = Order(alpha=c / float(c.sum()), gamma=0.0)
        if m == "stupid":
            info = {"alpha": float(spec.alpha)}
    elif m == "katz":
        used = []
        for n in range(1, N + 1):
            d, K = good_turing_of(nk[n - 1], KATZ_K)
            used.append(K)
            if K < KATZ_K:
                warn(f"Good-Turing discounts of order {n} are only valid up to count {K}; counts above are not discounted")
            params[n - 1] = (d, K)
            if n == 1:
                o1, enlarged1, base = _katz_unigrams(c1, d, K)
        info = {"good_turing_max": used}
    else:
        raise AssertionError(m)
    if base is None:
        base = np.full(V, 1.0 / (V - 1))
        base[BOS_ID] = 0.0
    p1 = o1.alpha + float(o1.gamma) * base
    p1[BOS_ID] = 1.0
    return Globals(spec=spec, vocab_size=V, p1=p1, logprob1=log10_probs(p1, clip_one=(spec.form != "stupid")),
                   params=params, info=info, enlarged1=enlarged1)


def _katz_unigrams(c: np.ndarray, d: np.ndarray, K: int):
    """Katz's unigram level (``katz``, n = 1): the order, whether its denominator was enlarged, and
    the distribution of the lower level (uniform over the unseen words, or None)."""
    dc = katz_discounted(c, d, K)
    S = float(c.sum())
    check_nonempty(S)
    unseen = (c == 0)
    unseen[BOS_ID] = False
    base = unseen / unseen.sum() if unseen.any() else None
    left = float(np.sum(c - dc))
    k = float(katz_denominators(np.array([S]), np.array([left]))[0]) if base is not None else 0.0
    o = Order(alpha=dc / (S + k), gamma=max(0.0, (left + k) / (S + k)))
    return o, int(k > 0), (base.astype(np.float64) if base is not None else None)


# ----------------------------------------------------------------------------------------------
# Pass 2


def estimate_partition(part: Partition, glob: Globals, index: PartitionIndex | None = None) -> PartitionResult:
    """Pass 2: log10 p of the partition's kept n-grams of every order >= 2, and the log10 backoff of
    the contexts of its rows (which the merge joins onto the rows of the order below)."""
    spec = glob.spec
    N, m, form = spec.order, spec.method, spec.form
    if part.order != N:
        raise ValueError(f"partition of order {part.order}, estimating order {N}")
    index = index or partition_index(part)
    lower_p = glob.p1
    res = PartitionResult(part.index, [])
    for n in range(2, N + 1):
        g = part.ngrams[n - 2]
        raw = part.counts[n - 2].astype(np.int64)
        ctx, first = index.group[n], index.first[n]
        m_ctx = int(first.shape[0])
        if m in ADJUSTED:
            o = discounted_groups(ctx, m_ctx, _adjusted(part, index, n), glob.params[n - 1])
        elif m == "abs":
            o = discounted_groups(ctx, m_ctx, raw, glob.params[n - 1])
        elif m == "wb":
            o = witten_bell_groups(raw.astype(np.float64), ctx, m_ctx)
        elif m in ("add-k", "laplace"):
            o = add_k_groups(raw.astype(np.float64), ctx, m_ctx, spec.k, glob.vocab_size - 1)
        elif m in ("mle", "stupid"):
            o = relative_frequency_groups(raw.astype(np.float64), ctx, m_ctx, m == "mle")
        elif m == "katz":
            d, K = glob.params[n - 1]
            o, enlarged = katz_groups(raw, katz_discounted(raw, d, K), ctx, m_ctx)
            res.enlarged.append(enlarged)
        else:
            raise AssertionError(m)
        pruned = None
        if spec.thresholds and spec.thresholds[n - 1] > 0:
            pruned = raw <= spec.thresholds[n - 1]
        p, bow = order_probs(form, o, ctx, m_ctx, lower_p[index.suf[n]], pruned, spec.alpha)
        lower_p = p
        lp = log10_probs(p, clip_one=(form != "stupid"))
        if pruned is not None:
            keep = ~pruned
            rows, lp = g[keep], lp[keep]
            kept = np.bincount(ctx[keep], minlength=m_ctx).astype(np.int64)
        else:
            rows = g
            kept = np.diff(np.append(first, g.shape[0])).astype(np.int64)
        contexts = np.ascontiguousarray(np.take(g[:, :-1], first, axis=0), dtype=np.int32)
        bo = None if form == "stupid" else log10_probs(bow, clip_one=False)  # stupid: one constant
        res.orders.append(OrderResult(np.ascontiguousarray(rows, dtype=np.int32), lp, contexts, kept, bo))
    return res


# ----------------------------------------------------------------------------------------------
# Merge


def merge_sorted(runs: Sequence[tuple]) -> tuple:
    """The k-way merge of sorted runs, each a tuple (rows (m, n) int32, payload arrays of length m...):
    one tuple of the same shape, rows in lexicographic order (``kernels.partitioned.merge_sorted``; in
    memory: ``merge_streams`` merges runs given as iterators of blocks)."""
    from lmtools.kernels.partitioned import merge_sorted as merge

    return merge(runs)


def merge_streams(sources: Sequence[Iterable[tuple]]) -> Iterator[tuple]:
    """The k-way merge of sorted runs given as iterators of blocks (tuples as in ``merge_sorted``):
    yields merged blocks, holding at most one block per run (plus the rows of the current step): a
    step emits every buffered row not above the smallest of the runs' last buffered rows, which no
    later block can precede."""
    from lmtools.kernels.partitioned import count_not_above

    its = [iter(s) for s in sources]
    buf: list = [None] * len(its)
    done = [False] * len(its)

    def fill(i):
        while not done[i] and (buf[i] is None or buf[i][0].shape[0] == 0):
            try:
                buf[i] = next(its[i])
            except StopIteration:
                done[i] = True
                buf[i] = None

    while True:
        for i in range(len(its)):
            fill(i)
        live = [i for i in range(len(its)) if buf[i] is not None and buf[i][0].shape[0]]
        if not live:
            return
        open_ = [i for i in live if not done[i]]
        bound = None
        if open_:
            lasts = np.concatenate([buf[i][0][-1:] for i in open_])
            bound = np.ascontiguousarray(lasts[_argmin_row(lasts)][None])
        pieces = []
        for i in live:
            b = buf[i]
            take = b[0].shape[0] if bound is None else count_not_above(b[0], bound, 0)
            if take:
                pieces.append(tuple(x[:take] for x in b))
                buf[i] = tuple(x[take:] for x in b)
        yield merge_sorted(pieces)


def _argmin_row(rows: np.ndarray) -> int:
    order = np.lexsort(rows.T[::-1])
    return int(order[0])


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions starts[i] .. starts[i] + lengths[i] - 1 for every i, in turn."""
    total = int(lengths.sum())
    before = np.zeros(lengths.shape[0], np.int64)
    np.cumsum(lengths[:-1], out=before[1:])
    return np.repeat(starts - before, lengths) + np.arange(total, dtype=np.int64)


def merge_order(n: int, lower: np.ndarray, outs: Sequence[OrderResult], glob: Globals) -> tuple:
    """Order n >= 2 of the model from the partitions' results of that order (``outs``, one per
    partition, any order) and the merged rows of order n-1 (``lower``): its rows and log10 p in
    lexicographic order, and the log10 backoff of every row of order n-1 (float32, 0 for a row that
    is no context; stupid backoff's constant).

    No rows are compared: the contexts of order n (each in one partition, its rows contiguous there)
    are found in ``lower`` (a galloping search: each partition's contexts are sorted), which gives
    both the backoff weights of order n-1 (the gamma of each context) and the order of the contexts'
    row groups in order n. A driver with the results on disk holds two orders at a time: order n-1's
    arrays are complete (its backoffs known) once order n is merged."""
    from lmtools.kernels.partitioned import find_rows, first_id_starts

    spec = glob.spec
    stupid_bo = math.log10(spec.alpha) if spec.form == "stupid" else 0.0
    backoff = np.full(lower.shape[0], stupid_bo, np.float32)
    lower_starts = first_id_starts(lower) if n > 2 else None
    poss, kepts, starts = [], [], []
    offset = 0
    for o in outs:
        pos = o.contexts[:, 0].astype(np.int64) if n == 2 else find_rows(o.contexts, lower, lower_starts)
        found = pos >= 0
        if not found.all() and (not spec.thresholds or o.kept[~found].any()):
            raise LmError(f"the counts are inconsistent: a {n}-gram's first {n - 1} words are not a {n - 1}-gram",
                          "recreate them with lm-count")
        if o.ctx_backoff is not None:
            backoff[pos[found]] = o.ctx_backoff[found]
        before = np.zeros(o.kept.shape[0], np.int64)
        np.cumsum(o.kept[:-1], out=before[1:])
        sel = o.kept > 0
        poss.append(pos[sel])
        kepts.append(o.kept[sel])
        starts.append(before[sel] + offset)
        offset += o.ngrams.shape[0]
    pos, kept, start = np.concatenate(poss), np.concatenate(kepts), np.concatenate(starts)
    order = np.argsort(pos, kind="stable")  # sorted runs (one per partition): a merge
    perm = _ranges(start[order], kept[order])
    rows = np.concatenate([o.ngrams for o in outs]) if len(outs) > 1 else outs[0].ngrams
    lp = np.concatenate([o.logprob for o in outs]) if len(outs) > 1 else outs[0].logprob
    return np.ascontiguousarray(np.take(rows, perm, axis=0), dtype=np.int32), np.take(lp, perm), backoff


def merge(uni: Unigrams, results: Sequence[PartitionResult], glob: Globals) -> NGramModel:
    """The NGramModel from every partition's pass 2 (``merge_order`` for each order in turn)."""
    spec = glob.spec
    N, form = spec.order, spec.form
    V = glob.vocab_size
    ngrams = [np.arange(V, dtype=np.int32).reshape(V, 1)]
    logprob = [glob.logprob1]
    backoff = []
    for n in range(2, N + 1):
        rows, lp, bo = merge_order(n, ngrams[n - 2], [r.orders[n - 2] for r in results], glob)
        ngrams.append(rows)
        logprob.append(lp)
        backoff.append(bo)
    backoff.append(np.zeros(ngrams[N - 1].shape[0], np.float32))
    return NGramModel(vocab=list(uni.vocab), ngrams=ngrams, logprob=logprob, backoff=backoff, method=spec.method,
                      info=model_info(glob, [sum(r.enlarged[n - 2] for r in results if r.enlarged)
                                             for n in range(2, N + 1)]),
                      provenance=model_provenance(uni),
                      scores_only=(form == "stupid"), text=uni.text)


def model_info(glob: Globals, enlarged: Sequence[int] | None = None) -> dict:
    """The model's info (``smooth``'s, keys in its order): the global statistics, and for katz
    ``enlarged``, the partitions' ``PartitionResult.enlarged`` summed (per order 2..N)."""
    spec = glob.spec
    info = dict(glob.info)
    if spec.method == "katz":
        info["katz_enlarged"] = [glob.enlarged1] + [int(x) for x in enlarged]
    info["form"] = spec.form
    if spec.prune:
        info["prune"] = [int(x) for x in spec.prune]
    return info


def model_provenance(uni: Unigrams) -> dict:
    prov = dict(uni.provenance)
    prov["tokens"] = int(uni.tokens)
    prov["sentences"] = int(uni.sentences)
    return prov


# ----------------------------------------------------------------------------------------------
# All stages in memory


def estimate_partitioned(counts: Counts, method: str = "kn-modified", parts: int = 4, *, order: int | None = None,
                         interpolate: bool | None = None, discount=None, k: float = 1.0, alpha: float = STUPID_ALPHA,
                         prune: Sequence[int] | None = None, vocab: Sequence[str] | None = None,
                         kenlm_compat: bool = False, warn: Callable[[str], None] | None = None) -> NGramModel:
    """``smooth(counts, method, ...)`` estimated in ``parts`` partitions, every stage in memory: the
    same model, array for array."""
    from lmtools.ngram.smoothing_stages import raw_counts, restrict_vocab, truncate

    text = getattr(counts, "text", None)
    counts = truncate(counts, order)
    spec = plan(method, counts.order, interpolate=interpolate, discount=discount, k=k, alpha=alpha, prune=prune,
                kenlm_compat=kenlm_compat)
    if vocab is not None:
        counts = restrict_vocab(counts, vocab)
    check_nonempty(float(raw_counts(counts, 1).sum()))
    uni, partitions = split_counts(counts, parts)
    indexes = [partition_index(p) for p in partitions] if counts.order >= 2 else [None] * len(partitions)
    stats = [partition_stats(p, spec, uni.size, ix) for p, ix in zip(partitions, indexes)]
    glob = combine(uni, stats, spec, warn)
    results = [estimate_partition(p, glob, ix) for p, ix in zip(partitions, indexes)]
    model = merge(uni, results, glob)
    model.text = text
    return model
