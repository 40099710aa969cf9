"""Back-off lookups for entropy pruning (numba, no I/O): log10 p(w | h') for every n-gram (h, w) of
one order, under a model some of whose n-grams may be marked removed.

Layout (built by lmtools.ngram.prune). The n-grams of all orders share one global row numbering,
order by order (order k holds rows ``off[k-1] .. off[k]``, lexicographic within the order). For
each row g: ``word[g]`` its newest word, ``lp[g]``/``bo[g]`` its log10 p and log10 backoff,
``alive[g]`` whether it is still in the model, and (orders below the highest) ``child_lo[g] ..
child_hi[g]``, the rows of the order above whose n-1 oldest words are g (sorted by newest word,
since the order is lexicographic). ``uni_row[w]``: the unigram row of word id w, -1 if none.

The walk needs the model to be prefix-closed (every n-gram's oldest n-1 words are an n-gram):
lmtools, KenLM and SRILM write such models, the caller refuses others, and pruning keeps it so.
A row marked removed has no live extensions, so a walk can stop at the first one it meets.
"""

from numba import njit

UNK = 0  # a word without a unigram is scored as <unk> (ngram/model.py)


@njit(cache=True, inline="always")
def _child(g, w, word, alive, child_lo, child_hi):
    """The live row extending row g by word w, or -1."""
    # One return, and the arrays read on every path (the last candidate read in place of one past
    # the end): lower_logp inlines this in its loops, and an early return or a read under a
    # condition left numba's reference counting of the arrays (atomic operations) there.
    lo = child_lo[g]
    end = child_hi[g]
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if word[mid] < w:
            lo = mid + 1
        else:
            hi = mid
    at = min(lo, word.shape[0] - 1)
    found = (lo < end) & (word[at] == w) & alive[at]
    return lo if found else -1


@njit(cache=True, inline="always")
def _find(rows, i, start, stop, uni_row, word, alive, child_lo, child_hi):
    """The live row of the n-gram rows[i, start:stop], or -1."""
    # Inlined, the row given by its index (not a slice made per call), one return and a loop that
    # ends in its condition: as a kernel called per n-gram and context length, it counted references
    # to its arrays (atomic operations) on every call.
    g = uni_row[rows[i, start]]
    live = alive[max(g, 0)]
    g = g if live else -1
    t = start + 1
    while g >= 0 and t < stop:
        g = _child(g, rows[i, t], word, alive, child_lo, child_hi)
        t += 1
    return g


@njit(cache=True)
def lower_logp(rows, uni_row, word, lp, bo, alive, child_lo, child_hi, out):
    """For each n-gram row (h, w) of ``rows`` (int32 (m, n), n >= 2): log10 p(w | h'), h' = h without
    its oldest word, by the back-off rule (the longest live n-gram s w with s a suffix of h', plus the
    backoffs of the live suffixes of h' longer than s), summed in float64 from the longest
    context down. Written to ``out`` (float64, m)."""
    m, n = rows.shape
    for i in range(m):
        w = rows[i, n - 1]
        acc = 0.0
        done = False
        # contexts rows[i, j:n-1] for j = 1 (h' itself) .. n-2 (one word)
        for j in range(1, n - 1):
            g = _find(rows, i, j, n - 1, uni_row, word, alive, child_lo, child_hi)
            if g < 0:
                continue  # h'[j:] not in the model: no backoff, and no n-gram extends it
            c = _child(g, w, word, alive, child_lo, child_hi)
            if c >= 0:
                out[i] = acc + lp[c]
                done = True
                break
            acc += bo[g]
        if not done:
            u = uni_row[w]
            if u < 0 or not alive[u]:
                u = uni_row[UNK]
            out[i] = acc + lp[u]
