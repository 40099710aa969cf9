"""Rendering sampled sentences as text (numba, no I/O): word ids to UTF-8 lines in one pass."""

import numpy as np
from numba import njit


@njit(cache=True)
def render(tok, lens, pool, offs, sep, head):
    """UTF-8 bytes of sentences: ``head`` then the words joined by ``sep``, one per line.

    ``tok[i, :lens[i]]``: the word ids of sentence i; word w's bytes are ``pool[offs[w]:offs[w+1]]``.
    Returns (the bytes, the end of each line in them)."""
    n = lens.shape[0]
    size = 0
    for i in range(n):
        size += head.shape[0] + 1
        for j in range(lens[i]):
            w = tok[i, j]
            size += offs[w + 1] - offs[w] + sep.shape[0]
    out = np.empty(size, np.uint8)
    ends = np.empty(n, np.int64)
    o = 0
    for i in range(n):
        out[o:o + head.shape[0]] = head
        o += head.shape[0]
        for j in range(lens[i]):
            if j > 0 or head.shape[0] > 0:
                out[o:o + sep.shape[0]] = sep
                o += sep.shape[0]
            w = tok[i, j]
            a = offs[w]
            b = offs[w + 1]
            out[o:o + b - a] = pool[a:b]
            o += b - a
        out[o] = 10
        o += 1
        ends[i] = o
    return out[:o], ends
