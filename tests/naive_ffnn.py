"""Plain numpy reference of the feedforward LM's forward and backward pass, for tests only.

Written straight from the formulas (Bengio et al. 2003), one example at a time, in the model's
own orientation (W (H, m*d), U (V, H)), so a disagreement points at the kernels.
"""

import numpy as np


def act_fwd(a, act):
    if act == "tanh":
        return np.tanh(a)
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-a))
    return np.maximum(a, 0.0)


def act_grad(h, act):
    if act == "tanh":
        return 1.0 - h * h
    if act == "sigmoid":
        return h * (1.0 - h)
    return (h > 0).astype(h.dtype)


def log_softmax(z, skip=None):
    """ln softmax(z); entry ``skip`` (a word never predicted, <s>) gets ln 0 = -inf."""
    z = np.array(z, np.float64)
    if skip is not None:
        z[skip] = -np.inf
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


BOS = 1  # <s>: never predicted, left out of every softmax


def forward_backward(p, X, Y, act="tanh", me=None, mh=None):
    """Summed loss -ln p(y|x) over the examples, and mean-over-batch gradients of every parameter.

    ``p`` is a dict with E, W, b, U, c and, for the class layer, Uc, cc, word_class.
    ``me``/``mh`` are dropout masks (already scaled by 1/keep) or None.
    """
    E, W, b, U, c = p["E"], p["W"], p["b"], p["U"], p["c"]
    cls = p.get("word_class")
    n = len(Y)
    g = {k: np.zeros_like(v) for k, v in p.items() if k != "word_class"}
    total = 0.0
    for i in range(n):
        e = np.concatenate([E[w] for w in X[i]])
        if me is not None:
            e = e * me[i]
        h = act_fwd(W @ e + b, act)
        hd = h * mh[i] if mh is not None else h
        y = Y[i]
        if cls is None:
            lp = log_softmax(U @ hd + c, BOS)
            total -= lp[y]
            dz = np.exp(lp)
            dz[y] -= 1.0
            dz /= n
            g["U"] += np.outer(dz, hd)
            g["c"] += dz
            dhd = U.T @ dz
        else:
            k = cls[y]
            # <s> is left out of its class; a class of <s> alone is left out of the classes
            lone = cls[BOS] if np.count_nonzero(cls == cls[BOS]) == 1 else None
            lpc = log_softmax(p["Uc"] @ hd + p["cc"], lone)
            words = np.flatnonzero((cls == k) & (np.arange(len(cls)) != BOS))
            lpw = log_softmax(U[words] @ hd + c[words])
            j = int(np.flatnonzero(words == y)[0])
            total -= lpc[k] + lpw[j]
            dzc = np.exp(lpc)
            dzc[k] -= 1.0
            dzc /= n
            dzw = np.exp(lpw)
            dzw[j] -= 1.0
            dzw /= n
            g["Uc"] += np.outer(dzc, hd)
            g["cc"] += dzc
            g["U"][words] += np.outer(dzw, hd)
            g["c"][words] += dzw
            dhd = p["Uc"].T @ dzc + U[words].T @ dzw
        dh = dhd * mh[i] if mh is not None else dhd
        da = dh * act_grad(h, act)
        g["b"] += da
        g["W"] += np.outer(da, e)
        de = W.T @ da
        if me is not None:
            de = de * me[i]
        d = E.shape[1]
        for k, w in enumerate(X[i]):
            g["E"][w] += de[k * d:(k + 1) * d]
    return total, g


def loss(p, X, Y, act="tanh"):
    """Mean loss over the examples (for finite differences)."""
    return forward_backward(p, X, Y, act)[0] / len(Y)


def examples(ids, ctx):
    """(X, Y) of a stream <s> w1 .. wk </s> <s> ...: every non-<s> token with its <s>-padded context."""
    X, Y = [], []
    hist = []
    for w in ids:
        if w == 1:
            hist = [1] * ctx
            continue
        X.append(list(hist[-ctx:]))
        Y.append(int(w))
        hist.append(int(w))
    return np.array(X, np.int32).reshape(-1, ctx), np.array(Y, np.int32)
