"""Training the feedforward neural LM: vocabulary, examples, the epoch loop, validation, stopping.

Input: training token ids (``<s> w1 .. wk </s> <s> ...``, int32, ids of ``vocab``), optional
validation ids, a ``TrainConfig``. Output: the ``FFNNModel`` with the best validation perplexity
(the last one without validation text).

Python owns the epochs, the learning-rate schedule, validation and progress; numba kernels
(``lmtools.kernels.ffnn``) run each span of minibatches: forward, backward and the in-place
update, no Python per token or per example (``Trainer`` in ``lmtools.nn.trainer``; ``CudaTrainer``
in ``lmtools.nn.cuda_train`` does the same on a GPU; ``train`` picks one by ``TrainConfig.device``).
Minibatches in order, each thread's share of a step fixed, a seeded xorshift for dropout and a
seeded numpy Generator for initialization and shuffling: the same seed, input, configuration and
thread count give byte-identical parameters.

Schedule (as in Mikolov's RNNLM): after each epoch the validation perplexity is measured; when it
improves by less than ``min_improvement`` (relative), the best parameters so far are restored if
the new ones are worse, the learning rate is multiplied by ``lr_decay`` and from then on every
epoch; the next plateau (after ``patience`` of them) stops training. The best model is returned.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from lmtools.errors import LmError
from lmtools.nn.model import FFNNModel, class_layout, frequency_classes
from lmtools.nn.trainer import Trainer
from lmtools.vocab import BOS_ID, EOS_ID, SPECIALS, UNK_ID

DEFAULT_LR = {"sgd": 0.5, "momentum": 0.05, "adagrad": 0.1, "adam": 0.001}


@dataclass(frozen=True)
class TrainConfig:
    context: int = 4  # previous tokens seen (n-1)
    dim: int = 100  # embedding size d
    hidden: int = 200  # hidden units H
    activation: str = "tanh"  # tanh | sigmoid | relu
    epochs: int = 10  # at most this many passes over the training examples
    batch: int = 128  # examples per minibatch (the gradient is their mean)
    optimizer: str = "sgd"  # sgd | momentum | adagrad | adam
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    momentum: float = 0.9  # for optimizer "momentum"
    beta1: float = 0.9  # Adam
    beta2: float = 0.999  # Adam
    l2: float = 0.0  # weight decay on E, W, U (and Uc), not on biases
    dropout: float = 0.0  # dropout rate of the hidden layer
    dropout_emb: float | None = None  # dropout rate of the embeddings (None: as dropout)
    output_layer: str = "softmax"  # softmax | class
    classes: int = 0  # class layer: number of classes (0: about sqrt(V))
    lr_decay: float = 0.5  # multiplier on a validation plateau
    min_improvement: float = 0.003  # relative improvement of validation perplexity that counts
    patience: int = 1  # plateaus tolerated after the decay started
    seed: int = 1
    u_layout: str = "vh"  # output matrix in memory: vh = (V, H), hv = (H, V)
    dtype: str = "float32"  # float64 for gradient checks
    chunk: int = 64  # minibatches per kernel call (progress granularity)
    time_limit: float = 0.0  # seconds; > 0: start no epoch that would end past it (0: no limit)
    device: str = "cpu"  # cpu | cuda (numba.cuda kernels, lmtools.nn.cuda_train)

    def learning_rate(self) -> float:
        return float(self.lr if self.lr is not None else DEFAULT_LR[self.optimizer])


class TrainingDiverged(LmError):
    """The loss became NaN or infinite (or too large to exponentiate); ``model`` is the last good model,
    the one of ``epoch``, or None when no epoch was completed (the initial weights are no model)."""

    def __init__(self, message, hint, model, epoch: int = 0):
        super().__init__(message, hint)
        self.model = model
        self.epoch = epoch


ProgressFn = Callable[[str, dict], None]


# ----------------------------------------------------------------------------------------------
# Text -> ids (the one place that reads text for training)


def build_vocab_and_ids(paths: list[str], vocab_size: int = 0, min_count: int = 1, opts=None):
    """Read training text, keep the most frequent words, return (vocab, ids, counts).

    ``vocab`` starts with ``<unk> <s> </s>``, then words by descending count (ties: first seen),
    at most ``vocab_size`` entries in all (0: no limit) and each seen at least ``min_count``
    times; other words become ``<unk>``. ``ids`` is the int32 stream, ``counts`` the count of
    each vocabulary id in it.
    """
    from lmtools.io.text import encode_text

    enc, table = encode_text(list(paths), None, opts=opts)
    words = table.words()
    cnt = np.bincount(enc.ids, minlength=len(words)).astype(np.int64)
    cand = np.arange(3, len(words))
    cand = cand[cnt[cand] >= max(1, min_count)]
    cand = cand[np.argsort(-cnt[cand], kind="stable")]
    if vocab_size > 0:
        cand = cand[: max(0, vocab_size - 3)]
    remap = np.full(len(words), UNK_ID, np.int32)
    remap[:3] = np.arange(3)
    remap[cand] = np.arange(3, 3 + cand.size)
    ids = remap[enc.ids]
    vocab = list(SPECIALS) + [words[i] for i in cand]
    counts = np.bincount(ids, minlength=len(vocab)).astype(np.int64)
    return vocab, ids, counts


def encode_with_vocab(paths: list[str], vocab: list[str], opts=None):
    """Ids of a text in a fixed vocabulary (unknown words -> ``<unk>``) and the number of OOVs."""
    from lmtools.io.text import encode_text

    enc, _ = encode_text(list(paths), list(vocab), opts=opts)
    return enc.ids, int(enc.n_oov)


# ----------------------------------------------------------------------------------------------
# Initialization


def init_model(cfg: TrainConfig, vocab: list[str], counts: np.ndarray) -> FFNNModel:
    """Random parameters from ``cfg.seed``; output biases start at the log unigram distribution."""
    rng = np.random.default_rng(cfg.seed)
    dt = np.dtype(cfg.dtype)
    V, d, H, m = len(vocab), cfg.dim, cfg.hidden, cfg.context

    def unif(shape, r):
        return rng.uniform(-r, r, size=shape).astype(dt)

    E = unif((V, d), 0.1)
    W = unif((H, m * d), math.sqrt(6.0 / (m * d + H)))
    b = np.zeros(H, dt)
    U = unif((V, H), math.sqrt(6.0 / (H + V)))
    freq = counts.astype(np.float64) + 0.5
    freq[BOS_ID] = 1e-3  # never predicted
    if cfg.output_layer == "softmax":
        c = np.log(freq / freq.sum()).astype(dt)
        return FFNNModel(vocab, m, E, W, b, U, c, cfg.activation)
    n_cls = cfg.classes if cfg.classes > 0 else max(1, int(round(math.sqrt(V))))
    wc = frequency_classes(counts, n_cls)
    C = int(wc.max()) + 1
    cfreq = np.bincount(wc, weights=freq, minlength=C)
    c = np.log(freq / cfreq[wc]).astype(dt)
    Uc = unif((C, H), math.sqrt(6.0 / (H + C)))
    cc = np.log(cfreq / cfreq.sum()).astype(dt)
    return FFNNModel(vocab, m, E, W, b, U, c, cfg.activation, word_class=wc, Uc=Uc, cc=cc)


# ----------------------------------------------------------------------------------------------
# The epoch loop


def _check_config(cfg: TrainConfig) -> None:
    bad = None
    if cfg.context < 1:
        bad = "--context must be at least 1"
    elif cfg.dim < 1 or cfg.hidden < 1:
        bad = "--dim and --hidden must be at least 1"
    elif cfg.batch < 1 or cfg.epochs < 1:
        bad = "--batch and --epochs must be at least 1"
    elif not (0.0 <= cfg.dropout < 1.0) or not (0.0 <= (cfg.dropout_emb or 0.0) < 1.0):
        bad = "--dropout must be in [0, 1)"
    elif cfg.learning_rate() <= 0:
        bad = "--lr must be positive"
    elif cfg.activation not in ("tanh", "sigmoid", "relu"):
        bad = f"unknown activation {cfg.activation!r}"
    elif cfg.optimizer not in DEFAULT_LR:
        bad = f"unknown optimizer {cfg.optimizer!r}"
    elif cfg.output_layer not in ("softmax", "class"):
        bad = f"unknown output layer {cfg.output_layer!r}"
    elif cfg.device not in ("cpu", "cuda"):
        bad = f"unknown device {cfg.device!r}"
    if bad:
        raise LmError(bad, "see lm-train --help")


def check_memory(cfg: TrainConfig, V: int, train_ids: np.ndarray, valid_ids: np.ndarray | None) -> None:
    """Stop before training when its memory (from V, the layer sizes and the examples) is not available."""
    from lmtools import memory

    examples = int(train_ids.size - np.count_nonzero(train_ids == BOS_ID))
    if valid_ids is not None:
        examples += int(valid_ids.size - np.count_nonzero(valid_ids == BOS_ID))
    classes = 0
    if cfg.output_layer != "softmax":
        classes = cfg.classes if cfg.classes > 0 else max(1, int(round(math.sqrt(V))))
    need = memory.estimate_ffnn(V, cfg.dim, cfg.hidden, cfg.context, classes, cfg.batch, examples, cfg.optimizer,
                                np.dtype(cfg.dtype).itemsize)
    memory.check(need, f"training the FFNN (V {V:,}, --dim {cfg.dim}, --hidden {cfg.hidden}, --context "
                 f"{cfg.context}, {examples:,} examples)",
                 "use fewer words (--vocab-size), a smaller --hidden or --dim, or less text")


def train(cfg: TrainConfig, vocab: list[str], train_ids: np.ndarray, valid_ids: np.ndarray | None = None,
          progress: ProgressFn | None = None, counts: np.ndarray | None = None) -> FFNNModel:
    """Train an FFNN language model (see the module docstring for the schedule).

    Parameters
    ----------
    cfg : TrainConfig
    vocab : list of str
        Vocabulary, ``<unk> <s> </s>`` first.
    train_ids, valid_ids : int32 arrays
        Token streams ``<s> w1 .. wk </s> <s> ...`` in ``vocab`` ids.
    progress : callable(event, info), optional
        Called with ("epoch_start", {epoch, epochs, examples, lr}), ("batch", {epoch, done,
        examples, loss, lr, tokens_per_s}), ("epoch_end", {epoch, train_ppl, valid_ppl, lr,
        seconds, best}) and ("note", {message}).
    counts : int64 array, optional
        Count of each id in the training text (computed from train_ids when absent).

    Returns
    -------
    FFNNModel
        The best model; ``provenance["training"]`` holds the per-epoch log.
    """
    from lmtools.kernels.ffnn import build_examples

    _check_config(cfg)
    note = progress or (lambda ev, info: None)
    train_ids = np.ascontiguousarray(train_ids, dtype=np.int32)
    if train_ids.size == 0 or train_ids[0] != BOS_ID:
        raise LmError("the training text is empty", "give a text with at least one sentence")
    check_memory(cfg, len(vocab), train_ids, valid_ids)
    X, Y, _ = build_examples(train_ids, cfg.context)
    if Y.shape[0] <= cfg.context:
        raise LmError(f"the training text has {Y.shape[0]} tokens, not more than the context ({cfg.context})",
                      "give more text or a smaller --context")
    if counts is None:
        counts = np.bincount(train_ids, minlength=len(vocab)).astype(np.int64)
    model = init_model(cfg, vocab, counts)
    if cfg.device == "cuda":
        from lmtools.nn.cuda_train import CudaTrainer

        tr = CudaTrainer(model, cfg)
    else:
        tr = Trainer(model, cfg)
    Yo = tr.out_ids(Y)
    if valid_ids is not None and valid_ids.size:
        Xv, Yv, _ = build_examples(np.ascontiguousarray(valid_ids, dtype=np.int32), cfg.context)
        Yvo = tr.out_ids(Yv)
    else:
        Xv = Yvo = None
    rng = np.random.default_rng(cfg.seed)
    N = Y.shape[0]
    step_span = cfg.batch * cfg.chunk
    losses = np.zeros(cfg.chunk + 1, np.float64)
    best_ppl, best_snap, best_epoch = math.inf, tr.snapshot(), 0
    last_good = best_snap
    decaying, plateaus = False, 0
    log = []

    def diverged(epoch: int, what: str) -> TrainingDiverged:
        """The error for a divergence in ``epoch``, carrying the last good model (none before epoch 1 ends)."""
        model = None
        if best_epoch:
            tr.restore(last_good)
            model = tr.to_model(last_good)
            model.provenance = {"training": {"config": asdict(cfg), "epochs": list(log), "best_epoch": best_epoch,
                                             "best_valid_ppl": None if Xv is None else best_ppl,
                                             "train_examples": int(N), "diverged_in_epoch": epoch}}
        return TrainingDiverged(f"training diverged in epoch {epoch} ({what})",
                                "lower --lr (or use --optimizer adam)", model, best_epoch)
    started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        used = time.perf_counter() - started
        if cfg.time_limit > 0 and epoch > 1 and used + used / (epoch - 1) > cfg.time_limit:
            note("note", {"message": f"time limit {cfg.time_limit:g}s: stop after epoch {epoch - 1}"})
            break
        order = rng.permutation(N).astype(np.int64)
        note("epoch_start", {"epoch": epoch, "epochs": cfg.epochs, "examples": N, "lr": tr.lr})
        t0 = time.perf_counter()
        tot = 0.0
        for lo in range(0, N, step_span):
            hi = min(N, lo + step_span)
            want = -(-(hi - lo) // cfg.batch)
            nb = tr.run(X, Yo, order, lo, hi, losses)
            tot += float(losses[:nb].sum())
            if nb < want or not math.isfinite(tot):
                raise diverged(epoch, f"loss became {losses[max(nb - 1, 0)]}")
            dt = time.perf_counter() - t0
            note("batch", {"epoch": epoch, "done": hi, "examples": N, "loss": tot / hi, "lr": tr.lr,
                           "tokens_per_s": hi / dt if dt > 0 else 0.0})
        secs = time.perf_counter() - t0
        train_ppl = _exp(tot / N)
        if not math.isfinite(train_ppl):
            raise diverged(epoch, f"mean loss {tot / N:.4g}: training perplexity overflows")
        entry = {"epoch": epoch, "train_ppl": train_ppl, "lr": tr.lr, "seconds": round(secs, 2)}
        if Xv is None:
            snap = tr.snapshot()
            if not all(np.isfinite(a).all() for a in snap):
                raise diverged(epoch, "weights became NaN or infinite")
            last_good = best_snap = snap
            best_epoch = epoch
            log.append(entry)
            note("epoch_end", dict(entry, valid_ppl=None, best=True))
            continue
        vppl = _exp(-tr.log_likelihood(Xv, Yvo) / Yvo.shape[0])
        if not math.isfinite(vppl):
            raise diverged(epoch, "validation perplexity became NaN or infinite")
        entry["valid_ppl"] = vppl
        improved = vppl < best_ppl
        if improved:
            enough = vppl < best_ppl * (1.0 - cfg.min_improvement)
            best_ppl, best_snap, best_epoch = vppl, tr.snapshot(), epoch
        else:
            enough = False
            tr.restore(best_snap)
        last_good = best_snap
        log.append(entry)
        note("epoch_end", dict(entry, best=improved))
        if not enough:
            if decaying:
                plateaus += 1
                if plateaus >= cfg.patience:
                    note("note", {"message": f"validation perplexity stopped improving: stop after epoch {epoch}"})
                    break
            decaying = True
        if decaying:
            tr.lr *= cfg.lr_decay
    final = tr.to_model(best_snap)
    final.provenance = {"training": {"config": asdict(cfg), "epochs": log, "best_epoch": best_epoch,
                                     "best_valid_ppl": None if Xv is None else best_ppl,
                                     "train_examples": int(N)}}
    return final


def _exp(x: float) -> float:
    """math.exp, inf where it would overflow (a diverged loss), nan for nan."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def perplexity(model: FFNNModel, ids: np.ndarray) -> float:
    """Perplexity of a token stream (every token but ``<s>`` counts, ``</s>`` included)."""
    lp = model.score_ids(ids)
    n = int(np.count_nonzero(np.asarray(ids) != BOS_ID))
    return float(10.0 ** (-lp.sum() / max(1, n)))


__all__ = ["TrainConfig", "TrainingDiverged", "build_vocab_and_ids", "encode_with_vocab", "init_model",
           "train", "perplexity", "Trainer", "EOS_ID", "class_layout"]
