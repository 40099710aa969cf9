"""The kernel-side state of one FFNN being trained: ``Trainer`` runs spans of minibatches on the CPU.

Parameters, gradients, optimizer state and work buffers of one model, over the numba kernels of
``lmtools.kernels.ffnn``. The epoch loop (``lmtools.nn.train``) drives it; ``CudaTrainer``
(``lmtools.nn.cuda_train``) is the same interface on a GPU. ``cfg`` is a ``lmtools.nn.train.TrainConfig``.
"""

from __future__ import annotations

from dataclasses import replace

import numba
import numpy as np

from lmtools.nn.blas import single_threaded_blas
from lmtools.nn.model import FFNNModel
from lmtools.vocab import BOS_ID


class Trainer:
    """Kernel-side parameters, gradients, optimizer state and work buffers of one model."""

    def __init__(self, model: FFNNModel, cfg):
        from lmtools.kernels import ffnn as K

        self.K = K
        self.cfg = cfg
        self.model = model
        self.u_layout = K.U_VH if cfg.u_layout == "vh" or model.word_class is not None else K.U_HV
        P, cls, start, perm = model.kernel_view(self.u_layout)
        self.P = tuple(np.array(a, copy=True) for a in P)  # the kernels update these in place
        self.cls, self.start, self.perm = cls, start, perm
        self.inv = np.empty_like(perm)
        self.inv[perm] = np.arange(perm.size)
        self.bos = int(self.inv[BOS_ID])  # output row of <s>: the kernels leave it out of the softmax
        k = int(cls[self.bos]) if cls.size else -1  # and its class, when <s> is alone in it
        self.bos_class = k if k >= 0 and start[k + 1] - start[k] == 1 else -1
        self.G = tuple(np.zeros_like(a) for a in self.P)
        opt = cfg.optimizer
        need1 = opt in ("momentum", "adagrad", "adam")
        need2 = opt == "adam"
        empty = lambda a: np.zeros((0,) + a.shape[1:], a.dtype)  # noqa: E731
        self.S1 = tuple(np.zeros_like(a) if need1 else empty(a) for a in self.P)
        self.S2 = tuple(np.zeros_like(a) if need2 else empty(a) for a in self.P)
        dt = self.P[0].dtype
        B, H, V = cfg.batch, model.hidden, len(model.vocab)
        md = model.context * model.dim
        C = model.n_classes
        maxc = int(np.diff(start).max()) if C else 1
        self.bufs = (np.zeros((B, md), dt), np.zeros((B, H), dt), np.zeros((B, C if C else V), dt),
                     np.zeros((B, H), dt), np.zeros((B, md), dt), np.zeros(B, np.float64), np.zeros(maxc, dt),
                     np.zeros((B, maxc) if C else (0, 1), dt))
        keep_e = 1.0 - (cfg.dropout if cfg.dropout_emb is None else cfg.dropout_emb)
        keep_h = 1.0 - cfg.dropout
        self.keep_e, self.keep_h = keep_e, keep_h
        self.me = np.zeros((B, md) if keep_e < 1.0 else (0, md), dt)
        self.mh = np.zeros((B, H) if keep_h < 1.0 else (0, H), dt)
        self.rng = np.array([np.random.default_rng(cfg.seed + 7919).integers(1, 2**63)], np.uint64)
        self.gE_rows = np.zeros(V + 1, np.int64)
        self.mark = np.zeros(V + C, np.int8)
        self.act = K.ACTIVATIONS[cfg.activation]
        self.steps = 0
        self.lr = cfg.learning_rate()

    def out_ids(self, Y: np.ndarray) -> np.ndarray:
        """Targets in the kernels' output numbering (class order for the class layer)."""
        return Y if self.model.word_class is None else self.inv[Y].astype(np.int32)

    def hp(self) -> np.ndarray:
        K, cfg = self.K, self.cfg
        return np.array([K.OPTIMIZERS[cfg.optimizer], self.lr, cfg.momentum, cfg.l2, cfg.beta1, cfg.beta2])

    def run(self, X, Yo, order, lo, hi, losses) -> int:
        """Minibatches order[lo:hi]; returns how many ran (fewer: a loss was not finite)."""
        # BLAS on one thread while the kernels split its products (and their own loops) over
        # numba's threads: BLAS's spinning threads and numba's would fight for the cores
        # (lmtools.nn.blas); without control of BLAS, plain BLAS calls and serial loops
        with single_threaded_blas() as split:
            parts = numba.get_num_threads() if split else 1
            nb = self.K.train_batches(self.P, self.G, self.S1, self.S2, X, Yo, order, lo, hi, self.cfg.batch,
                                      self.bufs, self.me, self.mh, self.keep_e, self.keep_h, self.rng, self.act,
                                      self.u_layout, self.cls, self.start, self.gE_rows, self.mark, self.hp(),
                                      self.steps, losses, parts, self.bos)
        self.steps += nb
        return nb

    def snapshot(self) -> tuple:
        return tuple(a.copy() for a in self.P)

    def restore(self, snap: tuple) -> None:
        for a, s in zip(self.P, snap):
            a[...] = s

    def host_params(self) -> tuple:
        """The current parameters as host arrays (the kernels' own arrays on the CPU)."""
        return self.P

    def to_model(self, P: tuple | None = None) -> FFNNModel:
        """The FFNNModel of parameters P (default: the current ones), in the model's orientation."""
        P = self.host_params() if P is None else P
        E, Wt, b, U, c, Uc, cc = (a.copy() for a in P)
        m = self.model
        W = np.ascontiguousarray(Wt.T)
        if m.word_class is None:
            U = U if self.u_layout == self.K.U_VH else np.ascontiguousarray(U.T)
            return replace(m, E=E, W=W, b=b, U=U, c=c)
        Uw = np.empty_like(U)
        Uw[self.perm] = U
        cw = np.empty_like(c)
        cw[self.perm] = c
        return replace(m, E=E, W=W, b=b, U=Uw, c=cw, Uc=Uc, cc=cc)

    def log_likelihood(self, X, Yo, batch: int = 512) -> float:
        """Sum of ln p over the examples with the current parameters (no dropout)."""
        out = np.empty(Yo.shape[0], np.float64)
        self.K.score_examples(self.host_params(), X, Yo, self.act, self.u_layout, self.cls, self.start, batch, out,
                              self.bos)
        return float(out.sum())
