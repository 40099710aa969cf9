"""Training on an NVIDIA GPU: ``Trainer``'s interface over the numba.cuda kernels.

``lm-train --method ffnn --device cuda`` trains with ``CudaTrainer`` instead of ``Trainer``; the epoch
loop, schedule, validation and model file are the same (``lmtools.nn.train``). Parameters,
gradients, optimizer state and the training examples live on the GPU; per span of minibatches
the host sends the epoch order, the dropout masks (the CPU path's xorshift stream, so both paths
draw the same masks) and the grouping that keeps every sum in a fixed order
(``kernels.ffnn_cuda.group_span``), then launches one kernel per step of each minibatch and reads
back the losses once per span. Validation perplexity is computed on the CPU from a copy of the
parameters (one forward pass per epoch).

The arithmetic is the CPU path's: the same gradients and update rules (plain SGD as a separate
update rather than fused into the GEMMs), float32 or float64. The tests run this class under
numba's CUDA simulator and compare it with ``Trainer`` step by step.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lmtools.errors import LmError
from lmtools.nn.trainer import Trainer

_HINT = "train with --device cpu"


def cuda_or_error():
    """numba.cuda, or LmError when it cannot run kernels here."""
    try:
        from numba import cuda

        ok = cuda.is_available()
    except Exception:  # numba.cuda missing or a broken driver: one answer for the user
        ok = False
    if not ok:
        raise LmError("--device cuda: no usable NVIDIA GPU (or CUDA driver) found", _HINT)
    return cuda


class CudaTrainer(Trainer):
    """``Trainer`` with its parameters and minibatch steps on the GPU."""

    def __init__(self, model, cfg):
        super().__init__(model, replace(cfg, u_layout="vh"))
        cuda = cuda_or_error()
        try:
            from lmtools.kernels import ffnn_cuda as KC

            self.KC, self.cuda = KC, cuda
            K = self.K
            self.dP = K.Params(*(cuda.to_device(a) for a in self.P))
            self.dG = K.Params(*(cuda.to_device(np.zeros_like(a)) for a in self.P))
            self.dS = K.OptState(*(K.Params(*(cuda.to_device(a) for a in s)) for s in self.S))
            B, md, H = cfg.batch, model.context * model.dim, model.hidden
            V, C = len(model.vocab), model.n_classes
            dt = self.P.E.dtype
            maxc = int(np.diff(self.net.cls_start).max()) if C else 1
            dev = cuda.device_array
            # the CPU trainer's work buffers on the GPU; the masks (0 rows here) come per span
            self.d = K.work_buffers(B, md, H, V, C, maxc, dt, alloc=dev)
            self.d_hd = dev((B, H), dt) if self.keep_h < 1.0 else self.d.h  # h times the hidden mask
            self.d_y, self.d_yc = dev(B, np.int32), dev(B, np.int32)
            self.d_cls = cuda.to_device(self.net.cls.astype(np.int32))
            self.d_start = cuda.to_device(self.net.cls_start.astype(np.int32))
            self._examples_key = None
            probe = dev((1, 1), dt)  # compiles and runs one kernel now: a missing toolkit shows here
            KC.gemm(1.0, self.d.h[:1], self.d.h[:1], 0.0, probe, False, True)
            cuda.synchronize()
        except LmError:
            raise
        except Exception as exc:  # no CUDA toolkit for numba to compile with, out of GPU memory, ...
            raise LmError(f"--device cuda: the GPU could not be set up ({str(exc).splitlines()[0]})", _HINT)

    # -- state between host and device --------------------------------------------------------

    def host_params(self):
        return self.snapshot()

    def snapshot(self):
        return self.K.Params(*(d.copy_to_host() for d in self.dP))

    def restore(self, snap: tuple) -> None:
        for d, a in zip(self.dP, snap):
            d.copy_to_device(np.ascontiguousarray(a))

    def _device_examples(self, X, Yo):
        key = (id(X), id(Yo), X.shape, Yo.shape)
        if key != self._examples_key:
            self.d_X = self.cuda.to_device(np.ascontiguousarray(X, np.int32))
            self.d_Y = self.cuda.to_device(np.ascontiguousarray(Yo, np.int32))
            self._examples_key = key
            self._examples_ref = (X, Yo)  # keep the arrays alive while their id is the key
        return self.d_X, self.d_Y

    # -- training -------------------------------------------------------------------------------

    def run(self, X, Yo, order, lo, hi, losses) -> int:
        """Minibatches order[lo:hi] on the GPU; returns how many ran before a non-finite loss."""
        cuda, KC, cfg = self.cuda, self.KC, self.cfg
        B = cfg.batch
        nb = -(-(hi - lo) // B)
        if nb == 0:
            return 0
        d_X, d_Y = self._device_examples(X, Yo)
        d_order = cuda.to_device(np.ascontiguousarray(order[lo:hi], np.int64))
        grouped = KC.group_span(X, Yo, self.net.cls, self.model.n_classes, order, lo, hi, B)
        words, word_first, slots, n_words, first, by_class = (cuda.to_device(a) for a in grouped)
        n_words = grouped[3]
        md, H = self.d.e.shape[1], self.d.h.shape[1]
        dt = self.P.E.dtype
        me = np.zeros((nb, B, md) if self.keep_e < 1.0 else (nb, 0, md), dt)
        mh = np.zeros((nb, B, H) if self.keep_h < 1.0 else (nb, 0, H), dt)
        for b in range(nb):  # the CPU path's order of draws: each minibatch's me, then its mh
            n = min(B, hi - lo - b * B)
            if self.keep_e < 1.0:
                self.K.fill_dropout_mask(me[b, :n], self.keep_e, self.rng)
            if self.keep_h < 1.0:
                self.K.fill_dropout_mask(mh[b, :n], self.keep_h, self.rng)
        d_me, d_mh = cuda.to_device(me), cuda.to_device(mh)
        d_losses = cuda.device_array(nb, np.float64)
        steps0 = self.steps
        for b in range(nb):
            n = min(B, hi - lo - b * B)
            rows = d_order[b * B:b * B + n]
            self._minibatch(d_X, d_Y, rows, n, b, d_me[b, :n] if self.keep_e < 1.0 else self.d.me,
                            d_mh[b, :n] if self.keep_h < 1.0 else self.d.mh,
                            (words[b, :n_words[b]], word_first[b, :n_words[b] + 1], slots[b]),
                            (first[b], by_class[b]), d_losses)
        out = d_losses.copy_to_host()
        bad = np.flatnonzero(~np.isfinite(out))
        ran = int(bad[0]) + 1 if bad.size else nb
        losses[:ran] = out[:ran]
        self.steps = steps0 + ran
        return ran

    def _minibatch(self, d_X, d_Y, rows, n, b, me, mh, e_groups, c_groups, d_losses):
        KC = self.KC
        E, Wt, bh, U, c, Uc, cc = self.dP
        gE, gWt, gb, gU, gc, gUc, gcc = self.dG
        md, H, d = Wt.shape[0], Wt.shape[1], E.shape[1]
        act, bos = self.net.act, self.net.bos
        e, h, hd, dh, de = self.d.e[:n], self.d.h[:n], self.d_hd[:n], self.d.dh[:n], self.d.de[:n]
        y, yc, loss = self.d_y[:n], self.d_yc[:n], self.d.loss[:n]
        scale = 1.0 / n
        KC.on_rows(KC.gather_embeddings, n, md)(E, d_X, rows, me, e)
        KC.on_items(KC.targets, n)(d_Y, rows, self.d_cls, y, yc)
        KC.gemm(1.0, e, Wt, 0.0, h)
        KC.on_rows(KC.bias_activation, n, H)(h, bh, act, mh, hd)
        if self.model.word_class is None:
            z = self.d.z[:n]
            KC.gemm(1.0, hd, U, 0.0, z, False, True)
            KC.softmax_xent_rows[n, KC.ROW_THREADS](z, c, y, scale, loss, False, bos)
            KC.gemm(1.0, z, hd, 0.0, gU, True, False)
            KC.on_items(KC.column_sums, z.shape[1])(z, gc)
            KC.gemm(1.0, z, U, 0.0, dh)
        else:
            zc = self.d.z[:n]
            gw = self.d.gw[:n]
            first, by_class = c_groups
            KC.gemm(1.0, hd, Uc, 0.0, zc, False, True)
            KC.softmax_xent_rows[n, KC.ROW_THREADS](zc, cc, yc, scale, loss, False, self.bos_class)
            KC.gemm(1.0, zc, hd, 0.0, gUc, True, False)
            KC.on_items(KC.column_sums, zc.shape[1])(zc, gcc)
            KC.gemm(1.0, zc, Uc, 0.0, dh)
            KC.class_words[n, KC.ROW_THREADS](U, c, self.d_start, y, yc, hd, dh, gw, loss, scale, bos)
            KC.on_rows(KC.class_rows_grad, U.shape[0], H)(self.d_cls, self.d_start, first, by_class, gw, hd, gU, gc)
        KC.on_rows(KC.hidden_backward, n, H)(h, dh, mh, act)
        KC.on_items(KC.column_sums, H)(dh, gb)
        KC.gemm(1.0, e, dh, 0.0, gWt, True, False)
        KC.gemm(1.0, dh, Wt, 0.0, de, False, True)
        words, word_first, slots = e_groups
        KC.on_rows(KC.embedding_grad, words.shape[0], d)(words, word_first, slots, de, me, gE, d)
        KC.batch_loss[1, KC.ROW_THREADS](loss, n, d_losses, b)
        self._update(words, c_groups[0])

    def _update(self, words, first):
        """One optimizer step: every dense parameter, E at the rows used, the class rows met."""
        KC, cfg = self.KC, self.cfg
        t = self.steps + 1  # Adam's bias correction counts the steps of this span too
        self.steps += 1
        opt = self.K.OPTIMIZERS[cfg.optimizer]
        eps = 1e-8 if cfg.optimizer == "adam" else 1e-10
        c1 = 1.0 / (1.0 - cfg.beta1 ** t)
        c2 = 1.0 / (1.0 - cfg.beta2 ** t)
        hp = (opt, self.lr, cfg.momentum)
        tail = (cfg.beta1, cfg.beta2, eps, c1, c2)

        def flat(a):
            return a.reshape(a.size)

        def arrays(name):  # the parameter ``name``, its gradient and its two moments, flat
            return (flat(getattr(x, name)) for x in (self.dP, self.dG, self.dS.s1, self.dS.s2))

        def dense(name, l2):
            p, g, s1, s2 = arrays(name)
            KC.on_items(KC.update_dense, p.shape[0])(p, g, s1, s2, *hp, l2, *tail)

        def rows(name, l2, sel, by_class):
            p, g, s1, s2 = arrays(name)
            shape = getattr(self.dP, name).shape
            cols = shape[1] if len(shape) == 2 else 1
            if by_class:
                KC.on_rows(KC.update_class_rows, self.d_cls.shape[0], cols)(
                    p, g, s1, s2, self.d_cls, sel, cols, *hp, l2, *tail)
            else:
                KC.on_rows(KC.update_rows, sel.shape[0], cols)(p, g, s1, s2, sel, cols, *hp, l2, *tail)

        rows("E", cfg.l2, words, False)
        dense("Wt", cfg.l2)
        dense("b", 0.0)
        if self.model.word_class is None:
            dense("U", cfg.l2)
            dense("c", 0.0)
        else:
            dense("Uc", cfg.l2)
            dense("cc", 0.0)
            rows("U", cfg.l2, first, True)
            rows("c", 0.0, first, True)
