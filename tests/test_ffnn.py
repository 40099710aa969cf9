"""The feedforward neural LM: kernels against the numpy reference, gradients, training, model file."""

import io
import math
from dataclasses import replace

import click
import numpy as np
import pytest

from click.testing import CliRunner

from lmtools.errors import LmError
from lmtools.kernels import ffnn as K
from lmtools.cli.ffnn_options import ffnn_options, run_ffnn_training
from lmtools.nn.model import FFNNModel, frequency_classes
from lmtools.nn.train import Trainer, TrainConfig, TrainingDiverged, init_model, perplexity, train
from tests import naive_ffnn as NV

# The FFNN kernels' own checks (finite-difference gradients, optimizers, layouts) compile every float32/
# float64 and layer variant in process: minutes on 2 cores. They run in the slow set (CI runs it), so that
# make test stays short; the programs' FFNN paths are still exercised there by the CLI tests.
pytestmark = pytest.mark.slow

V = 23
VOCAB = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(3, V)]


def random_stream(seed=0, sentences=30, V=V):
    rng = np.random.default_rng(seed)
    ids = []
    for _ in range(sentences):
        ids.append(1)
        ids += list(rng.integers(3, V, size=rng.integers(0, 7)))
        ids.append(2)
    return np.array(ids, np.int32)


def make(layer="softmax", act="tanh", dtype="float64", u_layout="vh", **kw):
    ids = random_stream()
    cfg = TrainConfig(context=3, dim=4, hidden=5, dtype=dtype, output_layer=layer, classes=4, u_layout=u_layout,
                      activation=act, batch=16, **kw)
    model = init_model(cfg, VOCAB, np.bincount(ids, minlength=V))
    rng = np.random.default_rng(5)
    model.b[:] = rng.standard_normal(model.b.shape) * 0.3  # biases start at 0: make them matter
    model.c[:] += rng.standard_normal(model.c.shape).astype(model.c.dtype) * 0.3
    return cfg, model, ids


def kernel_grads(cfg, model, X, Y, rows, me=None, mh=None, parts=1):
    tr = Trainer(model, cfg)
    bufs = tr.bufs._replace(me=tr.bufs.me if me is None else me, mh=tr.bufs.mh if mh is None else mh)
    loss = K.forward_backward(tr.P, tr.G, tr.net, X, tr.out_ids(Y), rows, bufs, tr.touched, 0.0, 0.0, parts)
    return loss, tr.to_model(tr.G).param_arrays()


def test_examples_match_reference():
    ids = random_stream(3)
    for ctx in (1, 2, 5):
        X, Y, pos = K.build_examples(ids, ctx)
        Xn, Yn = NV.examples(ids, ctx)
        assert np.array_equal(X, Xn) and np.array_equal(Y, Yn)
        assert np.array_equal(ids[pos], Y)


@pytest.mark.parametrize("layer", ["softmax", "class"])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("u_layout", ["vh", "hv"])
def test_forward_backward_matches_numpy_reference(layer, act, u_layout):
    # parts > 1: every GEMM split over numba's threads (more parts than threads is fine)
    cfg, model, ids = make(layer, act, u_layout=u_layout)
    X, Y, _ = K.build_examples(ids, 3)
    rows = np.arange(3, 19, dtype=np.int64)
    ref_loss, ref = NV.forward_backward(model.param_arrays(), X[rows], Y[rows], act)
    for parts in (1, 3):
        loss, g = kernel_grads(cfg, model, X, Y, rows, parts=parts)
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        for k in ref:
            np.testing.assert_allclose(g[k], ref[k], rtol=1e-9, atol=1e-13, err_msg=f"{k} parts={parts}")


@pytest.mark.parametrize("layer", ["softmax", "class"])
def test_dropout_masks_enter_forward_and_backward(layer):
    cfg, model, ids = make(layer)
    X, Y, _ = K.build_examples(ids, 3)
    rows = np.arange(16, dtype=np.int64)
    me = np.zeros((16, 12))
    mh = np.zeros((16, 5))
    state = np.array([12345], np.uint64)
    K.fill_dropout_mask(me, 0.7, state)
    K.fill_dropout_mask(mh, 0.6, state)
    loss, g = kernel_grads(cfg, model, X, Y, rows, me, mh)
    ref_loss, ref = NV.forward_backward(model.param_arrays(), X[rows], Y[rows], "tanh", me, mh)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k in ref:
        np.testing.assert_allclose(g[k], ref[k], rtol=1e-9, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("layer,dropout", [("softmax", 0.0), ("class", 0.3)])
def test_trainer_structures_have_the_documented_shapes(layer, dropout):
    # the named structures the kernels read by field: a swapped field would be a wrong shape here
    cfg, model, ids = make(layer, dropout=dropout)
    tr = Trainer(model, cfg)
    B, md, H, C = cfg.batch, 3 * model.dim, model.hidden, model.n_classes
    maxc = int(np.bincount(model.word_class).max()) if C else 1
    want = {"e": (B, md), "h": (B, H), "z": (B, C if C else V), "dh": (B, H), "de": (B, md), "loss": (B,),
            "gw": (B, maxc) if C else (0, 1), "me": (B, md) if dropout else (0, md), "mh": (B, H) if dropout else (0, H)}
    assert {k: getattr(tr.bufs, k).shape for k in K.Buffers._fields} == want
    assert tr.bufs.loss.dtype == np.float64 and tr.bufs.e.dtype == model.E.dtype
    assert tr.touched.e_rows.shape == (V + 1,) and tr.touched.mark.shape == (V + C,)
    assert tr.P.Wt.shape == (md, H) and tr.P.U.shape == (V, H) and tr.P.Uc.shape == ((C, H) if C else (0, H))
    assert [a.shape for a in tr.G] == [a.shape for a in tr.P]
    # plain SGD keeps no state: every moment has 0 rows
    assert all(a.shape[0] == 0 for s in tr.S for a in s)
    opts = tr.options(2)
    assert (opts.keep_e, opts.keep_h, opts.batch, opts.parts) == (1 - dropout, 1 - dropout, B, 2)
    assert isinstance(K.Options.make(0, 1, 0, 0, 0.9, 0.999, 1, 1, 8, 1).lr, float)


def test_dropout_mask_statistics():
    m = np.zeros((200, 100), np.float32)
    K.fill_dropout_mask(m, 0.75, np.array([7], np.uint64))
    assert set(np.unique(m)) == {0.0, np.float32(1 / 0.75)}
    assert abs((m > 0).mean() - 0.75) < 0.01


@pytest.mark.parametrize("layer", ["softmax", "class"])
def test_gradients_by_finite_differences(layer):
    cfg, model, ids = make(layer, "tanh")
    X, Y, _ = K.build_examples(ids, 3)
    rows = np.arange(16, dtype=np.int64)
    _, g = kernel_grads(cfg, model, X, Y, rows)
    params = {k: v.copy() for k, v in model.param_arrays().items()}
    rng = np.random.default_rng(0)
    h = 1e-6
    for name in ("E", "W", "b", "U", "c") + (("Uc", "cc") if layer == "class" else ()):
        p = params[name]
        # every parameter that has a gradient, plus random others
        idx = set(map(tuple, np.argwhere(g[name] != 0)[:40]))
        idx |= {tuple(rng.integers(0, s) for s in p.shape) for _ in range(10)}
        for i in idx:
            old = p[i]
            p[i] = old + h
            up = NV.loss(params, X[rows], Y[rows])
            p[i] = old - h
            down = NV.loss(params, X[rows], Y[rows])
            p[i] = old
            num = (up - down) / (2 * h)
            assert abs(num - g[name][i]) < 1e-7 + 1e-5 * abs(num), (name, i, num, g[name][i])


@pytest.mark.parametrize("layer", ["softmax", "class"])
def test_probabilities_sum_to_one(layer):
    cfg, model, ids = make(layer, dtype="float32")
    rng = np.random.default_rng(1)
    ctx = rng.integers(0, V, size=(50, 3)).astype(np.int32)
    lp = model.next_log10_probs(ctx)
    assert lp.shape == (50, V)
    np.testing.assert_allclose((10.0 ** lp).sum(axis=1), 1.0, rtol=1e-5)


def _bos_alone(model):
    """The class layer with <s> moved into a class of its own (the class then gets p = 0 too)."""
    C = model.n_classes
    wc = model.word_class.copy()
    wc[1] = C
    rng = np.random.default_rng(2)
    Uc = np.vstack([model.Uc, rng.standard_normal((1, model.hidden)).astype(model.Uc.dtype)])
    cc = np.append(model.cc, model.cc.max() + 5).astype(model.cc.dtype)  # a large logit: must still get 0
    return FFNNModel(model.vocab, model.context, model.E, model.W, model.b, model.U, model.c, model.activation,
                     word_class=wc, Uc=Uc, cc=cc)


@pytest.mark.parametrize("layer", ["softmax", "class", "class-alone"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bos_is_never_predicted(layer, dtype):
    """p(<s>|h) = 0 and the other words sum to one, even when <s> has the largest logit; training
    leaves <s> out of the softmax (no gradient reaches its output row) as the reference does."""
    cfg, model, ids = make(layer.split("-")[0], dtype=dtype)
    model.c[1] = model.c.max() + 5  # the largest logit of its softmax
    if layer == "class-alone":
        model = _bos_alone(model)
    rng = np.random.default_rng(1)
    ctx = rng.integers(0, V, size=(40, 3)).astype(np.int32)
    lp = model.next_log10_probs(ctx)
    assert np.all(lp[:, 1] == -np.inf)
    np.testing.assert_allclose((10.0 ** lp[:, np.arange(V) != 1]).sum(axis=1), 1.0, rtol=1e-5)
    # scoring agrees with the distribution
    X, Y, pos = K.build_examples(ids, 3)
    sc = model.score_ids(ids)
    np.testing.assert_allclose(sc[pos], model.next_log10_probs(X)[np.arange(len(Y)), Y],
                               rtol=1e-5 if dtype == "float32" else 1e-10)
    if dtype == "float64":
        rows = np.arange(16, dtype=np.int64)
        loss, g = kernel_grads(cfg, model, X, Y, rows)
        ref_loss, ref = NV.forward_backward(model.param_arrays(), X[rows], Y[rows])
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        assert np.all(g["U"][1] == 0) and g["c"][1] == 0
        if layer == "class-alone":
            assert np.all(g["Uc"][-1] == 0) and g["cc"][-1] == 0
        for k in ref:
            np.testing.assert_allclose(g[k], ref[k], rtol=1e-9, atol=1e-13, err_msg=k)


def test_trained_model_gives_bos_no_probability():
    cfg, model, ids = make("softmax", dtype="float32", epochs=2)
    trained = train(replace(cfg, epochs=2), VOCAB, ids)
    lp = trained.next_log10_probs(np.array([[1, 1, 1], [1, 5, 7]], np.int32))
    assert np.all(lp[:, 1] == -np.inf)
    np.testing.assert_allclose((10.0 ** lp).sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("layer", ["softmax", "class"])
def test_score_ids_agree_with_distribution(layer):
    cfg, model, ids = make(layer)
    lp = model.score_ids(ids)
    assert lp.shape == ids.shape and np.all(lp[ids == 1] == 0.0) and np.all(lp[ids != 1] < 0)
    X, Y, pos = K.build_examples(ids, 3)
    full = model.next_log10_probs(X)
    np.testing.assert_allclose(lp[pos], full[np.arange(len(Y)), Y], rtol=1e-10)
    # and with the numpy reference
    ref = [-NV.forward_backward(model.param_arrays(), X[i:i + 1], Y[i:i + 1])[0] / math.log(10) for i in range(9)]
    np.testing.assert_allclose(lp[pos[:9]], ref, rtol=1e-10)


def tiny_corpus(words=None):
    words = words or [["the", "cat", "sat"], ["a", "dog", "ran", "home"], ["my", "bird", "flew", "away", "fast"]]
    vocab = ["<unk>", "<s>", "</s>"] + sorted({w for s in words for w in s})
    ix = {w: i for i, w in enumerate(vocab)}
    ids = np.array([t for s in words for t in [1] + [ix[w] for w in s] + [2]], np.int32)
    return vocab, ids


@pytest.mark.parametrize("layer,opt", [("softmax", "adam"), ("class", "adam"), ("softmax", "sgd")])
def test_overfits_tiny_corpus(layer, opt):
    # one sentence: every token is determined by the previous two (the -> cat / mat / dog)
    vocab, ids = tiny_corpus(["the cat sat on the mat and the dog ran home".split()])
    cfg = TrainConfig(context=3, dim=16, hidden=32, epochs=30, batch=8, optimizer=opt,
                      lr=0.01 if opt == "adam" else 1.0, output_layer=layer, classes=3)
    model = train(cfg, vocab, np.tile(ids, 20))
    assert perplexity(model, ids) < 1.05
    # three sentences: only the first word of each is uncertain (1 in 3), so the best
    # achievable training perplexity is 3 ** (3 / 15)
    vocab, ids = tiny_corpus()
    model = train(cfg, vocab, np.tile(ids, 20))
    assert perplexity(model, ids) < 1.03 * 3 ** (3 / 15)


def test_same_seed_identical_model_other_seed_not():
    vocab, ids = tiny_corpus()
    data = np.tile(ids, 5)

    def fit(seed):
        cfg = TrainConfig(context=2, dim=8, hidden=8, epochs=3, batch=4, seed=seed, dropout=0.3, optimizer="momentum")
        buf = io.BytesIO()
        from lmtools.io.models import save_model

        m = train(cfg, vocab, data, data)
        m.provenance["training"]["epochs"] = [{k: v for k, v in e.items() if k != "seconds"}
                                              for e in m.provenance["training"]["epochs"]]
        save_model(m, buf)
        return m, buf.getvalue()

    a, fa = fit(3)
    b, fb = fit(3)
    c, _ = fit(4)
    for k, v in a.param_arrays().items():
        assert np.array_equal(v, b.param_arrays()[k]), k
    assert fa == fb
    assert not np.array_equal(a.E, c.E)


@pytest.mark.parametrize("layer", ["softmax", "class"])
def test_model_file_roundtrip(layer):
    from lmtools.io.models import load_model, save_model

    cfg, model, ids = make(layer, dtype="float32")
    buf = io.BytesIO()
    save_model(model, buf)
    buf.seek(0)
    back = load_model(buf)
    assert isinstance(back, FFNNModel) and back.vocab == model.vocab and back.output_layer == layer
    assert np.array_equal(back.score_ids(ids), model.score_ids(ids))
    header, arrays = model.to_file_parts()
    arrays["W"] = arrays["W"][:, :-1]
    with pytest.raises(LmError, match="corrupt ffnn model"):
        FFNNModel.from_file_parts(header, arrays)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adagrad", "adam"])
def test_optimizers_reduce_loss_and_layouts_agree(opt):
    ids = random_stream(2, 60)
    res = {}
    for lay in ("vh", "hv"):
        cfg = TrainConfig(context=2, dim=8, hidden=10, epochs=3, batch=8, optimizer=opt, u_layout=lay, l2=1e-4,
                          dtype="float64")
        m = train(cfg, VOCAB, ids)
        ppl = [e["train_ppl"] for e in m.provenance["training"]["epochs"]]
        assert ppl[-1] < ppl[0]
        res[lay] = m
    np.testing.assert_allclose(res["vh"].U, res["hv"].U, rtol=1e-9, atol=1e-12)


def test_validation_halves_lr_and_keeps_best():
    ids = random_stream(2, 60)
    valid = random_stream(9, 20)
    cfg = TrainConfig(context=2, dim=8, hidden=10, epochs=8, batch=8, optimizer="adam", lr=0.02)
    m = train(cfg, VOCAB, ids, valid)
    log = m.provenance["training"]["epochs"]
    best = min(e["valid_ppl"] for e in log)
    assert perplexity(m, valid) == pytest.approx(best, rel=1e-4)
    # random text overfits at once: the lr must have been cut, training stopped early
    assert log[-1]["lr"] < log[0]["lr"] and len(log) < 8


def test_divergence_stops_with_last_good_model():
    ids = random_stream(2, 60)
    cfg = TrainConfig(context=2, dim=8, hidden=10, epochs=3, batch=8, lr=1e38, activation="relu")
    with pytest.raises(TrainingDiverged) as e:
        train(cfg, VOCAB, ids)
    assert "diverged in epoch 1" in str(e.value)
    # no epoch was completed: the initial weights are no model to keep
    assert e.value.model is None and e.value.epoch == 0


def test_bad_training_input():
    with pytest.raises(LmError, match="not more than the context"):
        train(TrainConfig(context=4), VOCAB, np.array([1, 5, 2], np.int32))
    with pytest.raises(LmError, match="empty"):
        train(TrainConfig(), VOCAB, np.zeros(0, np.int32))


def test_frequency_classes():
    counts = np.array([5, 0, 100] + list(range(200, 0, -1)))
    wc = frequency_classes(counts, 10)
    assert wc.shape == counts.shape and wc.min() == 0
    sizes = np.bincount(wc)
    assert np.all(sizes > 0) and len(sizes) <= 10
    # frequent words sit in small classes
    assert sizes[wc[3]] < sizes[wc[-1]]


# ----------------------------------------------------------------------------------------------
# CLI options and the one entry point


@click.command()
@ffnn_options
def _cmd(**opts):
    click.echo(repr(sorted(opts)))


def test_options_have_help_and_defaults():
    r = CliRunner().invoke(_cmd, ["--help"])
    assert r.exit_code == 0
    for opt in ("--context", "--dim", "--hidden", "--activation", "--epochs", "--batch", "--lr", "--momentum",
                "--l2", "--dropout", "--optimizer", "--seed", "--valid", "--output-layer", "--classes", "--device"):
        assert opt in r.output
    r = CliRunner().invoke(_cmd, ["--output-layer", "nope"])
    assert r.exit_code == 2


def test_options_except():
    from lmtools.cli.ffnn_options import ffnn_options_except

    @click.command()
    @click.option("--seed", default=5)
    @ffnn_options_except("seed", "device")
    def cmd(**opts):
        click.echo(f"{opts['seed']} {'device' in opts} {opts['context']}")

    r = CliRunner().invoke(cmd, [])
    assert r.exit_code == 0 and r.output == "5 False 4\n"


def test_run_ffnn_training(tmp_path):
    tr = tmp_path / "train.txt"
    tr.write_text("the cat sat\na dog ran home\nthe bird flew\n" * 10)
    va = tmp_path / "valid.txt"
    va.write_text("the cat ran home\n")
    opts = {"context": 2, "dim": 8, "hidden": 8, "epochs": 2, "batch": 8, "optimizer": "adam", "lr": 0.01,
            "vocab_size": 8}
    events = []
    model = run_ffnn_training([str(tr)], str(va), opts, lambda ev, info: events.append(ev))
    assert len(model.vocab) == 8 and model.vocab[:3] == ["<unk>", "<s>", "</s>"]
    assert model.provenance["method"] == "ffnn" and "training" in model.provenance
    assert events.count("epoch_end") == 2 and "batch" in events
    oov = tmp_path / "oov.txt"
    oov.write_text("zebra quagga\n")
    with pytest.raises(LmError, match="outside the vocabulary"):
        run_ffnn_training([str(tr)], str(oov), opts)


@pytest.mark.parametrize("layer", ["softmax", "class"])
@pytest.mark.parametrize("opt,l2", [("sgd", 0.0), ("sgd", 0.1), ("adam", 0.0)])
@pytest.mark.parametrize("u_layout", ["vh", "hv"])
def test_one_training_step_is_the_minibatch_update(layer, opt, l2, u_layout):
    # plain SGD (every update inside the backward pass, matrices in the GEMM) and Adam's first step
    lr = 0.3 if opt == "sgd" else 0.01
    cfg, model, ids = make(layer, optimizer=opt, lr=lr, l2=l2, u_layout=u_layout)
    X, Y, _ = K.build_examples(ids, 3)
    tr = Trainer(model, cfg)
    order = np.arange(len(Y), dtype=np.int64)
    assert tr.run(X, tr.out_ids(Y), order, 0, 16, np.zeros(2)) == 1
    after = tr.to_model().param_arrays()
    p0 = model.param_arrays()
    _, g = NV.forward_backward(p0, X[:16], Y[:16])
    # weight decay: matrices, but E only at the rows used and U (class layer) only in the classes met
    decay = {"W": 1.0, "Uc": 1.0, "E": np.isin(np.arange(V), X[:16])[:, None] * 1.0,
             "U": (np.isin(model.word_class, model.word_class[Y[:16]])[:, None] * 1.0
                   if layer == "class" else 1.0)}
    for k, p in p0.items():
        if k == "word_class":
            continue
        gk = g[k] + l2 * decay.get(k, 0.0) * p
        # Adam's first step moves every parameter with a gradient by lr (times its sign)
        step = lr * gk if opt == "sgd" else lr * gk / (np.abs(gk) + 1e-8)
        np.testing.assert_allclose(after[k], p - step, rtol=1e-9, atol=1e-12, err_msg=k)


def test_progress_reporter_plain_lines():
    from lmtools.cli.ffnn_options import progress_reporter

    buf = io.StringIO()
    rep = progress_reporter(buf)
    rep("epoch_start", {"epoch": 1, "epochs": 2, "examples": 10, "lr": 0.1})
    rep("batch", {"epoch": 1, "done": 5, "examples": 10, "loss": 3.0, "lr": 0.1, "tokens_per_s": 100.0})
    rep("epoch_end", {"epoch": 1, "train_ppl": 20.0, "valid_ppl": 25.5, "lr": 0.1, "seconds": 1.5, "best": True})
    rep("note", {"message": "stop"})
    assert buf.getvalue() == "epoch 1: train ppl 20.00 valid ppl 25.50 lr 0.1 1.5s\nstop\n"


def test_time_limit_stops_between_epochs():
    ids = random_stream(2, 60)
    cfg = TrainConfig(context=2, dim=8, hidden=10, epochs=50, batch=8, time_limit=1e-9)
    m = train(cfg, VOCAB, ids)
    assert len(m.provenance["training"]["epochs"]) == 1


@pytest.mark.parametrize("layer", ["softmax", "class"])
def test_training_steps_do_not_depend_on_threads(layer):
    # Trainer.run splits GEMMs and the class layer's word loops over numba's threads
    import numba

    cfg, model, ids = make(layer, optimizer="sgd", lr=0.3, l2=0.01)
    X, Y, _ = K.build_examples(ids, 3)
    order = np.random.default_rng(2).permutation(len(Y)).astype(np.int64)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            tr = Trainer(model, cfg)
            assert tr.run(X, tr.out_ids(Y), order, 0, 64, np.zeros(8)) == 4
            results.append(tr.to_model().param_arrays())
    finally:
        numba.set_num_threads(before)
    for k, p in results[0].items():
        np.testing.assert_allclose(results[1][k], p, rtol=1e-12, atol=1e-14, err_msg=k)
