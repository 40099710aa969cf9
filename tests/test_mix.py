"""lm-mix (EM weights, static mixture) and lm-gen's mixtures, against plain-Python references
(tests/naive_mix.py, tests/naive_sample.py) on small Tiny Shakespeare models whose vocabularies
differ (an n-gram KN model, a Witten-Bell one of other lines, a random FFNN)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from tests import naive_mix, naive_sample
from tests.conftest import SHAKESPEARE, error_line
from tests.inprocess import invoke, keep_signal_handlers, ok  # noqa: F401 (an autouse fixture)

LINES = SHAKESPEARE.read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    import signal

    from lmtools.io.models import load_model, save_model
    from lmtools.nn.model import FFNNModel

    d = tmp_path_factory.mktemp("mix")
    (d / "a.txt").write_bytes(b"".join(LINES[:1500]))
    (d / "b.txt").write_bytes(b"".join(LINES[900:2400]))
    (d / "held.txt").write_bytes(b"".join(LINES[2400:2520]) + b"zzqx unseenword the\n")
    (d / "test.txt").write_bytes(b"".join(LINES[2600:2700]))
    (d / "empty.txt").write_bytes(b"")
    saved = {s: signal.getsignal(s) for s in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        ok(invoke("lm-count", "-n", "3", "-o", d / "ca.lm", d / "a.txt"))
        ok(invoke("lm-train", "-o", d / "kn3.lm", d / "ca.lm"))
        ok(invoke("lm-count", "-n", "2", "-o", d / "cb.lm", d / "b.txt"))
        ok(invoke("lm-train", "--method", "wb", "-o", d / "wb2.lm", d / "cb.lm"))
        ok(invoke("lm-train", "--method", "stupid", "-o", d / "sb.lm", d / "cb.lm"))
        ok(invoke("lm-count", "-n", "3", "--chars", "-o", d / "chars.lm", d / "a.txt"))
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    vocab = load_model(str(d / "kn3.lm")).vocab
    rng = np.random.default_rng(4)
    V, dim, hidden = len(vocab), 8, 16
    ffnn = FFNNModel(vocab=list(vocab), context=2, E=rng.standard_normal((V, dim)).astype(np.float32),
                     W=(0.3 * rng.standard_normal((hidden, 2 * dim))).astype(np.float32),
                     b=np.zeros(hidden, np.float32), U=(0.3 * rng.standard_normal((V, hidden))).astype(np.float32),
                     c=np.zeros(V, np.float32))
    buf = io.BytesIO()
    save_model(ffnn, buf)
    (d / "ffnn.lm").write_bytes(buf.getvalue())
    return d


def token_log10(d, model, text):
    """Per-token log10 p of a model (lm-score --words --json), in text order."""
    out = []
    for line in ok(invoke("lm-score", "-m", d / model, "--words", "--json", d / text)).stdout.splitlines():
        out.extend(w["logprob"] for w in json.loads(line)["words"])
    return out


def mix_json(d, *args):
    return json.loads(ok(invoke("lm-mix", *args, "--json")).stdout)


def ppl_json(d, models, lambdas, text):
    args = [a for m in models for a in ("-m", d / m)]
    if lambdas is not None:
        args += ["--lambda", ",".join(f"{x:.6f}" for x in lambdas)]
    return json.loads(ok(invoke("lm-ppl", *args, "--json", d / text)).stdout)["total"]


# ----------------------------------------------------------------------------------------------
# EM


def assert_best(rows, lambdas, slack=1e-4):
    """The weights are the best mix of these per-token probabilities: the KKT conditions, in plain
    Python (slack: the printed weights' 6 decimals)."""
    for lam, g in zip(lambdas, naive_mix.gradient(rows, lambdas)):
        if lam > 0:
            assert abs(g - 1.0) <= slack, (lambdas, g)
        else:
            assert g <= 1.0 + slack, (lambdas, g)


def test_em_weights_are_the_best_for_plain_python(d):
    """Three kinds (KN, Witten-Bell, FFNN) on lm-score's per-token probabilities: the weights lm-mix
    prints satisfy the optimality conditions, their perplexity is no higher than plain-Python EM's
    after as many steps, and a short EM (--max-iter 25) finished by Newton ends at the same weights."""
    models = ["kn3.lm", "wb2.lm", "ffnn.lm"]
    rows = [list(map(lambda x: 10.0 ** x, ps)) for ps in zip(*(token_log10(d, m, "held.txt") for m in models))]
    args = [a for m in models for a in ("-m", d / m)]
    out = mix_json(d, *args, "--lambda", "0.2,0.3,0.5", d / "held.txt")
    assert out["converged"] is True and out["tokens_fitted"] == len(rows)
    assert sum(out["lambdas"]) == pytest.approx(1.0, abs=1e-12) and min(out["lambdas"]) > 0
    assert_best(rows, out["lambdas"])
    em = naive_mix.em(rows, [0.2, 0.3, 0.5], out["iterations"])
    assert out["mixture"]["ppl"] == pytest.approx(naive_mix.perplexity(rows, out["lambdas"]), rel=1e-9)
    assert out["mixture"]["ppl"] <= naive_mix.perplexity(rows, em) * (1 + 1e-9)
    short = mix_json(d, *args, "--lambda", "0.2,0.3,0.5", "--max-iter", "25", "--tol", "1e-300", d / "held.txt")
    assert short["iterations"] == 25 and short["converged"] is False
    assert short["lambdas"] == pytest.approx(out["lambdas"], abs=2e-6)
    for m, entry in zip(models, out["models"]):
        assert entry["ppl"] == pytest.approx(naive_mix.perplexity([[r[models.index(m)]] for r in rows], [1.0]),
                                             rel=1e-9)


def test_fit_lambdas_module_against_reference():
    """lmtools.mixture.fit_lambdas's EM steps on random per-token probabilities, to the last digits;
    with the finish, the best weights."""
    from lmtools.mixture import fit_lambdas

    rng = np.random.default_rng(7)
    L = np.log10(rng.uniform(1e-6, 1.0, size=(4, 300))) - rng.uniform(0, 3, size=(4, 1))
    fit = fit_lambdas(L, [0.1, 0.2, 0.3, 0.4], tol=1e-300, max_iter=40, finish=False)
    rows = [[10.0 ** x for x in col] for col in L.T.tolist()]
    assert fit.lambdas.tolist() == pytest.approx(naive_mix.em(rows, [0.1, 0.2, 0.3, 0.4], 40), abs=1e-12)
    assert fit.iterations == 40 and not fit.converged
    assert fit.ppl == pytest.approx(naive_mix.perplexity(rows, fit.lambdas.tolist()), rel=1e-12)
    best = fit_lambdas(L, [0.1, 0.2, 0.3, 0.4], max_iter=40)
    assert_best(rows, best.lambdas.tolist(), slack=1e-9)
    assert best.ppl <= fit.ppl


@pytest.mark.slow
def test_fit_lambdas_reaches_a_zero_weight():
    """A model that never helps gets weight 0 exactly (plain EM only creeps towards it), and the
    mixture's perplexity is the better model's; one that helps on a few tokens keeps the weight the
    grid finds."""
    from lmtools.mixture import fit_lambdas

    rng = np.random.default_rng(3)
    L1 = np.log10(rng.uniform(1e-4, 1.0, 3000))
    useless = L1 + math.log10(0.999)
    fit = fit_lambdas(np.stack([L1, useless]))
    assert fit.lambdas.tolist() == [1.0, 0.0]
    alone = naive_mix.perplexity([[10.0 ** x] for x in L1.tolist()], [1.0])
    assert fit.ppl <= alone * (1 + 1e-12)
    helpful = L1 + math.log10(0.99)
    helpful[:5] += 1.0  # much better on a few tokens: the best mix gives it a little weight
    fit = fit_lambdas(np.stack([L1, helpful]))
    assert fit.converged
    rows = [[10.0 ** a, 10.0 ** b] for a, b in zip(L1.tolist(), helpful.tolist())]
    grid = [i / 5000 for i in range(1001)]  # lambda_2 in [0, 0.2]
    ppls = [naive_mix.perplexity(rows, [1 - x, x]) for x in grid]
    best = min(range(len(grid)), key=ppls.__getitem__)
    assert 0 < best < len(grid) - 1
    assert fit.lambdas[1] == pytest.approx(grid[best], abs=2e-4)
    assert fit.ppl <= ppls[best] * (1 + 1e-12) and fit.ppl < alone


def test_em_perplexity_is_lm_ppl_and_the_best(d):
    """The printed weights' perplexity is what lm-ppl prints for that mixture (to the last bit), and no
    more than each model alone or the uniform mixture."""
    models = ["kn3.lm", "wb2.lm", "ffnn.lm"]
    out = mix_json(d, *[a for m in models for a in ("-m", d / m)], d / "held.txt")
    assert out["converged"] is True
    lm_ppl = ppl_json(d, models, out["lambdas"], "held.txt")
    assert lm_ppl == out["mixture"]
    for m, entry in zip(models, out["models"]):
        alone = ppl_json(d, [m], None, "held.txt")
        assert entry["ppl"] == alone["ppl"]
        assert out["mixture"]["ppl"] <= alone["ppl"]
    assert out["mixture"]["ppl"] <= out["uniform"]["ppl"] == ppl_json(d, models, None, "held.txt")["ppl"]
    text = ok(invoke("lm-mix", *[a for m in models for a in ("-m", d / m)], d / "held.txt")).stdout.splitlines()
    assert text[-1] == "--lambda " + ",".join(f"{x:.6f}" for x in out["lambdas"])
    assert f"perplexity {out['mixture']['ppl']:.4f}" in text[-2]


@pytest.mark.slow
def test_em_finds_the_grid_minimum_for_two_models(d):
    """K = 2: the perplexity over a grid of weights has its minimum where EM ends."""
    rows = [[10.0 ** a, 10.0 ** b] for a, b in zip(token_log10(d, "kn3.lm", "held.txt"),
                                                    token_log10(d, "wb2.lm", "held.txt"))]
    grid = [i / 2000 for i in range(2001)]
    ppls = [naive_mix.perplexity(rows, [x, 1 - x]) for x in grid]
    best = min(range(len(grid)), key=ppls.__getitem__)
    assert 0 < best < len(grid) - 1  # an inner minimum: the test could fail
    out = mix_json(d, "-m", d / "kn3.lm", "-m", d / "wb2.lm", "--tol", "1e-9", d / "held.txt")
    assert abs(out["lambdas"][0] - grid[best]) <= 1e-3
    assert out["mixture"]["ppl"] <= ppls[best] * (1 + 1e-12)
    assert out["mixture"]["ppl"] == pytest.approx(naive_mix.perplexity(rows, out["lambdas"]), rel=1e-9)


def test_skip_oovs_fits_the_other_figure(d):
    """--skip-oovs: the mixture's OOVs (outside both vocabularies) are left out of the fit."""
    a, b = token_log10(d, "kn3.lm", "held.txt"), token_log10(d, "wb2.lm", "held.txt")
    words = []
    for line in ok(invoke("lm-score", "-m", d / "kn3.lm", "--words", "--json", d / "held.txt")).stdout.splitlines():
        words.extend(w["word"] for w in json.loads(line)["words"])
    from lmtools.io.models import load_model

    va, vb = set(load_model(str(d / "kn3.lm")).vocab), set(load_model(str(d / "wb2.lm")).vocab)
    rows = [[10.0 ** x, 10.0 ** y] for x, y, w in zip(a, b, words) if w in va or w in vb]
    assert len(rows) < len(a)
    out = mix_json(d, "-m", d / "kn3.lm", "-m", d / "wb2.lm", "--skip-oovs", "--max-iter", "30", "--tol", "1e-300",
                   d / "held.txt")
    assert out["objective"] == "ppl_excl_oov" and out["tokens_fitted"] == len(rows)
    assert_best(rows, out["lambdas"])
    every = [[10.0 ** x, 10.0 ** y] for x, y in zip(a, b)]
    assert naive_mix.gradient(every, out["lambdas"]) != pytest.approx([1.0, 1.0], abs=1e-4)  # another optimum


# ----------------------------------------------------------------------------------------------
# Static mixture


def _models(d, *names):
    from lmtools.io.models import load_model
    from lmtools.ngram.smoothing import smooth_if_counts

    return [smooth_if_counts(load_model(str(d / n))) for n in names]


def test_static_mixture_equals_plain_python_merge(d):
    from lmtools.ngram.mix import static_mixture

    a, b = _models(d, "kn3.lm", "wb2.lm")
    mixed = static_mixture([a, b], [0.7, 0.3])
    vocab, lp, bo = naive_mix.static_mixture([naive_mix.WordModel(a), naive_mix.WordModel(b)], [0.7, 0.3])
    assert mixed.vocab == vocab
    got_lp, got_bo = {}, {}
    for n in range(1, mixed.order + 1):
        for row, p, w in zip(mixed.ngrams[n - 1].tolist(), mixed.logprob[n - 1].tolist(),
                             mixed.backoff[n - 1].tolist()):
            key = tuple(vocab[i] for i in row)
            got_lp[key], got_bo[key] = p, w
    assert set(got_lp) == set(lp)
    assert len(lp) > len(naive_mix.WordModel(a).lp)  # the union is more than one model
    bad = [k for k in lp if abs(got_lp[k] - lp[k]) > 2e-6]
    assert not bad, bad[:5]
    bad = [k for k in bo if abs(got_bo[k] - bo[k]) > 2e-5]
    assert not bad, bad[:5]


def test_static_mixture_sums_to_one_and_equals_dynamic(d):
    """Every context sums to one over the union vocabulary (contexts of the model and unseen ones),
    and an n-gram explicit in the union has the dynamic mixture's probability where both models know
    its words."""
    from lmtools.ngram.mix import static_mixture

    a, b = _models(d, "kn3.lm", "wb2.lm")
    mixed = static_mixture([a, b], [0.4, 0.6])
    ma, mb, ms = naive_mix.WordModel(a), naive_mix.WordModel(b), naive_mix.WordModel(mixed)
    assert set(ma.words) != set(mb.words)
    rng = np.random.default_rng(1)
    contexts = [()]
    for n in (2, 3):
        g = mixed.ngrams[n - 1]
        for r in rng.choice(g.shape[0], 12, replace=False):
            contexts.append(tuple(mixed.vocab[i] for i in g[r, :-1]))
    contexts += [("zzq", "the"), ("the", "zzq"), (ma.words[50], mb.words[60])]
    for h in contexts:
        total = math.fsum(naive_mix.prob(ms.log10(list(h), w)) for w in mixed.vocab if w != "<s>")
        assert total == pytest.approx(1.0, abs=2e-5), h
    shared = set(ma.words) & set(mb.words)
    checked = 0
    for n in (1, 2, 3):
        g = mixed.ngrams[n - 1]
        for r in rng.choice(g.shape[0], 200, replace=False):
            key = [mixed.vocab[i] for i in g[r]]
            if key == ["<s>"] or not all(w in shared for w in key):
                continue
            dyn = 0.4 * naive_mix.prob(ma.log10(key[:-1], key[-1])) + 0.6 * naive_mix.prob(mb.log10(key[:-1], key[-1]))
            assert ms.log10(key[:-1], key[-1]) == pytest.approx(math.log10(dyn), abs=2e-6)
            checked += 1
    assert checked > 200


def test_static_mixture_cli(d, tmp_path):
    """-o (fitted or --lambda weights), --arpa to stdout, the same model; static vs dynamic perplexity."""
    from lmtools.io.arpa import read_arpa
    from lmtools.io.models import load_model

    out = mix_json(d, "-m", d / "kn3.lm", "-m", d / "cb.lm", d / "held.txt", "-o", tmp_path / "fit.lm")
    assert out["output"] == str(tmp_path / "fit.lm")
    r = ok(invoke("lm-ppl", "-m", tmp_path / "fit.lm", "--json", d / "held.txt"))
    static = json.loads(r.stdout)["total"]
    assert static == out["static"]
    assert static["ppl"] == pytest.approx(out["mixture"]["ppl"], rel=0.05)
    m = load_model(str(tmp_path / "fit.lm"))
    assert m.method == "mix" and m.info["lambdas"] == out["lambdas"] and m.text == {"chars": False, "lower": False}
    ok(invoke("lm-mix", "-m", d / "kn3.lm", "-m", d / "wb2.lm", "--lambda", "0.25", "-o", tmp_path / "given.lm"))
    r = ok(invoke("lm-mix", "-m", d / "kn3.lm", "-m", d / "wb2.lm", "--lambda", "0.25", "--arpa"))
    from_arpa = read_arpa(io.BytesIO(r.stdout_bytes))
    given = load_model(str(tmp_path / "given.lm"))
    assert given.info["lambdas"] == [0.25, 0.75]
    assert from_arpa.vocab == given.vocab
    for n in range(given.order):
        assert np.array_equal(from_arpa.ngrams[n], given.ngrams[n])
        assert np.allclose(from_arpa.logprob[n], given.logprob[n], atol=1e-6)


# ----------------------------------------------------------------------------------------------
# lm-gen from a mixture


LAMBDAS = [0.35, 0.65]


@pytest.fixture(scope="module")
def first_word(d):
    """The reference distribution of the first word: each model's p(w | <s>) by the back-off rule,
    mixed with LAMBDAS over the union vocabulary (a word missing from a model: 0 from it)."""
    a, b = _models(d, "kn3.lm", "wb2.lm")
    vocab = ["<unk>", "<s>", "</s>"] + [w for w in a.vocab[3:]] + [w for w in b.vocab[3:] if w not in set(a.vocab)]
    ia, ib = {w: i for i, w in enumerate(a.vocab)}, {w: i for i, w in enumerate(b.vocab)}
    pa, pb = naive_sample.distribution(a, [1]), naive_sample.distribution(b, [1])
    p = [LAMBDAS[0] * (pa[ia[w]] if w in ia else 0.0) + LAMBDAS[1] * (pb[ib[w]] if w in ib else 0.0) for w in vocab]
    return vocab, p


@pytest.mark.slow
@pytest.mark.parametrize("opts", [{}, {"temperature": 0.6, "top_k": 40}, {"top_p": 0.5}])
def test_mixture_sampler_first_word_frequencies(d, first_word, opts):
    from lmtools.kinds import mixture_sampler
    from lmtools.ngram.sample import check_options

    stats = pytest.importorskip("scipy.stats")
    a, b = _models(d, "kn3.lm", "wb2.lm")
    s = mixture_sampler([a, b], ["a", "b"], LAMBDAS)
    vocab, p = first_word
    q = naive_sample.truncated(p, **opts)
    assert s.vocab == vocab
    assert s.distribution(np.zeros(0, np.int32)) == pytest.approx(p, abs=1e-9)
    n = 4000
    batch = s.sample_batch(n, 11, 0, np.zeros(0, np.int32), check_options(max_len=1, **opts))
    first = np.where(batch.lengths > 0, batch.tokens[:, 0], 2)  # </s> drawn first: an empty sentence
    seen = np.bincount(first, minlength=len(vocab))
    expected = np.asarray(q) * n
    big = expected >= 5
    assert big.sum() >= 5
    obs = np.append(seen[big], seen[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    assert seen[np.asarray(q) == 0].sum() == 0  # nothing the options exclude is drawn
    chi2, pval = stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum())
    assert pval > 1e-4, (chi2, pval)


def test_gen_mixture_scores_equal_lm_score_and_seed_repeats(d, tmp_path):
    args = ["-m", d / "kn3.lm", "-m", d / "wb2.lm", "-m", d / "ffnn.lm", "--lambda", "0.5,0.3"]
    r = ok(invoke("lm-gen", *args, "-s", "25", "--seed", "5", "--scores", "--max-len", "300"))
    again = ok(invoke("lm-gen", *args, "-s", "25", "--seed", "5", "--scores", "--max-len", "300"))
    other = ok(invoke("lm-gen", *args, "-s", "25", "--seed", "6", "--scores", "--max-len", "300"))
    assert r.stdout == again.stdout != other.stdout
    rows = [line.split("\t", 1) for line in r.stdout.splitlines()]
    assert len(rows) == 25 and sum(1 for _, s in rows if s.strip()) > 10
    (tmp_path / "s.txt").write_text("".join(s + "\n" for _, s in rows))
    scored = ok(invoke("lm-score", *args, tmp_path / "s.txt")).stdout.splitlines()
    assert [x.split("\t")[0] for x in scored] == [x for x, _ in rows]
    # the first sentences of a seed do not depend on how many are drawn
    few = ok(invoke("lm-gen", *args, "-s", "5", "--seed", "5", "--scores", "--max-len", "300"))
    assert few.stdout.splitlines() == r.stdout.splitlines()[:5]


def test_gen_mixture_next_and_prefix(d, first_word):
    vocab, p = first_word
    out = ok(invoke("lm-gen", "-m", d / "kn3.lm", "-m", d / "wb2.lm", "--lambda", "0.35", "--next", "", "--top", "0"))
    got = {w: float(x) for w, x, _ in (line.split("\t") for line in out.stdout.splitlines())}
    assert set(got) == {w for w, x in zip(vocab, p) if x > 0}
    for w, x in zip(vocab, p):
        if x > 0:
            assert got[w] == pytest.approx(x, rel=1e-5)
    r = ok(invoke("lm-gen", "-m", d / "kn3.lm", "-m", d / "wb2.lm", "--prefix", "I am", "-s", "3", "--seed", "2"))
    assert all(line.startswith("I am") for line in r.stdout.splitlines())


# ----------------------------------------------------------------------------------------------
# Bad input: one line, exit 2 (usage) or 1 (data)


@pytest.mark.parametrize("args,code,words", [
    (["-m", "{d}/kn3.lm", "{d}/held.txt"], 2, "two or more"),
    (["{d}/held.txt"], 2, "two or more"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm"], 2, "no held-out text"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "--lambda", "0.5"], 2, "nothing to fit or write"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "--lambda", "1.5", "{d}/held.txt"], 2, "[0, 1]"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "--lambda", "0.5,0.2", "{d}/held.txt"], 2, "not 1"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "--tol", "0", "{d}/held.txt"], 2, "--tol"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "--max-iter", "-1", "{d}/held.txt"], 2, "--max-iter"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "--max-iter", "0", "{d}/held.txt"], 2, "--max-iter 0"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "--lambda", "0.5", "--tol", "1e-3", "--arpa"], 2, "--tol"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "--lambda", "0.5", "--arpa", "--json"], 2, "--json"),
    (["-m", "-", "-m", "{d}/wb2.lm", "-"], 2, "stdin"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "{d}/held.txt", "-o", "{d}/kn3.lm"], 1, "kn3.lm"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/ffnn.lm", "{d}/held.txt", "-o", "{d}/never.lm"], 1, "n-gram models"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/sb.lm", "{d}/held.txt"], 1, "stupid-backoff"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/chars.lm", "{d}/held.txt"], 1, "cannot be mixed"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/nothere.lm", "{d}/held.txt"], 1, "nothere.lm"),
    (["-m", "{d}/kn3.lm", "-m", "{d}/wb2.lm", "{d}/empty.txt"], 1, "no token to fit"),
])
def test_bad_input(d, args, code, words):
    r = invoke("lm-mix", *[a.format(d=d) for a in args])
    line = error_line(r, "lm-mix", code)
    assert words in line
    assert not (d / "never.lm").exists()


def test_gen_refuses_a_stupid_backoff_mixture(d):
    line = error_line(invoke("lm-gen", "-m", d / "kn3.lm", "-m", d / "sb.lm", "-s", "1"), "lm-gen", 1)
    assert "stupid-backoff" in line


def test_static_mixture_of_arpa_files_is_the_same_model(d, tmp_path):
    """ARPA inputs (lm-train --arpa of the same models) give the same static mixture."""
    from lmtools.io.models import load_model

    for name in ("kn3", "wb2"):
        (tmp_path / f"{name}.arpa").write_bytes(ok(invoke("lm-train", "--arpa", d / f"{name}.lm")).stdout_bytes)
    ok(invoke("lm-mix", "-m", d / "kn3.lm", "-m", d / "wb2.lm", "--lambda", "0.3", "-o", tmp_path / "a.lm"))
    ok(invoke("lm-mix", "-m", tmp_path / "kn3.arpa", "-m", tmp_path / "wb2.arpa", "--lambda", "0.3",
              "-o", tmp_path / "b.lm"))
    a, b = load_model(str(tmp_path / "a.lm")), load_model(str(tmp_path / "b.lm"))
    assert a.vocab == b.vocab and a.sizes() == b.sizes()
    for n in range(a.order):
        assert np.array_equal(a.ngrams[n], b.ngrams[n])
        assert np.allclose(a.logprob[n], b.logprob[n], atol=1e-6) and np.allclose(a.backoff[n], b.backoff[n], atol=1e-5)


def test_gen_mixture_greedy_takes_the_mixed_argmax(d):
    """Each greedy word is the most likely word of the mixed distribution (lm-gen --next) after the words so far."""
    args = ["-m", d / "kn3.lm", "-m", d / "wb2.lm", "--lambda", ",".join(map(str, LAMBDAS))]
    words = ok(invoke("lm-gen", *args, "--greedy", "--prefix", "I am", "--max-len", "4")).stdout.split()[2:]
    history = ["I", "am"]
    for step in range(4):
        rows = ok(invoke("lm-gen", *args, "--next", " ".join(history), "--top", "2")).stdout.splitlines()
        top = [r.split("\t")[0] for r in rows if r.split("\t")[0] != "<unk>"][0]
        if top == "</s>":
            assert len(words) == step
            break
        assert words[step] == top
        history.append(top)
    assert len(history) > 2


@pytest.mark.slow
def test_mixture_with_an_ffnn_after_a_history(d):
    """KN + FFNN after "I am": the mixed distribution against the back-off rule and the FFNN's
    forward pass written out (tests/naive_ffnn.py), and the first words drawn at temperature 0.8
    (chi-square against the tempered mixed distribution)."""
    from lmtools.io.models import load_model
    from lmtools.kinds import mixture_sampler
    from lmtools.ngram.sample import check_options
    from tests import naive_ffnn

    stats = pytest.importorskip("scipy.stats")
    (a,) = _models(d, "kn3.lm")
    f = load_model(str(d / "ffnn.lm"))
    s = mixture_sampler([a, f], ["kn", "ffnn"], [0.4, 0.6])
    assert s.vocab == list(a.vocab)
    hist, oov = s.encode(["I", "am"])
    assert oov == 0
    pk = naive_sample.distribution(a, [1] + hist.tolist())
    ctx = ([1, 1] + hist.tolist())[-f.context:]
    e = np.concatenate([f.E[w] for w in ctx]).astype(np.float64)
    hidden = naive_ffnn.act_fwd(f.W.astype(np.float64) @ e + f.b, f.activation)
    pf = np.exp(naive_ffnn.log_softmax(f.U.astype(np.float64) @ hidden + f.c, naive_ffnn.BOS))
    p = 0.4 * np.asarray(pk) + 0.6 * pf
    assert s.distribution(hist) == pytest.approx(p, rel=1e-4, abs=1e-9)
    q = np.asarray(naive_sample.truncated(p.tolist(), temperature=0.8))
    n = 3000
    batch = s.sample_batch(n, 21, 0, hist, check_options(temperature=0.8, max_len=1))
    first = np.where(batch.lengths > 0, batch.tokens[:, 0], 2)
    seen = np.bincount(first, minlength=len(p))
    expected = q * n
    big = expected >= 5
    obs = np.append(seen[big], seen[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    assert big.sum() >= 5
    chi2, pval = stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum())
    assert pval > 1e-4, (chi2, pval)
