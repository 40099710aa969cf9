"""The named structures the FFNN kernels take (``lmtools.kernels.ffnn`` and its pieces).

Each is a ``typing.NamedTuple``, which numba compiles as a tuple: a field read (``P.E``) costs what
an index read (``P[0]``) cost, and the kernels' arithmetic does not change. They group what used to
travel as long positional lists: the parameters, the optimizer's state, the training options, what
the kernels must know of the network besides its parameters, and the work buffers of a minibatch.
No I/O here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Params(NamedTuple):
    """The parameters in the kernels' layout (see ``lmtools.kernels.ffnn``). Gradients and the
    optimizer's moments are ``Params`` of the same shapes, field for field."""

    E: np.ndarray  # (V, d) word embeddings
    Wt: np.ndarray  # (m*d, H) the hidden layer's weights, transposed (``e @ Wt`` is a plain GEMM)
    b: np.ndarray  # (H,) hidden bias
    U: np.ndarray  # (V, H) or (H, V) (``Net.u_layout``) output weights; rows in class order with the class layer
    c: np.ndarray  # (V,) output bias
    Uc: np.ndarray  # (C, H) class weights of the class layer; (0, H) for the exact softmax
    cc: np.ndarray  # (C,) class bias; (0,) for the exact softmax


class OptState(NamedTuple):
    """The optimizer's state: arrays of the parameters' shapes, or with 0 rows where the rule keeps
    none (SGD: neither; momentum and Adagrad: ``s1`` only)."""

    s1: Params  # momentum: velocity; Adagrad: sum of squared gradients; Adam: first moment
    s2: Params  # Adam: second moment


class Net(NamedTuple):
    """What the kernels must know of a network besides its parameters."""

    act: int  # activation code (ACT_TANH, ACT_SIGMOID, ACT_RELU)
    u_layout: int  # U_VH: U is (V, H); U_HV: (H, V) (exact softmax only)
    cls: np.ndarray  # int32 (V,) class of each output row (class order); (0,) for the exact softmax
    cls_start: np.ndarray  # int32 (C + 1,) class k is output rows cls_start[k]:cls_start[k+1]; (0,) without
    bos: int  # output row of <s>, left out of every softmax; -1: let ``bos_row`` decide


class Options(NamedTuple):
    """The training options of a span of minibatches (``Options.make`` gives each its type)."""

    optimizer: int  # OPT_SGD, OPT_MOMENTUM, OPT_ADAGRAD or OPT_ADAM
    lr: float  # learning rate
    momentum: float  # momentum of OPT_MOMENTUM
    l2: float  # L2 penalty on the weight matrices (not the biases)
    beta1: float  # Adam's decay rates
    beta2: float
    keep_e: float  # keep probability (1 - dropout rate) of the embeddings
    keep_h: float  # and of the hidden layer
    batch: int  # examples per minibatch
    parts: int  # split the GEMMs and dense loops in this many blocks on numba's threads (1: none)

    @classmethod
    def make(cls, optimizer, lr, momentum, l2, beta1, beta2, keep_e, keep_h, batch, parts) -> Options:
        # one numba type whatever the caller passed (an int lr would compile another kernel)
        return cls(int(optimizer), float(lr), float(momentum), float(l2), float(beta1), float(beta2),
                   float(keep_e), float(keep_h), int(batch), int(parts))


class Buffers(NamedTuple):
    """Work arrays for a minibatch of up to B examples (B rows each; ``work_buffers`` builds them)."""

    e: np.ndarray  # (B, m*d) the context embeddings, concatenated (times the dropout mask)
    h: np.ndarray  # (B, H) the hidden layer, act(e Wt + b)
    z: np.ndarray  # (B, V) output logits, then dL/dz; (B, C): the class logits with the class layer
    dh: np.ndarray  # (B, H) dL/dh
    de: np.ndarray  # (B, m*d) dL/de
    loss: np.ndarray  # float64 (B,) each example's -ln p(y | context)
    gw: np.ndarray  # (B, largest class) the class layer's word logits, then their gradients; (0, 1) without
    me: np.ndarray  # (B, m*d) embedding dropout mask; (0, m*d): no dropout
    mh: np.ndarray  # (B, H) hidden dropout mask; (0, H): no dropout


class Touched(NamedTuple):
    """What a minibatch's gradient touched, for the sparse updates (``forward_backward`` fills it,
    ``apply_update`` reads and clears it)."""

    e_rows: np.ndarray  # int64 (V + 1,) count n, then the n distinct rows of E the minibatch used
    mark: np.ndarray  # int8 (V + C,) zero between minibatches; the classes met at V + k (class layer)


def work_buffers(batch, md, H, V, C, maxc, dtype, dropout_e=False, dropout_h=False, alloc=None) -> Buffers:
    """The ``Buffers`` of a trainer: ``batch`` rows, context width ``md`` = m*d, ``H`` hidden units,
    ``V`` words, ``C`` classes (0: exact softmax) of at most ``maxc`` words; mask buffers where
    there is dropout. ``alloc(shape, dtype)``: zeroed host arrays by default (a GPU trainer passes
    its device allocator)."""
    alloc = alloc or np.zeros
    B = batch
    return Buffers(e=alloc((B, md), dtype), h=alloc((B, H), dtype), z=alloc((B, C if C else V), dtype),
                   dh=alloc((B, H), dtype), de=alloc((B, md), dtype), loss=alloc(B, np.float64),
                   gw=alloc((B, maxc) if C else (0, 1), dtype),
                   me=alloc((B, md) if dropout_e else (0, md), dtype), mh=alloc((B, H) if dropout_h else (0, H), dtype))


def empty_touched(V, C) -> Touched:
    """An empty ``Touched`` for ``V`` words and ``C`` classes."""
    return Touched(np.zeros(V + 1, np.int64), np.zeros(V + C, np.int8))
