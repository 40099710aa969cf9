"""ARPA back-off n-gram files in and out (the format of KenLM, SRILM and most decoders).

Reading (``read_arpa``):
- plain text or gzip/bzip2/xz (recognised by magic bytes), from a path or a binary stream;
- vocabulary ids: ``<unk>``, ``<s>``, ``</s>`` are 0, 1, 2, every other word gets the next id in
  order of first appearance in the unigram section;
- fields are separated by ASCII whitespace: ``log10p w1 .. wn [backoff]``; a missing backoff is 0;
- a malformed line raises LmError naming the file and line number: a field that is not a number
  (``nan`` included), a log10 probability above 0 (beyond a tolerance of 1e-4; +inf included), an
  infinite backoff (a positive backoff is legal); -inf as a log10 probability is log 0;
- a header count that disagrees with its section is an error naming the header line;
- damaged gzip/bzip2/xz data is one error line ("damaged gzip data (...)");
- an ARPA without ``<unk>`` gets one with log10 p = -100 and backoff 0 (as KenLM substitutes),
  with a warning: an unknown word then costs 100 in log10, i.e. it is practically impossible;
  a missing ``<s>`` or ``</s>`` is added the same way (log10 p = -99), with a warning.
The n-grams of each order are returned sorted lexicographically by id (NGramModel's contract),
whatever their order in the file. Duplicate n-grams are an error.

Writing (``write_arpa``): header, then per order ``log10p<TAB>w1 .. wn<TAB>backoff`` (no backoff
on the highest order), numbers in the shortest form that reads back to the same float32,
log10 p values of -inf written as -99 (the ARPA convention for log 0).
"""

from __future__ import annotations

import os
import re
import sys
from typing import BinaryIO, Callable, TextIO

import numpy as np

from lmtools.constants import LOG_ZERO  # what ARPA writes for log10(0)
from lmtools.errors import LmError
from lmtools.ngram.model import NGramModel
from lmtools.vocab import SPECIALS

MISSING_UNK_LOGPROB = -100.0  # log10 p given to <unk> when an ARPA has none
_HEADER_RE = re.compile(rb"^\s*ngram\s+(\d{1,6})\s*=\s*(\d{1,18})\s*$")
_SECTION_RE = re.compile(rb"^\\(\d{1,6})-grams:\s*$")
# numbers as the section kernel reads them: decimal with optional exponent, or inf; no nan, no '_'
_NUMBER_RE = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?[iI][nN][fF]")
# As lmtools.kernels.arpa reads orders >= 2 (the same values; a test checks), without importing numba
LOGPROB_TOLERANCE = 1e-4  # log10 p above 0 by more than this is not a probability
FLOAT32_MAX = 3.4028234663852886e38
_NOT_A_NUMBER = "the log10 probability is not a number"
_ABOVE_ZERO = "the log10 probability is above 0 (p > 1)"
_BACKOFF_NOT_A_NUMBER = "the backoff is not a number"
_BACKOFF_INFINITE = "the backoff is infinite"
_FIX_HINT = "ARPA lines are 'log10p<TAB>w1 .. wn[<TAB>backoff]'; fix or regenerate the file"


def _default_warn(msg: str) -> None:
    from lmtools.messages import warn

    warn(msg)


def _read_all(source, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (str, os.PathLike)):
        from lmtools.io.text import open_binary

        name = name or ("<stdin>" if str(source) == "-" else str(source))
        stream = open_binary(str(source))
        try:
            data = stream.read()
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
    else:
        name = name or str(getattr(source, "name", "<stream>"))
        data = source.read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    from lmtools.io.text import decompress

    return decompress(data, name), name


def _number(field: bytes) -> float | None:
    """The value of an ARPA number field, or None when it is not one (as the section kernel reads)."""
    if not _NUMBER_RE.fullmatch(field):
        return None
    return float(field)


def _line_no(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _line_at(data: bytes, offset: int) -> str:
    end = data.find(b"\n", offset)
    line = data[offset: end if end >= 0 else len(data)]
    text = line.decode("utf-8", "replace")
    return text if len(text) <= 80 else text[:77] + "..."


def read_arpa(source: str | os.PathLike | BinaryIO, warn: Callable[[str], None] | None = None,
              name: str | None = None) -> NGramModel:
    """Read an ARPA file (path, '-' or binary stream; plain or compressed) into an NGramModel.

    ``warn`` receives warnings (default: one ``lm-x: warning:`` line on stderr); ``name`` is the
    file name used in messages (default: the path or the stream's name)."""
    warn = warn or _default_warn
    data, name = _read_all(source, name)

    def fail(offset: int, what: str):
        raise LmError(f"{name}:{_line_no(data, offset)}: malformed ARPA line ({what}): {_line_at(data, offset)!r}",
                      _FIX_HINT)

    def _count_mismatch(n: int, found: int):
        at = declared_at[n]
        raise LmError(f"{name}:{_line_no(data, at)}: the ARPA header announces {declared[n]} {n}-grams, "
                      f"the section has {found}", "the file is damaged or was edited; regenerate it")

    # --- \data\ header
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte order mark
    while start < len(data) and data[start:start + 1] in b" \t\r\n":
        start += 1
    if not data.startswith(b"\\data\\", start):
        raise LmError(f"{name}: not an ARPA file (no \\data\\ line at the start)",
                      "give an ARPA file or an lmtools model")
    pos = data.find(b"\n", start)
    pos = len(data) if pos < 0 else pos + 1
    declared: dict[int, int] = {}
    declared_at: dict[int, int] = {}  # offset of each 'ngram N=COUNT' line
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        line = data[pos:end]
        if line.strip() == b"":
            pos = end + 1
            continue
        if line.startswith(b"\\"):
            break
        m = _HEADER_RE.match(line)
        if not m:
            fail(pos, "expected 'ngram N=COUNT' in the \\data\\ header")
        if int(m.group(1)) in declared:
            fail(pos, f"a second 'ngram {int(m.group(1))}=' line")
        declared[int(m.group(1))] = int(m.group(2))
        declared_at[int(m.group(1))] = pos
        pos = end + 1
    if not declared:
        raise LmError(f"{name}: ARPA header lists no 'ngram N=COUNT' lines", _FIX_HINT)
    order = max(declared)
    if sorted(declared) != list(range(1, order + 1)):
        raise LmError(f"{name}: ARPA header lists orders {sorted(declared)}", "orders must be 1..N without gaps")

    # --- section boundaries: lines that start with a backslash
    marks: list[tuple[int, int, bytes]] = []  # (line start, line end, line)
    p = pos
    while p < len(data):
        e = data.find(b"\n", p)
        e = len(data) if e < 0 else e
        marks.append((p, e, data[p:e].rstrip()))
        nxt = data.find(b"\n\\", e)
        if nxt < 0:
            break
        p = nxt + 1
    sections: list[tuple[int, int]] = []  # (body start, body end) per order
    end_seen = False
    for k, (ls, le, line) in enumerate(marks):
        if line == b"\\end\\":
            end_seen = True
            if k != order:
                break
            rest = data[le:].strip()
            if rest:
                fail(le + 1 + (len(data[le + 1:]) - len(data[le + 1:].lstrip())), "text after \\end\\")
            break
        m = _SECTION_RE.match(line)
        if not m:
            fail(ls, "unknown section marker")
        n = int(m.group(1))
        if n != len(sections) + 1 or n > order:
            fail(ls, f"expected section \\{len(sections) + 1}-grams:" if len(sections) < order else "expected \\end\\")
        body_end = marks[k + 1][0] if k + 1 < len(marks) else len(data)
        sections.append((le + 1, body_end))
    if len(sections) != order:
        raise LmError(f"{name}: ARPA file has {len(sections)} n-gram sections, its header announces {order}",
                      "the file may be truncated; regenerate it")
    if not end_seen:
        raise LmError(f"{name}: ARPA file has no \\end\\ line", "the file may be truncated; regenerate it")

    # --- unigrams (Python: one line per vocabulary word)
    s0, e0 = sections[0]
    ids: dict[str, int] = {w: i for i, w in enumerate(SPECIALS)}
    vocab = list(SPECIALS)
    uni_lp: dict[int, float] = {}
    uni_bo: dict[int, float] = {}
    off = s0
    body = data[s0:e0]
    for raw in body.split(b"\n"):
        lo = off
        off += len(raw) + 1
        parts = raw.split()
        if not parts:
            continue
        if len(parts) not in (2, 3):
            fail(lo, "too few words for this section" if len(parts) < 2 else "too many fields")
        lp = _number(parts[0])
        if lp is None:
            fail(lo, _NOT_A_NUMBER)
        if lp > LOGPROB_TOLERANCE:
            fail(lo, _ABOVE_ZERO)
        if lp < -FLOAT32_MAX:
            lp = -np.inf  # log 0, as the kernel rounds it (and without numpy's overflow warning)
        bo = _number(parts[2]) if len(parts) == 3 else 0.0
        if bo is None:
            fail(lo, _BACKOFF_NOT_A_NUMBER)
        if not abs(bo) <= FLOAT32_MAX:
            fail(lo, _BACKOFF_INFINITE)
        try:
            word = parts[1].decode("utf-8")
        except UnicodeDecodeError:
            fail(lo, "the word is not valid UTF-8")
        wid = ids.get(word)
        if wid is None:
            wid = ids[word] = len(vocab)
            vocab.append(word)
        elif wid in uni_lp:
            fail(lo, f"duplicate unigram {word!r}")
        uni_lp[wid] = lp
        uni_bo[wid] = bo
    n_uni = len(uni_lp)
    if declared[1] != n_uni:
        _count_mismatch(1, n_uni)
    for wid, word in enumerate(SPECIALS):
        if wid not in uni_lp:
            if wid == 0:
                warn(f"{name}: the ARPA file has no <unk>; unknown words get log10 p = {MISSING_UNK_LOGPROB:g}")
                uni_lp[0] = MISSING_UNK_LOGPROB
            else:
                warn(f"{name}: the ARPA file has no {word}; added with log10 p = {LOG_ZERO:g}")
                uni_lp[wid] = LOG_ZERO
            uni_bo[wid] = 0.0
    V = len(vocab)
    ngrams = [np.arange(V, dtype=np.int32).reshape(V, 1)]
    logprob = [np.array([uni_lp[i] for i in range(V)], dtype=np.float32)]
    backoff = [np.array([uni_bo[i] for i in range(V)], dtype=np.float32)]
    sizes = [n_uni]

    # --- orders >= 2 (numba kernel over the raw bytes)
    if order > 1:
        from lmtools.kernels.arpa import ERR_MESSAGES, build_table, parse_section
        from lmtools.kernels.smooth import is_sorted_unique

        enc = [w.encode("utf-8") for w in vocab]
        offsets = np.zeros(V + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in enc])
        pool = np.frombuffer(b"".join(enc), np.uint8) if offsets[-1] else np.zeros(1, np.uint8)
        hashes, slots = build_table(pool, offsets)
        buf = np.frombuffer(data, np.uint8)
        for n in range(2, order + 1):
            s, e = sections[n - 1]
            cap = data.count(b"\n", s, e) + 1
            g = np.empty((cap, n), np.int32)
            lp = np.empty(cap, np.float32)
            bo = np.empty(cap, np.float32)
            rows, err, _, at, with_bo = parse_section(buf, s, e, n, hashes, slots, pool, offsets, g, lp, bo)
            if err:
                fail(int(at), ERR_MESSAGES[int(err)])
            g, lp, bo = g[:rows], lp[:rows], bo[:rows]
            if rows > 1 and not is_sorted_unique(g):  # lmtools writes sorted files; others may not
                perm = np.lexsort(g.T[::-1])
                g, lp, bo = g[perm], lp[perm], bo[perm]
                dup = np.flatnonzero(np.all(g[1:] == g[:-1], axis=1))
                if dup.size:
                    words = " ".join(vocab[i] for i in g[dup[0]])
                    raise LmError(f"{name}: duplicate {n}-gram {words!r} in the ARPA file", _FIX_HINT)
            if declared[n] != rows:
                _count_mismatch(n, rows)
            ngrams.append(np.ascontiguousarray(g))
            logprob.append(lp)
            backoff.append(bo)
            sizes.append(rows)
    if order > 1 and (backoff[-1] != 0).any():
        warn(f"{name}: backoff weights on the highest order ({order}) are ignored")
        backoff[-1] = np.zeros_like(backoff[-1])
    return NGramModel(vocab=vocab, ngrams=ngrams, logprob=logprob, backoff=backoff, method="arpa",
                      info={"source": name}, provenance={"from_arpa": name})


# ----------------------------------------------------------------------------------------------
# Writing


CHUNK_ROWS = 1 << 18


def _rows(a, start: int, stop: int, dtype) -> np.ndarray:
    """Rows start..stop-1 of an array in memory or on disk (io.spill.DiskArray: read as needed, so a
    model estimated in a memory budget is written without being held whole)."""
    part = a.read(start, stop) if hasattr(a, "chunks") else a[start:stop]
    return np.ascontiguousarray(part, dtype=dtype)


def write_arpa(model: NGramModel, stream: TextIO | BinaryIO) -> None:
    """Write ``model`` as ARPA text (UTF-8) to a text or binary stream.

    Every line of orders < N has a backoff; lines are formatted by a numba kernel in chunks."""
    from lmtools.kernels.arpa import format_lines, line_bytes_bound

    N = model.order
    enc = [w.encode("utf-8") for w in model.vocab]
    offsets = np.zeros(len(enc) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in enc])
    pool = np.frombuffer(b"".join(enc), np.uint8) if offsets[-1] else np.zeros(1, np.uint8)
    binary = not hasattr(stream, "encoding")

    def emit(text: str | bytes) -> None:
        if binary:
            stream.write(text.encode("utf-8") if isinstance(text, str) else text)
        else:
            stream.write(text.decode("utf-8") if isinstance(text, bytes) else text)

    emit("\\data\\\n" + "".join(f"ngram {n}={size}\n" for n, size in enumerate(model.sizes(), start=1)))
    for n in range(1, N + 1):
        emit(f"\n\\{n}-grams:\n")
        g, lp, bo = model.ngrams[n - 1], model.logprob[n - 1], model.backoff[n - 1]
        for a in range(0, g.shape[0], CHUNK_ROWS):
            b = min(a + CHUNK_ROWS, g.shape[0])
            rows = _rows(g, a, b, np.int32)
            out = np.empty(line_bytes_bound(rows, offsets), np.uint8)
            size = format_lines(rows, _rows(lp, a, b, np.float32), _rows(bo, a, b, np.float32), n < N, pool,
                                offsets, out)
            emit(out[:size].tobytes())
    emit("\n\\end\\\n")
