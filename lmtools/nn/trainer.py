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
        P, net, perm = model.kernel_view(self.u_layout)
        self.P = K.Params(*(np.array(a, copy=True) for a in P))  # the kernels update these in place
        self.perm = perm
        self.inv = np.empty_like(perm)
        self.inv[perm] = np.arange(perm.size)
        # the output row of <s> (the kernels leave it out of the softmax); the training activation
        self.net = net._replace(act=K.ACTIVATIONS[cfg.activation], bos=int(self.inv[BOS_ID]))
        cls, start = net.cls, net.cls_start
        k = int(cls[self.net.bos]) if cls.size else -1  # the class of <s>, when <s> is alone in it
        self.bos_class = k if k >= 0 and start[k + 1] - start[k] == 1 else -1
        self.G = K.Params(*(np.zeros_like(a) for a in self.P))
        opt = cfg.optimizer
        need1 = opt in ("momentum", "adagrad", "adam")
        need2 = opt == "adam"
        empty = lambda a: np.zeros((0,) + a.shape[1:], a.dtype)  # noqa: E731
        self.S = K.OptState(K.Params(*(np.zeros_like(a) if need1 else empty(a) for a in self.P)),
                            K.Params(*(np.zeros_like(a) if need2 else empty(a) for a in self.P)))
        keep_e = 1.0 - (cfg.dropout if cfg.dropout_emb is None else cfg.dropout_emb)
        keep_h = 1.0 - cfg.dropout
        self.keep_e, self.keep_h = keep_e, keep_h
        V, C = len(model.vocab), model.n_classes
        maxc = int(np.diff(start).max()) if C else 1
        self.bufs = K.work_buffers(cfg.batch, model.context * model.dim, model.hidden, V, C, maxc, self.P.E.dtype,
                                   keep_e < 1.0, keep_h < 1.0)
        self.rng = np.array([np.random.default_rng(cfg.seed + 7919).integers(1, 2**63)], np.uint64)
        self.touched = K.empty_touched(V, C)
        self.steps = 0
        self.lr = cfg.learning_rate()

    def out_ids(self, Y: np.ndarray) -> np.ndarray:
        """Targets in the kernels' output numbering (class order for the class layer)."""
        return Y if self.model.word_class is None else self.inv[Y].astype(np.int32)

    def options(self, parts: int = 1):
        """The kernels' ``Options`` for the next span (the learning rate changes between epochs)."""
        K, cfg = self.K, self.cfg
        return K.Options.make(K.OPTIMIZERS[cfg.optimizer], self.lr, cfg.momentum, cfg.l2, cfg.beta1, cfg.beta2,
                              self.keep_e, self.keep_h, cfg.batch, parts)

    def run(self, X, Yo, order, lo, hi, losses) -> int:
        """Minibatches order[lo:hi]; returns how many ran (fewer: a loss was not finite)."""
        # BLAS on one thread while the kernels split its products (and their own loops) over
        # numba's threads: BLAS's spinning threads and numba's would fight for the cores
        # (lmtools.nn.blas); without control of BLAS, plain BLAS calls and serial loops
        with single_threaded_blas() as split:
            parts = numba.get_num_threads() if split else 1
            nb = self.K.train_batches(self.P, self.G, self.S, self.net, self.options(parts), self.bufs, self.touched,
                                      self.rng, X, Yo, order, lo, hi, self.steps, losses)
        self.steps += nb
        return nb

    def snapshot(self):
        return self.K.Params(*(a.copy() for a in self.P))

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
        self.K.score_examples(self.host_params(), self.net, X, Yo, batch, out)
        return float(out.sum())
