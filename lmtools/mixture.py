"""Linear mixtures of models of any kind: p(w|h) = sum_i lambda_i p_i(w|h).

Each model sees the text through its own vocabulary (a word outside it is that model's ``<unk>``);
a token is an OOV of the mixture when it is outside every model's vocabulary. ``Mixture`` keeps the
``Scorer`` interface of lmtools.kinds, over the scorers of its models; ``fit_lambdas`` finds the
weights that maximize the likelihood of held-out tokens by EM (lm-mix); ``MixtureSampler`` keeps
the ``Sampler`` interface, drawing from the mixed next-word distribution (lm-gen -m A -m B). The
static mixture of n-gram models, written as one model, is lmtools.ngram.mix.
"""

from __future__ import annotations

import math

import numpy as np

from lmtools.constants import LOG_ZERO
from lmtools.errors import LmError
from lmtools.lambdas import check_lambdas  # noqa: F401  (its home before lmtools.lambdas)
from lmtools.ngram.scores import NO_CONTEXT, LineScores, Scored
from lmtools.ngram.sample import Samples, SamplerBase, SamplingOptions
from lmtools.vocab import BOS_ID, EOS_ID, UNK_ID


class Mixture:
    """Linear interpolation: log10 sum_i lambda_i 10^(log10 p_i) per token."""

    kind = "mixture"

    def __init__(self, scorers: list, lambdas: list[float]):
        self.scorers = scorers
        self.lambdas = np.asarray(lambdas, np.float64)
        self.order = max(s.order for s in scorers)
        self.scores_only = any(s.scores_only for s in scorers)
        self.name = " + ".join(s.name for s in scorers)
        self.vocab = scorers[0].vocab

    def combine(self, parts: list[Scored]) -> Scored:
        first = parts[0]
        for p in parts[1:]:
            if p.ids.size != first.ids.size:
                raise AssertionError("models tokenized the text differently")
        L = np.stack([p.logp for p in parts])  # (k, T)
        lam = self.lambdas[:, None]
        with np.errstate(divide="ignore"):
            top = L.max(axis=0)
            safe = np.where(np.isfinite(top), top, 0.0)
            acc = (lam * np.power(10.0, L - safe)).sum(axis=0)
            lp = np.log10(acc) + safe
        is_start = (first.ids == BOS_ID) | (first.ids == NO_CONTEXT)
        lp[is_start] = 0.0
        oov = np.logical_and.reduce([p.oov for p in parts])
        order = np.max(np.stack([p.order for p in parts]), axis=0).astype(np.int32)
        zero = (lp <= LOG_ZERO) & ~is_start
        return Scored(first.ids, oov, lp, order, zero, first.n_lines, first.n_dropped)

    def score_text(self, data: bytes, threads: int = 1, fast: bool | None = None) -> Scored:
        return self.combine([s.score_text(data, threads, fast) for s in self.scorers])

    def line_scores(self, data: bytes, threads: int = 1, fast: bool | None = None) -> LineScores:
        return self.score_text(data, threads, fast).line_scores()

    def warm(self) -> None:
        for s in self.scorers:
            s.warm()



def mixture_text_kind(names: list[str], kinds: list[dict | None]) -> dict | None:
    """The one text kind of models scored together (None: none records one, as ARPA files); models
    that read their text differently (characters and words, lower-cased or not) cannot be mixed."""
    from lmtools.io.text import describe_text_kind

    known = [(n, k) for n, k in zip(names, kinds) if k is not None]
    for n, k in known[1:]:
        if k != known[0][1]:
            raise LmError(f"{known[0][0]} is a model of {describe_text_kind(known[0][1])}, {n} of "
                          f"{describe_text_kind(k)}: they read text differently and cannot be mixed",
                          "mix models counted with the same --chars and --lower")
    return known[0][1] if known else None


# ----------------------------------------------------------------------------------------------
# The best weights: EM on held-out text


class Fit:
    """What ``fit_lambdas`` found: the weights, the iterations run, whether the weights settled
    (changed by less than the tolerance), and the log10 likelihood of the fitted tokens."""

    def __init__(self, lambdas: np.ndarray, iterations: int, converged: bool, log10_likelihood: float, tokens: int):
        self.lambdas = lambdas
        self.iterations = iterations
        self.converged = converged
        self.log10_likelihood = log10_likelihood
        self.tokens = tokens

    @property
    def ppl(self) -> float:
        return 10.0 ** (-self.log10_likelihood / self.tokens) if self.tokens else math.nan


def fit_tokens(L: np.ndarray) -> np.ndarray:
    """The tokens the weights are fitted to (bool per column of L, (k, T) log10 p): those that some
    model gives p > 0. A token every model gives p = 0 is a zero-probability token of every mixture,
    left out of perplexity as lm-ppl leaves it out (an OOV that every model gives p ~ 0, which lm-ppl
    counts, adds the same to the likelihood of every mixture: leaving it out moves no weight)."""
    L = np.asarray(L, np.float64)
    return L.max(axis=0, initial=-np.inf) > LOG_ZERO if L.shape[1] else np.zeros(0, np.bool_)


def mixture_log10_likelihood(L: np.ndarray, lambdas) -> float:
    """sum over tokens of log10 sum_k lambda_k 10^L[k, t] (tokens with p = 0 under the mix left out)."""
    L = np.asarray(L, np.float64)
    top = L.max(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mix = np.asarray(lambdas, np.float64) @ np.power(10.0, L - top)
        lp = np.log10(mix) + top
    return float(math.fsum(lp[np.isfinite(lp) & (lp > LOG_ZERO)].tolist()))


def _em_steps(P: np.ndarray, lam: np.ndarray, tol: float, max_iter: int, report=None, L=None):
    """EM steps on token probabilities P (k, T) from lam: (weights, steps run, settled)."""
    it = 0
    while it < max_iter:
        mix = lam @ P
        live = mix > 0.0  # a token only zero-weight models predict: no posterior, left out this step
        R = P[:, live] * (lam[:, None] / mix[live])
        new = R.sum(axis=1) / max(int(live.sum()), 1)
        new /= new.sum()
        it += 1
        moved = float(np.abs(new - lam).max())
        lam = new
        if report is not None:
            report(it, lam, 10.0 ** (-mixture_log10_likelihood(L, lam) / L.shape[1]))
        if moved < tol:
            return lam, it, True
    return lam, it, False


def _loglik(P: np.ndarray, lam: np.ndarray) -> float:
    """sum_t ln(lam . P[:, t]) (-inf when a token gets p = 0)."""
    with np.errstate(divide="ignore"):
        return float(np.log(lam @ P).sum())


def _gradient(P: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """g_k = mean_t p_k(t) / mix(t) over the tokens the mix predicts: 1 for every weight > 0 at the
    best weights, at most 1 for every weight 0 there (the KKT conditions of this concave problem)."""
    mix = lam @ P
    live = mix > 0.0
    return (P[:, live] / mix[live]).mean(axis=1)


def _newton_face(P: np.ndarray, lam: np.ndarray, steps: int = 100) -> np.ndarray:
    """Newton's method on the weights that are nonzero. Each step maximizes the quadratic model of
    the likelihood within sum(lambda) = 1 (the KKT system of the gradient g = sum_t p_t / mix_t and
    Hessian H = -sum_t p_t p_t^T / mix_t^2); a weight the step would take below 0 stops it at 0 and
    leaves the face; a step is halved until the likelihood rises, and none rising ends it."""
    lam = lam.copy()
    f = _loglik(P, lam)
    for _ in range(steps):
        act = np.flatnonzero(lam > 0.0)
        a = act.size
        if a < 2:
            break
        Q = P[act]
        mix = lam[act] @ Q
        live = mix > 0.0
        Qn = Q[:, live] / mix[live]
        g = Qn.sum(axis=1)
        A = np.zeros((a + 1, a + 1))
        A[:a, :a] = -(Qn @ Qn.T)
        A[:a, a] = A[a, :a] = 1.0
        d = np.linalg.lstsq(A, np.concatenate([-g, [0.0]]), rcond=None)[0][:a]
        d -= d.mean()  # exactly along the simplex
        if not (g @ d > 0.0):
            break
        reach = np.full(a, np.inf)  # the step length at which each falling weight reaches 0
        neg = d < 0.0
        reach[neg] = lam[act][neg] / -d[neg]
        t_max = float(reach.min())
        t = min(1.0, t_max)
        for _ in range(60):
            trial = lam.copy()
            trial[act] = lam[act] + t * d
            if t == t_max:
                trial[act[reach <= t_max]] = 0.0  # exactly 0, not a rounding error either side
            trial = np.maximum(trial, 0.0)
            trial /= trial.sum()
            ft = _loglik(P, trial)
            if ft > f or (t == t_max and ft >= f):  # a weight too small to matter leaves at no cost
                break
            t /= 2.0
        else:
            break
        lam, f = trial, ft
    return lam


def _newton(P: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The best weights from EM's, by an active-set Newton method: Newton on the nonzero weights
    (``_newton_face``; a weight it takes to 0 leaves), then any weight at 0 whose gradient says it
    should grow (g_k > 1) comes back with a little weight, and Newton again; until none does. Only the
    models EM left nonzero take part (a model given weight 0 stays at 0)."""
    support = lam > 0.0
    for _ in range(4 * lam.size + 4):
        lam = _newton_face(P, lam)
        g = _gradient(P, lam)
        enter = support & (lam == 0.0) & (g > 1.0 + 1e-12)
        if not enter.any():
            break
        k = int(np.argmax(np.where(enter, g, -np.inf)))
        f = _loglik(P, lam)
        eps = 1e-2
        for _ in range(40):
            trial = lam * (1.0 - eps)
            trial[k] = eps
            if _loglik(P, trial) > f:
                lam = trial
                break
            eps /= 2.0
        else:
            break
    return lam


def fit_lambdas(L: np.ndarray, start=None, tol: float = 1e-6, max_iter: int = 10000, report=None,
                finish: bool = True) -> Fit:
    """Interpolation weights that maximize the likelihood of held-out tokens, by EM (Jelinek and
    Mercer 1980; SRILM's compute-best-mix): with the posterior of model k at token t,
    r_kt = lambda_k p_k(t) / sum_j lambda_j p_j(t), the new lambda_k is the mean of r_kt over the tokens.
    Each step raises the likelihood (the problem is concave in lambda), so the weights approach the
    best mix; iteration stops when no weight moves by ``tol`` or more, or after ``max_iter`` steps.

    ``finish``: then an active-set Newton method takes EM's weights to the best ones (``_newton``),
    kept only if the likelihood rises. EM is slow where the likelihood is flat: a weight whose best
    value is 0 is approached geometrically, by the factor g_k = mean_t p_k(t) / mix(t) < 1 a step
    (slowly when g_k is near 1), so EM alone stops with that model still holding a little weight
    and a perplexity a little above the best (above the better model alone when the other adds
    nothing), and along a flat ridge its steps shrink before the weights arrive.

    ``L``: (k, T) log10 p of each model at each token, -inf or <= -99 for p = 0 (tokens that no model
    gives p > 0 are left out, see ``fit_tokens``). ``start``: the first weights (default uniform);
    a model that starts at 0 stays at 0. ``report(iteration, lambdas, ppl)`` hears of each EM step.
    """
    L = np.asarray(L, np.float64)
    K = L.shape[0]
    L = L[:, fit_tokens(L)]
    T = L.shape[1]
    lam = np.full(K, 1.0 / K) if start is None else np.asarray(start, np.float64).copy()
    if T == 0:
        return Fit(lam, 0, True, 0.0, 0)
    top = L.max(axis=0)
    with np.errstate(under="ignore"):
        P = np.power(10.0, L - top)  # each token scaled by its best model: the posteriors do not change
    lam, it, converged = _em_steps(P, lam, tol, max_iter, report, L)
    if finish and max_iter > 0:
        newton = _newton(P, lam)
        if mixture_log10_likelihood(L, newton) >= mixture_log10_likelihood(L, lam):
            lam = newton
    return Fit(lam, it, converged, mixture_log10_likelihood(L, lam), T)


def round_lambdas(lambdas, digits: int = 6) -> list[float]:
    """The weights rounded to ``digits`` decimals, still summing to 1 (the largest takes the rest):
    printed with that many decimals, they read back as exactly these floats."""
    scale = 10 ** digits
    units = [int(round(float(x) * scale)) for x in lambdas]
    units[int(np.argmax(units))] += scale - sum(units)
    return [u / scale for u in units]


# ----------------------------------------------------------------------------------------------
# Sampling from a mixture


class MixtureSampler(SamplerBase):
    """Sentences drawn from the linear mixture sum_k lambda_k p_k(.|h) of several models' samplers.

    The vocabulary is the union of the models' (lmtools.ngram.mix.union_vocab); a word outside model
    k's vocabulary gets p_k = 0 from it, so every step's distribution sums to one; a history word
    outside it is model k's ``<unk>``. Temperature, top-k and top-p apply to the mixed distribution.
    Sentence i of a seed draws from its own random stream (numpy's PCG64 seeded with (seed, i)), so
    a seed reproduces the output whatever the number of sentences.

    ``scorer``: the ``Mixture`` of the same models; the log10 probability of a sentence is its score
    (each model's own vocabulary, OOVs as that model's ``<unk>``), so that lm-gen --scores prints
    what lm-score prints for the sentence."""

    def __init__(self, samplers: list, lambdas, scorer: "Mixture | None" = None):
        from lmtools.ngram.mix import union_vocab

        self.samplers = samplers
        self.lambdas = np.asarray(lambdas, np.float64)
        self.scores_only = any(s.scores_only for s in samplers)
        self.order = max(s.order for s in samplers)
        self.vocab, self.maps = union_vocab([list(s.vocab) for s in samplers])
        self.history_maps = [np.where(m < 0, UNK_ID, m).astype(np.int32) for m in self.maps]
        # where each model's distribution goes in the union's: a slice when its words come first in
        # their own order (the first model always), else (union ids, model ids)
        self._places = []
        for m in self.maps:
            u = np.flatnonzero(m >= 0)
            if np.array_equal(m[u], np.arange(u.size)) and np.array_equal(u, np.arange(u.size)):
                self._places.append(slice(0, int(u.size)))
            else:
                self._places.append((u, m[u]))
        self.scorer = scorer

    def distribution(self, history: np.ndarray) -> np.ndarray:
        """p(w | <s> history) = sum_k lambda_k p_k(w | <s> history), union-vocabulary order."""
        h = np.asarray(history, np.int64)
        p = np.zeros(len(self.vocab), np.float64)
        for lam, s, place, hm in zip(self.lambdas.tolist(), self.samplers, self._places, self.history_maps):
            if lam == 0.0:
                continue
            d = s.distribution(hm[h])
            if isinstance(place, slice):
                p[place] += lam * d[: place.stop]
            else:
                p[place[0]] += lam * d[place[1]]
        p[BOS_ID] = 0.0
        return p

    def log10_scores(self, rows: list[list[int]], ended: list[bool]) -> np.ndarray:
        """The mixture scorer's log10 p of each sentence (union ids, no <s>), with </s> where ended:
        its per-token numbers summed in token order, as LineScores sums a line."""
        out = np.zeros(len(rows), np.float64)
        if self.scorer is None or not rows:
            return out
        vocab = self.vocab
        data = "".join(" ".join(vocab[w] for w in r) + "\n" for r in rows).encode("utf-8")
        sc = self.scorer.score_text(data)
        starts = sc.starts().tolist() + [int(sc.ids.size)]
        logp = sc.logp.tolist()
        for i in range(len(rows)):
            a, b = starts[i] + 1, starts[i + 1] - (0 if ended[i] else 1)
            total = 0.0
            for v in logp[a:b]:
                total += v
            out[i] = total
        return out

    def prefix_log10(self, prefix: np.ndarray) -> float:
        return float(self.log10_scores([list(np.asarray(prefix).tolist())], [False])[0])

    def sample_all(self, n: int, seed: int, prefix: np.ndarray, opts: "SamplingOptions", chunk: int = 64,
                   threads: int = 0):
        """As SamplerBase.sample_all, in small batches: a mixture draws word by word in Python, and
        `lm-gen ... | head` should see its first sentences at once."""
        return super().sample_all(n, seed, prefix, opts, min(chunk, 64), threads)

    def sample_batch(self, n: int, seed: int, first: int, prefix: np.ndarray, opts: "SamplingOptions",
                     threads: int = 0) -> "Samples":
        if opts.greedy and n > 1:  # one sentence, the same every time
            one = self.sample_batch(1, seed, first, prefix, opts, threads)
            return Samples(np.repeat(one.tokens, n, 0), np.repeat(one.lengths, n), np.repeat(one.ended, n),
                           np.repeat(one.log10, n), one.failed * n)
        pre = [int(x) for x in np.asarray(prefix).tolist()]
        tok = np.zeros((n, opts.max_len), np.int32)
        lens = np.zeros(n, np.int64)
        ended = np.zeros(n, np.bool_)
        failed = 0
        for i in range(n):
            rng = np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, first + i])
            hist = list(pre)
            for t in range(opts.max_len + 1):
                w = choose(self.distribution(np.asarray(hist, np.int64)), opts, rng)
                if w < 0:
                    failed += 1
                    break
                if w == EOS_ID:
                    ended[i] = True
                    break
                if t == opts.max_len:  # cut after max_len words
                    break
                tok[i, t] = w
                hist.append(w)
                lens[i] += 1
        rows = [pre + tok[i, : lens[i]].tolist() for i in range(n)]
        return Samples(tok, lens, ended, self.log10_scores(rows, ended.tolist()), failed)


def choose(p: np.ndarray, opts: "SamplingOptions", rng) -> int:
    """One word drawn from p (a distribution over word ids) as the sampling options say: <s> never,
    <unk> only with allow_unk; p^(1/T); the top_k most likely (ties: the smaller id); then the
    smallest most-likely-first set whose mass reaches top_p of what is left; renormalized.
    Greedy: the most likely word. -1 when no allowed word has probability."""
    q = np.array(p, np.float64)
    q[BOS_ID] = 0.0
    if not opts.allow_unk:
        q[UNK_ID] = 0.0
    pos = np.flatnonzero(q > 0.0)
    if pos.size == 0:
        return -1
    if opts.greedy:
        return int(pos[np.argmax(q[pos])])
    w = q[pos]
    if opts.temperature != 1.0:
        w = (w / w.max()) ** (1.0 / opts.temperature)  # scaled first: no underflow at small T
    if opts.top_k or opts.top_p < 1.0:  # most likely first (ties: the smaller id); else id order will do
        if opts.top_k and opts.top_k < pos.size:
            # the k largest, and every word tied with the k-th (the smaller ids among them win below)
            kth = np.partition(w, pos.size - opts.top_k)[pos.size - opts.top_k]
            near = w >= kth
            pos, w = pos[near], w[near]
        order = np.lexsort((pos, -w))
        pos, w = pos[order], w[order]
        if opts.top_k:
            pos, w = pos[: opts.top_k], w[: opts.top_k]
    cum = np.cumsum(w)
    if opts.top_p < 1.0:
        keep = int(np.searchsorted(cum, opts.top_p * cum[-1], side="left")) + 1
        pos, cum = pos[:keep], cum[:keep]
    x = rng.random() * cum[-1]
    return int(pos[min(int(np.searchsorted(cum, x, side="right")), pos.size - 1)])
