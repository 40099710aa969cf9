"""The ``lm-train --method ffnn`` options (one click decorator) and the one place that maps them to training.

    @click.command()
    @ffnn_options
    def main(..., **opts):
        model = run_ffnn_training(paths, opts["valid"], opts, progress_reporter())

Only click is imported at module level, so ``--help`` stays fast; numpy and numba load on use.
"""

from __future__ import annotations

import sys
import time
from typing import Mapping

import click

from lmtools.cli.common import Limit, Number
from lmtools.errors import LmError


def _opt(*decls, **attrs):
    """An option's declaration, applied by ``ffnn_options`` (plain, or inside an option group)."""
    return decls, attrs


FFNN_OPTIONS = [
    _opt("--context", type=click.IntRange(1, 64), default=4, show_default=True,
         help="Previous tokens the network sees (n-1); <s> pads the start of a sentence."),
    _opt("--dim", type=click.IntRange(1), default=100, show_default=True,
         help="Size of the word embeddings."),
    _opt("--hidden", type=click.IntRange(1), default=200, show_default=True,
         help="Hidden units."),
    _opt("--activation", type=click.Choice(["tanh", "sigmoid", "relu"]), default="tanh", show_default=True,
         help="Hidden-layer activation."),
    _opt("--epochs", type=Limit(1), default=10, show_default=True,
         help="Most passes over the training text (validation may stop it earlier)."),
    _opt("--batch", type=click.IntRange(1), default=128, show_default=True,
         help="Examples per minibatch; the gradient is their mean."),
    _opt("--optimizer", type=click.Choice(["sgd", "momentum", "adagrad", "adam"]), default="sgd",
         show_default=True, help="Update rule: plain minibatch SGD, SGD with momentum, Adagrad or Adam."),
    _opt("--lr", type=Number(0, min_open=True), default=None,
         help="Learning rate [default: sgd 0.5, momentum 0.05, adagrad 0.1, adam 0.001]."),
    _opt("--momentum", type=Number(0, 1, max_open=True), default=0.9, show_default=True,
         help="Momentum of --optimizer momentum."),
    _opt("--l2", type=Number(0), default=0.0, show_default=True,
         help="L2 weight decay on the weight matrices (not the biases)."),
    _opt("--dropout", type=Number(0, 1, max_open=True), default=0.0, show_default=True,
         help="Dropout rate of the hidden layer during training."),
    _opt("--dropout-emb", type=Number(0, 1, max_open=True), default=None,
         help="Dropout rate of the embeddings [default: as --dropout]."),
    _opt("--output-layer", type=click.Choice(["softmax", "class"]), default="softmax", show_default=True,
         help="Exact softmax over the vocabulary, or the class-based two-level softmax "
                      "(frequency-binned classes; exact probabilities, much faster training)."),
    _opt("--classes", type=click.IntRange(0), default=0, show_default=True,
         help="Number of word classes of --output-layer class (0: about sqrt of the vocabulary size)."),
    _opt("--valid", "valid", type=click.Path(dir_okay=False, allow_dash=False), default=None,
         help="Validation text: halves the learning rate on a plateau, stops early, keeps the best model."),
    _opt("--lr-decay", type=Number(0, 1, min_open=True, max_open=True), default=0.5,
         show_default=True, help="Learning-rate multiplier when validation perplexity stops improving."),
    _opt("--min-improvement", type=Number(0, 1, max_open=True), default=0.003, show_default=True,
         help="Relative improvement of validation perplexity that counts as progress."),
    _opt("--patience", type=Limit(1), default=1, show_default=True,
         help="Plateaus tolerated once the learning rate decays, before stopping."),
    _opt("--time-limit", type=Number(0), default=0.0, show_default=True,
         help="Seconds of training: no epoch is started that would end past it (0: no limit)."),
    _opt("--vocab-size", type=Limit(0), default=0, show_default=True,
         help="Keep at most this many words (most frequent, <unk> <s> </s> included); 0: all."),
    _opt("--min-count", type=Limit(1), default=1, show_default=True,
         help="Keep words seen at least this often; others become <unk>."),
    _opt("--seed", type=click.IntRange(0), default=1, show_default=True,
         help="Random seed: the same seed and input give a byte-identical model."),
    _opt("--threads", type=click.IntRange(0), default=0, show_default=True, metavar="T",
         help="CPU threads for training (0: one per core)."),
    _opt("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
         help="Where to train: the CPU (numba + BLAS), or an NVIDIA GPU through numba.cuda."),
    _opt("--u-layout", type=click.Choice(["vh", "hv"]), default="vh", show_default=True, hidden=True,
         help="Memory layout of the output matrix during training (benchmarking)."),
]


def ffnn_options(f, option=click.option):
    """Add every FFNN training option to a click command (their values arrive as keyword arguments);
    ``option``: the decorator factory (an option group's ``option`` puts them in that group)."""
    for decls, attrs in reversed(FFNN_OPTIONS):
        f = option(*decls, **attrs)(f)
    return f


def ffnn_options_except(*names: str, option=click.option):
    """``ffnn_options`` without the options whose parameter names are given (e.g. "seed", when the
    command already has a shared --seed): ``@ffnn_options_except("seed", "vocab_size")``."""
    def deco(f):
        for decls, attrs in reversed(FFNN_OPTIONS):
            probe = click.option(*decls, **attrs)(lambda: None).__click_params__[-1]
            if probe.name not in names:
                f = option(*decls, **attrs)(f)
        return f

    return deco


def config_from_options(options: Mapping):
    """The one mapping from option values (click parameter names) to ``TrainConfig``."""
    from lmtools.nn.train import TrainConfig

    d = TrainConfig()
    g = lambda k: options.get(k, getattr(d, k))  # noqa: E731
    return TrainConfig(context=g("context"), dim=g("dim"), hidden=g("hidden"), activation=g("activation"),
                       epochs=g("epochs"), batch=g("batch"), optimizer=g("optimizer"), lr=g("lr"),
                       momentum=g("momentum"), l2=g("l2"), dropout=g("dropout"), dropout_emb=g("dropout_emb"),
                       output_layer=g("output_layer"), classes=g("classes"), lr_decay=g("lr_decay"),
                       min_improvement=g("min_improvement"), patience=g("patience"), seed=g("seed"),
                       u_layout=g("u_layout"), time_limit=g("time_limit"), device=g("device"))


def check_device(device: str) -> None:
    """Raise LmError unless training can run on ``device`` (checked before any text is read)."""
    if device == "cuda":
        from lmtools.nn.cuda_train import cuda_or_error

        cuda_or_error()


def run_ffnn_training(train_paths: list[str], valid_path: str | None, options: Mapping, progress=None,
                      text_opts=None):
    """Read the texts, train, return the best ``FFNNModel`` (provenance filled in).

    ``options`` holds the values of ``ffnn_options`` (click parameter names; missing ones take
    their defaults). ``progress`` is a callback ``(event, info)`` (see ``progress_reporter``).
    Raises LmError for bad input; ``lmtools.nn.train.TrainingDiverged`` (an LmError) carries the
    last good model in ``.model`` when the loss became NaN or infinite.
    """
    import numpy as np

    from lmtools.io.text import TextOptions
    from lmtools.nn.train import TrainingDiverged, build_vocab_and_ids, encode_with_vocab, train
    from lmtools.vocab import BOS_ID, EOS_ID

    check_device(options.get("device", "cpu"))
    cfg = config_from_options(options)
    threads = options.get("threads", 0) or 0
    if threads:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    vocab, ids, counts = build_vocab_and_ids(list(train_paths), options.get("vocab_size", 0) or 0,
                                             options.get("min_count", 1) or 1, text_opts)
    n_words = int(np.count_nonzero((ids != BOS_ID) & (ids != EOS_ID)))
    if n_words == 0:
        raise LmError("the training text has no words", "give a text with at least one word")
    valid = None
    if valid_path:
        valid, n_oov = encode_with_vocab([valid_path], vocab, text_opts)
        v_words = int(np.count_nonzero((valid != BOS_ID) & (valid != EOS_ID)))
        if v_words == 0:
            raise LmError(f"{valid_path}: the validation text has no words", "give a non-empty --valid text")
        if n_oov >= v_words:
            raise LmError(f"{valid_path}: every word of the validation text is outside the vocabulary "
                          f"({n_oov} OOVs)", "give validation text from the same language and domain")
    def finish(model):
        prov = dict(model.provenance)
        prov.update({"program": "lm-train", "method": "ffnn", "inputs": list(train_paths), "valid": valid_path,
                     "tokens": int(np.count_nonzero(ids != BOS_ID)),
                     "options": {k: v for k, v in dict(options).items()
                                 if isinstance(v, (int, float, str, type(None)))}})
        model.provenance = prov
        model.text = (text_opts or TextOptions()).kind()  # how the text was read, for every consumer
        return model

    try:
        model = train(cfg, vocab, ids, valid, progress, counts=counts)
    except TrainingDiverged as e:
        if e.model is not None:
            finish(e.model)  # the last good model, written by lm-train -o
        raise
    return finish(model)


def progress_reporter(stream=None):
    """A progress callback: a rich bar per epoch on a terminal, else one log line per epoch."""
    stream = stream or sys.stderr
    is_tty = getattr(stream, "isatty", lambda: False)()
    state = {}

    def plain(ev, info):
        if ev == "epoch_end":
            v = info.get("valid_ppl")
            vs = f" valid ppl {v:.2f}" if v is not None else ""
            print(f"epoch {info['epoch']}: train ppl {info['train_ppl']:.2f}{vs} lr {info['lr']:.4g} "
                  f"{info['seconds']:.1f}s{'' if info.get('best', True) else ' (no improvement)'}",
                  file=stream, flush=True)
        elif ev == "note":
            print(info["message"], file=stream, flush=True)

    if not is_tty:
        return plain

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(file=stream)

    def fancy(ev, info):
        if ev == "epoch_start":
            bar = Progress(TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                           TextColumn("{task.fields[tps]:>8.0f} tok/s  loss {task.fields[loss]:.3f}  "
                                      "lr {task.fields[lr]:.4g}"), TimeRemainingColumn(), console=console,
                           transient=True)
            bar.start()
            state["bar"] = bar
            state["task"] = bar.add_task("train", total=info["examples"], epoch=info["epoch"],
                                         epochs=info["epochs"], tps=0.0, loss=float("nan"), lr=info["lr"])
            state["t0"] = time.perf_counter()
        elif ev == "batch" and "bar" in state:
            state["bar"].update(state["task"], completed=info["done"], tps=info["tokens_per_s"], loss=info["loss"],
                                lr=info["lr"])
        elif ev == "epoch_end":
            if "bar" in state:
                state.pop("bar").stop()
            plain(ev, info)
        else:
            plain(ev, info)

    return fancy
