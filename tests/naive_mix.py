"""Plain-Python references for mixtures: EM for the interpolation weights over per-token
probabilities, and the static mixture of back-off models (union of n-grams, mixed probabilities,
backoff weights renormalized), with dictionaries keyed by word strings and the rules as written:
no numpy, no sorted arrays, no scorer of lmtools."""

from __future__ import annotations

import math

SPECIALS = ("<unk>", "<s>", "</s>")


def em(rows, lambdas, iterations):
    """EM for the weights: rows = [[p_1(t), ..., p_k(t)] for each token t]; each iteration sets
    lambda_k to the mean over tokens of lambda_k p_k(t) / sum_j lambda_j p_j(t)."""
    lam = list(lambdas)
    for _ in range(iterations):
        acc = [0.0] * len(lam)
        for ps in rows:
            mix = sum(l * p for l, p in zip(lam, ps))
            for k in range(len(lam)):
                acc[k] += lam[k] * ps[k] / mix
        lam = [a / len(rows) for a in acc]
    return lam


def gradient(rows, lambdas):
    """g_k = mean over tokens of p_k(t) / sum_j lambda_j p_j(t). The log-likelihood is concave in the
    weights, so they are the best on the simplex exactly when g_k = 1 where lambda_k > 0 and g_k <= 1
    where lambda_k = 0 (the KKT conditions): a certificate of optimality that needs no optimizer."""
    g = [0.0] * len(lambdas)
    for ps in rows:
        mix = sum(l * p for l, p in zip(lambdas, ps))
        for k, p in enumerate(ps):
            g[k] += p / mix
    return [x / len(rows) for x in g]


def perplexity(rows, lambdas):
    total = 0.0
    for ps in rows:
        total += math.log10(sum(l * p for l, p in zip(lambdas, ps)))
    return 10.0 ** (-total / len(rows))


class WordModel:
    """An NGramModel as dictionaries of word tuples: log10 p and log10 backoff of each n-gram."""

    def __init__(self, model):
        self.order = model.order
        self.vocab = list(model.vocab)
        self.lp, self.bo = {}, {}
        for n in range(1, model.order + 1):
            for row, p, b in zip(model.ngrams[n - 1].tolist(), model.logprob[n - 1].tolist(),
                                 model.backoff[n - 1].tolist()):
                key = tuple(self.vocab[i] for i in row)
                self.lp[key] = float(p)
                self.bo[key] = float(b)
        self.words = [w for w in self.vocab if (w,) in self.lp]  # words with a unigram, in id order

    def log10(self, history, w):
        """log10 p(w | history) by the back-off rule (history: words, oldest first); a history word
        without a unigram is <unk>; -inf for a word without a unigram."""
        if (w,) not in self.lp:
            return -math.inf
        h = [x if (x,) in self.lp else "<unk>" for x in history]
        h = tuple(h[len(h) - (self.order - 1):]) if self.order > 1 else ()
        for m in range(len(h), -1, -1):
            ctx = h[len(h) - m:]
            if ctx + (w,) in self.lp:
                total = self.lp[ctx + (w,)]
                for k in range(m + 1, len(h) + 1):
                    total += self.bo.get(h[len(h) - k:], 0.0)
                return total
        return -math.inf


def prob(x):
    return 0.0 if x <= -99 else 10.0 ** x


def static_mixture(models, lambdas):
    """(vocab, {ngram: log10 p}, {ngram: log10 bow}) of the static mixture of WordModels."""
    vocab = list(SPECIALS)
    for m in models:
        for w in m.words:
            if w not in vocab:
                vocab.append(w)
    grams = set()
    for m in models:
        for key in m.lp:
            if all((x,) in m.lp for x in key):
                grams.add(key)
    for key in list(grams):  # every context of an n-gram is an n-gram
        for n in range(1, len(key)):
            grams.add(key[:n])
    for w in vocab:
        grams.add((w,))
    lp = {}
    for key in grams:
        if key == ("<s>",):
            lp[key] = 0.0
            continue
        p = sum(l * prob(m.log10(list(key[:-1]), key[-1])) for l, m in zip(lambdas, models))
        lp[key] = math.log10(p) if p > 0 else -99.0
    N = max(m.order for m in models)
    bo = {key: 0.0 for key in grams}
    children = {}
    for key in grams:
        if len(key) > 1:
            children.setdefault(key[:-1], []).append(key[-1])

    def static_log10(history, w):
        h = tuple(history)
        for m in range(len(h), -1, -1):
            ctx = h[len(h) - m:]
            if ctx + (w,) in lp:
                total = lp[ctx + (w,)]
                for k in range(m + 1, len(h) + 1):
                    total += bo.get(h[len(h) - k:], 0.0)
                return total
        return -math.inf

    for n in range(1, N):  # contexts of order n, once the lower orders' backoffs are known
        for ctx in sorted(k for k in grams if len(k) == n):
            ws = children.get(ctx, [])
            explicit = sum(prob(lp[ctx + (w,)]) for w in ws)
            lower = sum(prob(static_log10(ctx[1:], w)) for w in ws)
            num, den = max(1.0 - explicit, 0.0), max(1.0 - lower, 0.0)
            if den <= 1e-12:
                bo[ctx] = 0.0
            elif num <= 0.0:
                bo[ctx] = -99.0
            else:
                bo[ctx] = max(math.log10(num / den), -99.0)
    return vocab, lp, bo
