"""Plain-Python reference versions of every smoothing method, for tests only.

Each method is written straight from its definition (man/lm-train.1) over dicts of word tuples
(the Counters of tests/naive.py count_ngrams): p(w | h) is computed recursively from the counts,
with no arrays and no back-off form. A separate plain back-off query (``arpa_prob``) reads an
NGramModel as an ARPA file is read, so comparing the two checks that the model file holds the
method's distribution exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


class Tables:
    """Counts as dicts: c[n][ngram tuple] and followers[n][context tuple] = {word: count}."""

    def __init__(self, tables):
        self.N = len(tables)
        self.c = [None] + [dict(t) for t in tables]
        self.vocab = sorted(w for (w,) in self.c[1])
        self.words = [w for w in self.vocab if w != BOS]  # what can be predicted: |V| of them
        self.followers = [None, {(): {w: c for (w,), c in self.c[1].items() if w != BOS}}]
        for n in range(2, self.N + 1):
            f = defaultdict(dict)
            for g, c in self.c[n].items():
                f[g[:-1]][g[-1]] = c
            self.followers.append(dict(f))

    def adjusted(self, g):
        """Kneser-Ney adjusted count of the n-gram g."""
        n = len(g)
        if n == 1 and g[0] == BOS:
            return 0
        if n == self.N or (n >= 2 and g[0] == BOS):
            return self.c[n].get(g, 0)
        return sum(1 for h in self.c[n + 1] if h[1:] == g) if not hasattr(self, "_ext") else self._ext[n].get(g, 0)

    def prepare_adjusted(self):
        self._ext = [None] * (self.N + 1)
        for n in range(1, self.N):
            e = defaultdict(int)
            for h in self.c[n + 1]:
                e[h[1:]] += 1
            self._ext[n] = dict(e)


# ----------------------------------------------------------------------------------------------
# alpha(hw) and gamma(h) of every method, from the definitions


def counts_of_counts(values, kmax):
    nk = [0] * (kmax + 2)
    for v in values:
        if 1 <= v <= kmax + 1:
            nk[v] += 1
    return nk


class Method:
    """alpha(h, w), gamma(h) for h a seen context; form 'interpolated', 'backoff' or 'stupid'."""

    form = "interpolated"

    def __init__(self, T: Tables):
        self.T = T

    def count(self, g):  # the statistic a method discounts
        if len(g) == 1 and g[0] == BOS:
            return 0
        return self.T.c[len(g)].get(g, 0)

    def context_total(self, h):
        cache = self.__dict__.setdefault("_totals", {})
        if h not in cache:
            cache[h] = self._context_total(h)
        return cache[h]

    def _context_total(self, h):
        return sum(self.count(h + (x,)) for x in self.T.followers[len(h) + 1].get(h, {}))

    def base(self, w):
        return 1.0 / len(self.T.words)


class Discounted(Method):
    """alpha = (c - d(c))/S(h), gamma = sum_x d(c(hx))/S(h), d(c) = min(D(c), c)."""

    def D(self, n, c):
        raise NotImplementedError

    def alpha(self, h, w):
        c = self.count(h + (w,))
        if c == 0:
            return 0.0
        return (c - min(self.D(len(h) + 1, c), c)) / self.context_total(h)

    def gamma(self, h):
        S = self.context_total(h)
        return sum(min(self.D(len(h) + 1, self.count(h + (x,))), self.count(h + (x,)))
                   for x in self.T.followers[len(h) + 1].get(h, {})) / S


class MKN(Discounted):
    def __init__(self, T, form="interpolated", fixed=None, single=False):
        super().__init__(T)
        T.prepare_adjusted()
        self.form = form
        self.single = single
        self.Ds = {}
        for n in range(1, T.N + 1):
            a = [T.adjusted(g) for g in T.c[n]]
            nk = counts_of_counts(a, 4)
            if fixed is not None:
                self.Ds[n] = fixed
            elif single:
                self.Ds[n] = (nk[1] / (nk[1] + 2 * nk[2]),) * 3
            elif 0 in nk[1:4]:
                self.Ds[n] = (0.5, 1.0, 1.5)  # degenerate: the fixed fallback
            else:
                Y = nk[1] / (nk[1] + 2 * nk[2])
                self.Ds[n] = tuple(k - (k + 1) * Y * nk[k + 1] / nk[k] for k in (1, 2, 3))
                if not all(0 <= d <= k for k, d in zip((1, 2, 3), self.Ds[n])):
                    self.Ds[n] = (0.5, 1.0, 1.5)

    def count(self, g):
        return self.T.adjusted(g)

    def D(self, n, c):
        return 0.0 if c == 0 else self.Ds[n][min(c, 3) - 1]


class Absolute(Discounted):
    def __init__(self, T, form="interpolated"):
        super().__init__(T)
        self.form = form
        self.Ds = {}
        for n in range(1, T.N + 1):
            nk = counts_of_counts([self.count(g) for g in T.c[n]], 2)
            self.Ds[n] = nk[1] / (nk[1] + 2 * nk[2])

    def D(self, n, c):
        return self.Ds[n]


class WittenBell(Method):
    def __init__(self, T, form="interpolated"):
        super().__init__(T)
        self.form = form

    def distinct(self, h):
        return sum(1 for x in self.T.followers[len(h) + 1].get(h, {}) if self.count(h + (x,)) > 0)

    def alpha(self, h, w):
        return self.count(h + (w,)) / (self.context_total(h) + self.distinct(h))

    def gamma(self, h):
        t = self.distinct(h)
        return t / (self.context_total(h) + t)


class AddK(Method):
    form = "backoff"

    def __init__(self, T, k=1.0):
        super().__init__(T)
        self.k = k

    def alpha(self, h, w):
        if h and self.count(h + (w,)) == 0:
            return 0.0
        if w == BOS:
            return 0.0
        return (self.count(h + (w,)) + self.k) / (self.context_total(h) + self.k * len(self.T.words))

    def gamma(self, h):
        if not h:
            return 0.0
        return 1.0 - sum(self.alpha(h, x) for x in self.T.followers[len(h) + 1].get(h, {}))


class MLE(Method):
    form = "backoff"

    def alpha(self, h, w):
        return self.count(h + (w,)) / self.context_total(h)

    def gamma(self, h):
        return 0.0


class Stupid(MLE):
    form = "stupid"


class Katz(Method):
    form = "backoff"
    K = 5

    def __init__(self, T):
        super().__init__(T)
        self.d = {}
        for n in range(1, T.N + 1):
            nk = counts_of_counts([self.count(g) for g in T.c[n]], self.K + 1)
            self.d[n] = {}
            for k in range(self.K, 0, -1):  # the largest K with all ratios in (0, 1]
                if nk[1] == 0:
                    break
                A = (k + 1) * nk[k + 1] / nk[1]
                if A >= 1:
                    continue
                ratios = {}
                for r in range(1, k + 1):
                    if nk[r] == 0:
                        break
                    ratios[r] = ((r + 1) * nk[r + 1] / nk[r] / r - A) / (1 - A)
                    if not 0 < ratios[r] <= 1:
                        break
                else:
                    self.d[n] = ratios
                    break

    def alpha(self, h, w):
        c = self.count(h + (w,))
        return self.d[len(h) + 1].get(c, 1.0) * c / self.context_total(h)

    def _context_total(self, h):
        """S(h), plus one count at a time while the discounted counts keep more than 1 - 3e-6 of it
        (every count above K): SRILM's retry, so that unseen words keep some mass."""
        S = super()._context_total(h)
        if not h and not any(self.count((x,)) == 0 for x in self.T.words):
            return S  # no unseen word to keep mass for
        kept = sum(self.d[len(h) + 1].get(self.count(h + (x,)), 1.0) * self.count(h + (x,))
                   for x in self.T.followers[len(h) + 1].get(h, {}))
        total = S
        while S > 0 and kept / total > 1.0 - 3e-6:
            total += 1
        return total

    def gamma(self, h):
        return 1.0 - sum(self.alpha(h, x) for x in self.T.followers[len(h) + 1].get(h, {}))

    def base(self, w):
        unseen = [x for x in self.T.words if self.count((x,)) == 0]
        if not unseen:
            return 1.0 / len(self.T.words)
        return 1.0 / len(unseen) if w in unseen else 0.0


# ----------------------------------------------------------------------------------------------
# p(w | h) from alpha and gamma, with count cutoffs


class Model:
    def __init__(self, method: Method, prune=None):
        self.m = method
        self.T = method.T
        t = list(prune or [0])
        self.t = t + [t[-1]] * (self.T.N - len(t))
        self.memo = {}

    def kept(self, g):
        return self.T.c[len(g)].get(g, 0) > (self.t[len(g) - 1] if len(g) > 1 else -1)

    def seen(self, h):
        return bool(self.T.followers[len(h) + 1].get(h)) if len(h) < self.T.N else False

    def gamma_pruned(self, h):
        cache = self.__dict__.setdefault("_gammas", {})
        if h not in cache:
            cache[h] = self._gamma_pruned(h)
        return cache[h]

    def _gamma_pruned(self, h):
        g = self.m.gamma(h)
        return g + sum(self.m.alpha(h, x) for x in self.T.followers[len(h) + 1][h] if not self.kept(h + (x,)))

    def bow(self, h):
        cache = self.__dict__.setdefault("_bows", {})
        if h not in cache:
            cache[h] = self._bow(h)
        return cache[h]

    def _bow(self, h):
        if self.m.form == "stupid":
            return 0.4
        g = self.gamma_pruned(h)
        if self.m.form == "interpolated":
            return g
        kept_lower = sum(self.p(x, h[1:]) for x in self.T.followers[len(h) + 1][h] if self.kept(h + (x,)))
        return g / (1.0 - kept_lower) if g > 0 else 0.0

    def p(self, w, h=()):
        """p(w | h): h a tuple of words, oldest first (truncated to N-1 words)."""
        h = tuple(h)[-(self.T.N - 1):] if self.T.N > 1 else ()
        key = (w, h)
        if key in self.memo:
            return self.memo[key]
        if h and not self.seen(h):
            r = self.p(w, h[1:])
        elif not h:
            if w == BOS:
                r = 1.0
            elif (w,) not in self.T.c[1]:
                r = self.p(UNK)
            else:
                gam = self.gamma_pruned(())
                r = self.m.alpha((), w) + (gam * self.m.base(w) if self.m.form != "stupid" else 0.0)
        else:
            g = h + (w,)
            inside = self.T.c[len(g)].get(g, 0) > 0 and self.kept(g)
            if self.m.form == "interpolated":
                r = (self.m.alpha(h, w) if inside else 0.0) + self.bow(h) * self.p(w, h[1:])
            else:
                r = self.m.alpha(h, w) if inside else self.bow(h) * self.p(w, h[1:])
        self.memo[key] = r
        return r


def reference(tables, method: str, form: str | None = None, prune=None, k: float = 1.0) -> Model:
    """The plain reference model of ``method`` (names as lmtools.ngram.smoothing.smooth)."""
    T = Tables(tables)
    if method == "kn-modified":
        m = MKN(T, form or "interpolated")
    elif method == "kn":
        m = MKN(T, form or "interpolated", single=True)
    elif method == "abs":
        m = Absolute(T, form or "interpolated")
    elif method == "wb":
        m = WittenBell(T, form or "interpolated")
    elif method == "add-k":
        m = AddK(T, k)
    elif method == "mle":
        m = MLE(T)
    elif method == "katz":
        m = Katz(T)
    elif method == "stupid":
        m = Stupid(T)
    else:
        raise ValueError(method)
    return Model(m, prune)


# ----------------------------------------------------------------------------------------------
# The ARPA back-off query, plainly


class ArpaQuery:
    """log10 p(w | h) from an NGramModel by the back-off rule, over dicts of word tuples."""

    def __init__(self, model):
        self.N = model.order
        self.entries = {}
        for n in range(1, model.order + 1):
            for row, lp, bo in zip(model.ngrams[n - 1].tolist(), model.logprob[n - 1].tolist(),
                                   model.backoff[n - 1].tolist()):
                self.entries[tuple(model.vocab[i] for i in row)] = (lp, bo)

    def log10p(self, w, h=()):
        h = tuple(h)[-(self.N - 1):] if self.N > 1 else ()
        if (w,) not in self.entries:
            w = UNK
        total = 0.0
        while True:
            e = self.entries.get(h + (w,))
            if e is not None:
                return total + e[0]
            ctx = self.entries.get(h)
            if ctx is not None:
                total += ctx[1]
            h = h[1:]


def log10(p):
    return math.log10(p) if p > 0 else -99.0


# ----------------------------------------------------------------------------------------------
# A vectorized reference scorer (perplexities of whole test sets, e.g. PTB): the back-off rule
# over the arrays, independent of lmtools' query engine. For each position t and order n it finds
# the n-gram ending at t by its prefix (the (n-1)-gram ending at t-1) and last word.


def ngram_keys(model):
    """keys[n-1][i] = index of the prefix of n-gram i in order n-1, times V, plus its last word."""
    from lmtools.kernels.smooth import prefix_index

    V = len(model.vocab)
    keys = [model.ngrams[0][:, 0].astype(np.int64)]
    for n in range(2, model.order + 1):
        g = model.ngrams[n - 1]
        pre = prefix_index(np.ascontiguousarray(g), np.ascontiguousarray(model.ngrams[n - 2]))
        assert g.shape[0] == 0 or pre.min() >= 0, "n-gram whose prefix is missing"
        keys.append(pre * V + g[:, n - 1])
    return keys


def encode(model, lines):
    """Token ids of ``<s> w.. </s>`` per line (words outside the vocabulary -> <unk>) and an OOV mask."""
    idx = {w: i for i, w in enumerate(model.vocab)}
    ids, oov = [], []
    for line in lines:
        words = [w for w in line.split() if w not in ("<s>", "</s>")]
        ids.append(1)
        oov.append(False)
        for w in words:
            i = idx.get(w, -1)
            ids.append(0 if i < 0 else i)
            oov.append(i < 0)
        ids.append(2)
        oov.append(False)
    return np.array(ids, np.int64), np.array(oov, bool)


def score_ids(model, ids, keys=None):
    """log10 p of every position (NaN at <s>), by the back-off rule."""
    keys = keys or ngram_keys(model)
    V = len(model.vocab)
    N = model.order
    T = ids.shape[0]
    found = [ids.copy()]  # index of the order-n n-gram ending at t, -1 if absent
    for n in range(2, N + 1):
        prev = np.full(T, -1, np.int64)
        prev[1:] = found[n - 2][:-1]
        target = np.where(prev >= 0, prev * V + ids, -1)
        pos = np.searchsorted(keys[n - 1], target)
        pos = np.minimum(pos, max(keys[n - 1].shape[0] - 1, 0))
        ok = (prev >= 0) & (keys[n - 1].shape[0] > 0)
        ok &= keys[n - 1][pos] == target if keys[n - 1].shape[0] else False
        found.append(np.where(ok, pos, -1))
    lp = model.logprob[0][ids].astype(np.float64)
    longest = np.ones(T, np.int64)
    for n in range(2, N + 1):
        hit = found[n - 1] >= 0
        lp = np.where(hit, model.logprob[n - 1][np.maximum(found[n - 1], 0)], lp)
        longest = np.where(hit, n, longest)
    # back-off weights of the contexts longer than the matched one: order-k n-grams ending at t-1
    for k in range(1, N):
        ctx = np.full(T, -1, np.int64)
        ctx[1:] = found[k - 1][:-1]
        add = (ctx >= 0) & (k >= longest)
        lp = lp + np.where(add, model.backoff[k - 1][np.maximum(ctx, 0)], 0.0)
    lp[ids == 1] = np.nan
    return lp


def perplexity(model, lines):
    ids, oov = encode(model, lines)
    lp = score_ids(model, ids)
    scored = ids != 1
    incl = 10 ** (-np.nansum(lp[scored]) / scored.sum())
    ex = scored & ~oov
    excl = 10 ** (-np.nansum(lp[ex]) / ex.sum())
    return incl, excl, int(oov.sum()), int(scored.sum())
