"""The compact form of an n-gram model: a sorted trie with bit-packed word ids and quantized values.

What ``lm-train --trie`` writes in place of the full-precision n-gram arrays and the hash tables
(lmtools-model(5), "The compact trie form"). Built from the model's own arrays: the rows of order
n are sorted lexicographically (oldest word first), so the n-grams that extend row i of order n-1
by one word are one contiguous range of order n. Per order n >= 2 the file keeps

- the last word of every row, ceil(log2 V) bits each;
- a log10 p code per row (q bits) and, below the highest order, a log10 backoff code (b bits);
- below the highest order, the child-range offsets (m_n + 1 entries, as many bits as m_{n+1} needs);

order 1 stays dense: float32 log10 p and backoff by word id, and V + 1 child offsets by word id
(a word without a unigram has an empty range). A lookup of w after the context row c of order n-1
is a binary search for w among the words of c's child range.

Quantization (q, b < 32): per order, the sorted values are cut into 2**bits bins of equal population
and each bin's center is the mean of its values, the binning of M. Federico and N. Bertoldi, "How
many bits are needed to store probabilities for phrase-based translation?" (WMT 2006), which KenLM's
``build_binary -q -b`` also uses; a value is stored as the code of the nearest center, so it moves by
at most the width of its bin. An order with at most 2**bits distinct values keeps them exactly. Backoff
code 0 means exactly 0 (the n-grams that are no context, and any backoff that is 0), the other codes
bin the non-zero backoffs. q or b = 32: the float32 bits themselves, no codebook (exact).

Everything lives in two arrays: ``trie.packed`` (uint64 words; each field starts on a word) and
``trie.centers`` (float32 codebooks), plus the dense unigram arrays; where each field lies follows
from the header's sizes, V, q and b (``trie_layout``), so nothing in the file says it twice.
This module is the model data type (what lmtools.io reads and writes); scoring it is
lmtools/ngram/trie_query.py over kernels/trie.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmtools.errors import LmError

TRIE_LAYOUT = 1
WORDS, PROB, BACKOFF, OFFSETS = 0, 1, 2, 3  # the fields of an order in ``trie_layout``
TRIE_ARRAYS = ("trie.packed", "trie.centers", "trie.unigram_lp", "trie.unigram_bo")
_CHUNK = 1 << 16  # values packed at a time (a multiple of 64: every chunk starts on a word)


def bits_for(n: int) -> int:
    """Bits that hold every integer in 0..n (at least 1)."""
    return max(1, int(n).bit_length())


def packed_words(count: int, bits: int) -> int:
    return -(-count * bits // 64)


def trie_layout(V: int, sizes: list[int], q: int, b: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(fields, cstart, packed length, centers length): ``fields[n, f] = (first word, bits, count)`` of
    field f of order n in ``trie.packed``; ``cstart[n] = (first prob center, first backoff center)``
    in ``trie.centers`` (nothing there for q or b = 32)."""
    N = len(sizes)
    fields = np.zeros((N + 1, 4, 3), np.int64)
    cstart = np.zeros((N + 1, 2), np.int64)
    at = 0
    cat = 0

    def put(n, f, bits, count):
        nonlocal at
        fields[n, f] = (at, bits, count)
        at += packed_words(count, bits)

    wbits = bits_for(max(V - 1, 0))
    for n in range(1, N + 1):
        m = V if n == 1 else sizes[n - 1]
        if n >= 2:
            put(n, WORDS, wbits, m)
            put(n, PROB, q, m)
            cstart[n, 0] = cat
            cat += 0 if q == 32 else 1 << q
            if n < N:
                put(n, BACKOFF, b, m)
        if n < N:
            cstart[n, 1] = cat
            if n >= 2:
                cat += 0 if b == 32 else 1 << b
            put(n, OFFSETS, bits_for(sizes[n]), m + 1)
    return fields, cstart, at, cat


# -- bit packing (numpy; the kernels read the same layout: kernels/trie.get) ----------------------

def pack_into(out: np.ndarray, start: int, values: np.ndarray, bits: int) -> None:
    """Write ``values`` (non-negative, < 2**bits) at ``bits`` bits each, least significant bit first,
    into the uint64 words ``out[start:]``: a chunk at a time as a bit matrix through np.packbits."""
    shifts = np.arange(bits, dtype=np.uint64)
    for lo in range(0, values.size, _CHUNK):
        v = values[lo:lo + _CHUNK].astype(np.uint64)
        mat = ((v[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
        raw = np.packbits(mat.reshape(-1), bitorder="little")
        raw = np.concatenate([raw, np.zeros(-raw.size % 8, np.uint8)])
        words = raw.view("<u8")
        w0 = start + lo * bits // 64
        out[w0:w0 + words.size] |= words


def unpack(arr: np.ndarray, start: int, bits: int, count: int) -> np.ndarray:
    """The ``count`` values of ``bits`` bits at ``arr[start:]`` (the inverse of pack_into)."""
    out = np.empty(count, np.uint64)
    shifts = np.arange(bits, dtype=np.uint64)
    weights = (np.uint64(1) << shifts)
    for lo in range(0, count, _CHUNK):
        k = min(_CHUNK, count - lo)
        w0 = start + lo * bits // 64
        nw = packed_words(k, bits)
        raw = np.ascontiguousarray(arr[w0:w0 + nw]).astype("<u8").view(np.uint8)
        mat = np.unpackbits(raw, bitorder="little")[:k * bits].reshape(k, bits).astype(np.uint64)
        out[lo:lo + k] = (mat * weights).sum(axis=1, dtype=np.uint64)
    return out


# -- quantization -------------------------------------------------------------------------------

def codebook(values: np.ndarray, bins: int) -> np.ndarray:
    """float32 centers (nondecreasing, ``bins`` of them) of ``values``: the distinct values when there
    are at most ``bins`` (the last repeated to fill), else equal-population bins of the sorted values,
    each center their mean."""
    centers = np.zeros(bins, np.float32)
    if values.size == 0:
        return centers
    distinct = np.unique(values.astype(np.float32))
    if distinct.size <= bins:
        centers[:distinct.size] = distinct
        centers[distinct.size:] = distinct[-1]
        return centers
    s = np.sort(values.astype(np.float64))
    ends = (s.size * np.arange(1, bins + 1, dtype=np.int64)) // bins
    starts = np.concatenate([[0], ends[:-1]])  # more values than bins here: no bin is empty
    # each bin summed on its own (not as differences of a running sum: a log10 p of -inf, which an ARPA
    # file may hold, then stays in its bin's center instead of making every later one nan)
    centers[:] = np.add.reduceat(s, starts) / (ends - starts)
    return np.maximum.accumulate(centers)


def encode(values: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """The code of the nearest center of each value (ties: the lower code)."""
    c = centers.astype(np.float64)
    mids = (c[:-1] + c[1:]) / 2
    return np.searchsorted(mids, values.astype(np.float64), side="left").astype(np.uint64)


def quantize_probs(lp: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, centers) of one order's log10 p; q = 32: the float32 bits, no centers."""
    lp = np.ascontiguousarray(lp, dtype=np.float32)
    if q == 32:
        return lp.view(np.uint32).astype(np.uint64), np.zeros(0, np.float32)
    centers = codebook(lp, 1 << q)
    return encode(lp, centers), centers


def quantize_backoffs(bo: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, centers) of one order's log10 backoffs: code 0 is exactly 0, the non-zero values are
    binned into the other 2**b - 1 codes; b = 32: the float32 bits (0.0 is code 0 there too)."""
    bo = np.ascontiguousarray(bo, dtype=np.float32)
    if b == 32:
        return bo.view(np.uint32).astype(np.uint64), np.zeros(0, np.float32)
    nonzero = bo != 0
    rest = codebook(bo[nonzero], (1 << b) - 1)
    centers = np.concatenate([np.zeros(1, np.float32), rest])
    codes = np.zeros(bo.size, np.uint64)
    codes[nonzero] = encode(bo[nonzero], rest) + np.uint64(1)
    return codes, centers


# -- the model in its compact form ----------------------------------------------------------------

@dataclass
class TrieModel:
    """An n-gram model in the compact trie form (read from a file written by ``lm-train --trie``):
    what lm-ppl, lm-score, lm-info and lmtools.api need, not the full-precision arrays."""
    vocab: list[str]
    sizes_: list[int]
    q: int
    b: int
    packed: np.ndarray  # uint64
    centers: np.ndarray  # float32
    uni_lp: np.ndarray  # float32 (V,): NaN where a word has no unigram (<unk>: -100 then)
    uni_bo: np.ndarray  # float32 (V,)
    closed: bool = False  # suffix-closed (trie header's "closed")
    method: str = "?"
    info: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    scores_only: bool = False
    text: dict | None = None
    verify: object = None  # run once before first scoring (a mapped file's large arrays' checksums)

    @property
    def order(self) -> int:
        return len(self.sizes_)

    def sizes(self) -> list[int]:
        return list(self.sizes_)

    def layout(self):
        return trie_layout(len(self.vocab), self.sizes_, self.q, self.b)

    def nbytes(self) -> int:
        return int(self.packed.nbytes + self.centers.nbytes + self.uni_lp.nbytes + self.uni_bo.nbytes)


def check_bits(q, b) -> str | None:
    """Why (q, b) are not quantization bits (None: they are)."""
    for what, v in (("probability", q), ("backoff", b)):
        if type(v) is not int or not (2 <= v <= 24 or v == 32):
            return f"{what} bits must be 2..24 or 32 (no quantization), not {v}"
    return None


def build_trie(model, q: int = 8, b: int = 8) -> tuple[dict, dict[str, np.ndarray]]:
    """(header entry "trie", arrays) of ``model`` (an NGramModel) in the compact form. Raises LmError
    for a model with an n-gram whose prefix (its first n-1 words) is not in it: the trie reaches every
    n-gram through its prefix."""
    why = check_bits(q, b)
    if why:
        raise ValueError(why)
    N, V = model.order, len(model.vocab)
    sizes = model.sizes()
    fields, cstart, n_packed, n_centers = trie_layout(V, sizes, q, b)
    packed = np.zeros(n_packed, np.uint64)
    centers = np.zeros(n_centers, np.float32)
    # dense by word id as ngram.model.unigram_arrays makes them (this module imports no other model code)
    uni = np.asarray(model.ngrams[0])[:, 0] if N else np.zeros(0, np.int32)
    if uni.size and (uni.min() < 0 or uni.max() >= V):
        raise LmError("the model's unigram ids are outside its vocabulary", "recreate the model")
    uni_lp = np.full(V, np.nan, np.float32)
    uni_bo = np.zeros(V, np.float32)
    uni_lp[uni] = model.logprob[0]
    uni_bo[uni] = model.backoff[0]
    if V and np.isnan(uni_lp[0]):
        uni_lp[0] = -100.0  # <unk> without a unigram, as an ARPA file without it is read
    for n in range(1, N + 1):
        rows = np.asarray(model.ngrams[n - 1])
        if n >= 2:
            at, bits, m = fields[n, WORDS]
            pack_into(packed, int(at), rows[:, -1], int(bits))
            codes, cent = quantize_probs(np.asarray(model.logprob[n - 1]), q)
            pack_into(packed, int(fields[n, PROB, 0]), codes, q)
            centers[cstart[n, 0]:cstart[n, 0] + cent.size] = cent
            if n < N:
                codes, cent = quantize_backoffs(np.asarray(model.backoff[n - 1]), b)
                pack_into(packed, int(fields[n, BACKOFF, 0]), codes, b)
                centers[cstart[n, 1]:cstart[n, 1] + cent.size] = cent
        if n < N:
            child = np.asarray(model.ngrams[n])
            if n == 1:
                parent = child[:, 0].astype(np.int64)
                offsets = np.searchsorted(parent, np.arange(V + 1), side="left")
                known = np.isin(parent, rows[:, 0]) if child.shape[0] else np.ones(0, bool)
            else:
                parent = _prefix_rows(child, rows)
                known = parent >= 0
                offsets = np.searchsorted(parent, np.arange(rows.shape[0] + 1), side="left")
            if not known.all():
                raise LmError(f"the model has n-grams of order {n + 1} whose first {n} words are not an n-gram "
                              f"of it, which the trie form cannot hold",
                              "write it with the hash tables instead (drop --trie)")
            pack_into(packed, int(fields[n, OFFSETS, 0]), offsets, int(fields[n, OFFSETS, 1]))
    header = {"layout": TRIE_LAYOUT, "q": q, "b": b, "closed": _suffix_closed(model)}
    arrays = {"trie.packed": packed, "trie.centers": centers, "trie.unigram_lp": uni_lp, "trie.unigram_bo": uni_bo}
    return header, arrays


def _suffix_closed(model) -> bool:
    """Whether every n-gram's newest n-1 words are an n-gram of the model (then the kernel's walk
    stops at the first order without a match): each order's suffixes sorted and walked against the
    order below (kernels.smooth.prefix_index; a set lookup for small models)."""
    for n in range(2, model.order + 1):
        rows, below = np.asarray(model.ngrams[n - 1]), np.asarray(model.ngrams[n - 2])
        if rows.shape[0] == 0:
            continue
        suffix = rows[:, 1:]
        if rows.shape[0] + below.shape[0] <= 10_000:
            have = set(map(tuple, below.tolist()))
            if any(tuple(r) not in have for r in suffix.tolist()):
                return False
            continue
        from lmtools.kernels.smooth import prefix_index

        ordered = suffix[np.lexsort(suffix.T[::-1])]
        probe = np.zeros((ordered.shape[0], n), np.int32)
        probe[:, :n - 1] = ordered  # prefix_index looks up a row's first n-1 ids: the suffix here
        if (prefix_index(probe, np.ascontiguousarray(below, dtype=np.int32)) < 0).any():
            return False
    return True


def _prefix_rows(child: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Row of each child's first n-1 words among ``parent`` (sorted), -1 where absent."""
    if child.shape[0] == 0:
        return np.zeros(0, np.int64)
    if child.shape[0] + parent.shape[0] > 10_000:
        from lmtools.kernels.smooth import prefix_index

        return prefix_index(np.ascontiguousarray(child), np.ascontiguousarray(parent)).astype(np.int64)
    index = {tuple(r): i for i, r in enumerate(parent.tolist())}
    return np.array([index.get(tuple(r[:-1]), -1) for r in child.tolist()], np.int64)


def trie_from_parts(h: dict, a: dict[str, np.ndarray], name: str, mapped=None) -> TrieModel:
    """The TrieModel of a model file's parts (header entry "trie" and the trie.* arrays), checked:
    header fields, array types and lengths against the layout, the codebooks, and the child offsets
    at every order's ends (the kernel clamps every range besides, so damage elsewhere in the packed
    words can change a score but never read outside them)."""
    hint = "recreate it (lm-train MODEL --trie -o NEW.lm)"
    meta = h.get("trie")
    N, V = h["order"], len(h["vocab"])
    sizes = h.get("sizes")
    if not (isinstance(meta, dict) and meta.get("layout") == TRIE_LAYOUT and check_bits(meta.get("q"), meta.get("b"))
            is None and type(meta.get("closed")) is bool and isinstance(sizes, list) and len(sizes) == N
            and all(type(s) is int and s >= 0 for s in sizes)):
        raise LmError(f"{name}: corrupt model header (field trie)", hint)
    q, b = meta["q"], meta["b"]
    for k in TRIE_ARRAYS:
        if k not in a:
            raise LmError(f"{name}: model file lacks array {k}", hint)
    fields, cstart, n_packed, n_centers = trie_layout(V, sizes, q, b)
    packed, centers, ulp, ubo = (a[k] for k in TRIE_ARRAYS)
    if packed.dtype != np.dtype("<u8") or packed.shape != (n_packed,) or centers.dtype != np.float32 \
            or centers.shape != (n_centers,) or ulp.dtype != np.float32 or ubo.dtype != np.float32 \
            or ulp.shape != (V,) or ubo.shape != (V,):
        raise LmError(f"{name}: corrupt model file (trie arrays do not fit its sizes)", hint)
    if np.isnan(centers).any() or not np.isfinite(ubo).all() or (ulp == np.inf).any():
        raise LmError(f"{name}: corrupt model file (trie values are not numbers)", hint)
    for n in range(1, N):
        at, bits, cnt = (int(x) for x in fields[n, OFFSETS])
        ends = [int(v) for v in _ends(packed, at, bits, cnt)]
        if ends != [0, sizes[n]]:
            raise LmError(f"{name}: corrupt model file (trie offsets of order {n})", hint)
    model = TrieModel(list(h["vocab"]), list(sizes), q, b, packed, centers, ulp, ubo, meta["closed"],
                      method=h.get("method", "?"), info=dict(h.get("info", {})),
                      provenance=dict(h.get("provenance", {})), scores_only=bool(h.get("scores_only", False)))
    if mapped is not None and mapped.unchecked:
        model.verify = lambda: mapped.check(list(TRIE_ARRAYS))
    return model


def get(packed: np.ndarray, at: int, bits: int, i: int) -> int:
    """Value i of the field of ``bits`` bits at word ``at`` (Python: a few reads, no kernel)."""
    pos = i * bits
    w, s = at + pos // 64, pos % 64
    v = int(packed[w]) >> s
    if s + bits > 64:
        v |= int(packed[w + 1]) << (64 - s)
    return v & ((1 << bits) - 1)


def _ends(packed, at, bits, count):
    return get(packed, at, bits, 0), get(packed, at, bits, count - 1)
