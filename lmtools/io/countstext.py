"""Counts as text: one n-gram per line, ``w1 w2 .. wn<TAB>count`` (the format of SRILM's
``ngram-count -write``), read into the counts model (``Levels``) and written from it.

Reading (``read_text_counts``):
- The count is what follows the line's last TAB: a decimal integer (ASCII whitespace around it is
  allowed, so CRLF lines read); the n-gram is what precedes it, split at ASCII whitespace as text is.
- Lines may come in any order, orders interleaved; a repeated n-gram's counts are summed.
- Orders 1..N must all be present, and every n-gram of order n >= 2 needs lines of its own for its
  first n-1 words (its prefix) and its last n-1 words (its suffix), as counts of text always have:
  the counts model is a trie and Kneser-Ney reads the suffixes.
- ``<s>`` may only begin an n-gram and ``</s>`` only end one; the unigram ``<s>`` is the number of
  sentences. Counts are >= 1, except that a unigram may have count 0: a vocabulary word that never
  occurred (a closed vocabulary, an unseen ``<unk>``).
- Word ids follow the words' first appearance in the text (``<unk>``, ``<s>``, ``</s>`` are 0, 1, 2),
  so counts written by ``write_text_counts`` (every unigram first, in id order) read back into the
  same vocabulary.
- Tokens (words and ``</s>``) and sentences are not in the format: they are the sum of the unigram
  counts but ``<s>``'s, and ``<s>``'s count (what lm-count records).
Every bad line is one LmError naming FILE:LINE.

Writing (``write_text_counts``): orders 1..N in turn; order 1 lists every vocabulary word in id order
(``<unk>``, ``<s>``, ``</s>`` first, a word with count 0 too), each higher order its n-grams in the
counts model's order (by word ids, oldest word first).
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np

from lmtools.errors import LmError
from lmtools.ngram.counts import Counts, Levels

MAX_ORDER = 1000  # the most words a line may have (lm-count's largest -n)
SNIFF_BYTES = 1 << 20  # the first line is looked at up to this many bytes
SMALL_WRITE = 20000  # n-grams written in plain Python below this (no kernel to load)
WRITE_BLOCK = 1 << 18  # n-grams formatted per kernel call (bounds the output buffer)
HINT_FORMAT = "text counts have one 'w1 w2 .. wn<TAB>count' per line"
HINT_CORPUS = ("a text corpus whose first line has a TAB is read as counts: replace its TABs with spaces "
               "(tr '\\t' ' ' gives the same tokens)")


# ----------------------------------------------------------------------------------------------
# Telling text counts from a text corpus


def is_counts_line(first_line: bytes) -> bool:
    """The rule that tells text counts from a text corpus: a TAB in the first line. (A corpus whose
    first line holds a TAB is then refused at its first line that is not ``n-gram TAB count``; TAB is
    whitespace to the text reader, so ``tr '\\t' ' '`` gives the same corpus without them.)"""
    return b"\t" in first_line


def first_line(stream: BinaryIO, limit: int = SNIFF_BYTES) -> tuple[bytes, BinaryIO]:
    """The first line of ``stream`` (up to ``limit`` bytes, without its newline) and a stream that
    still starts with it (a pipe cannot be rewound)."""
    head = b""
    read = stream.read1 if hasattr(stream, "read1") else stream.read
    while b"\n" not in head and len(head) < limit:
        part = read(1 << 16)
        if not part:
            break
        head += part
    line = head.split(b"\n", 1)[0][:limit]
    return line, io.BufferedReader(_Prefixed(head, stream), buffer_size=1 << 20)


class _Prefixed(io.RawIOBase):
    """Raw stream: bytes already read, then the rest of the underlying stream."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = memoryview(head), rest
        self.name = getattr(rest, "name", "<stdin>")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read1(len(b)) if hasattr(self.rest, "read1") else self.rest.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        import sys

        if self.rest is not sys.stdin.buffer:
            self.rest.close()
        super().close()


# ----------------------------------------------------------------------------------------------
# Reading


def read_text_counts(source: str | BinaryIO, name: str | None = None, max_line: int | None = None) -> Levels:
    """The counts model (``Levels``; provenance empty, text kind unknown) of text counts from a path
    ('-': stdin; gzip, bzip2, xz by their magic) or a binary stream."""
    from lmtools.io.text import DEFAULT_MAX_LINE, TextOptions, display_name, iter_line_chunks, open_binary

    path = source if isinstance(source, str) else "-"
    name = name or (display_name(source) if isinstance(source, str) else str(getattr(source, "name", "<stdin>")))
    stream = open_binary(source) if isinstance(source, str) else source
    opts = TextOptions(max_line=max_line or DEFAULT_MAX_LINE)
    parser = _Parser(name)
    try:
        for chunk in iter_line_chunks(stream, path, opts=opts):
            parser.add(chunk.data, chunk.first_line)
    except LmError as e:
        if "invalid UTF-8" in e.message:  # the text reader's hint names a corpus option
            raise LmError(e.message.replace(display_name(path), name, 1), "convert the counts to UTF-8") from None
        if e.message.startswith(display_name(path) + ":"):
            raise LmError(name + e.message[len(display_name(path)):], e.hint) from None
        raise
    finally:
        if isinstance(source, str) and source != "-":
            stream.close()
    return parser.levels()


class _Parser:
    """Text counts a chunk at a time: per order, the n-grams' word ids, counts and line numbers."""

    def __init__(self, name: str):
        from lmtools.io.text import TokenTable

        self.name = name
        self.table = TokenTable()
        self.rows: dict[int, list[np.ndarray]] = {}
        self.counts: dict[int, list[np.ndarray]] = {}
        self.lines: dict[int, list[np.ndarray]] = {}

    def add(self, data: bytes, first: int) -> None:
        from lmtools import memory
        from lmtools.kernels.countstext import parse_counts

        buf = np.frombuffer(data, np.uint8)
        n_lines = data.count(b"\n") + 1
        ids = memory.empty(len(data) // 2 + 2, np.int32)
        orders = np.empty(n_lines, np.int32)
        counts = np.empty(n_lines, np.int64)
        t = self.table
        status, done, n_ids, t.hashes, t.slots, t.pool, t.offsets, t.n_words = parse_counts(
            buf, t.hashes, t.slots, t.pool, t.offsets, t.n_words, ids, orders, counts, MAX_ORDER)
        if status:
            raise self._bad_line(data, first, int(done), int(status))
        orders, counts = orders[:done], counts[:done]
        starts = np.cumsum(orders) - orders
        for n in np.unique(orders).tolist():
            sel = np.flatnonzero(orders == n)
            rows = ids[starts[sel][:, None] + np.arange(n)]
            self.rows.setdefault(n, []).append(rows)
            self.counts.setdefault(n, []).append(counts[sel])
            self.lines.setdefault(n, []).append(sel + first)

    def _bad_line(self, data: bytes, first: int, index: int, status: int) -> LmError:
        from lmtools.kernels import countstext as k

        lines = data.split(b"\n", index + 1)
        line = lines[index].decode("utf-8", "replace").rstrip("\r")
        where = f"{self.name}:{first + index}"
        count = line.rpartition("\t")[2].strip()
        words = " ".join(line.rpartition("\t")[0].split())
        what = {
            k.NO_TAB: ("an empty line, not 'n-gram TAB count'" if not line.strip() else
                       f"no TAB in {_show(line)}: not 'n-gram TAB count'",
                       f"{HINT_FORMAT}; " + HINT_CORPUS),
            k.NO_WORDS: ("an empty n-gram (nothing before the TAB)", HINT_FORMAT),
            k.NOT_INTEGER: (f"count {_show(count)} is not an integer",
                            "counts are whole numbers (fractional counts are not read); " + HINT_CORPUS),
            k.NEGATIVE: (f"negative count {_show(count)}", "counts are whole numbers >= 1"),
            k.TOO_LARGE: (f"count {_show(count)} does not fit 64 bits", "counts are at most 2^63-1"),
            k.ZERO: (f"count 0 for the {len(words.split())}-gram {_show(words)}",
                     "an n-gram of order 2 or more needs a count >= 1 (only a unigram may be 0: a word "
                     "that never occurred); drop the line"),
            k.BOS_INSIDE: (f"<s> inside the n-gram {_show(words)}",
                           "<s> may only begin an n-gram and </s> only end one (they mark sentence ends)"),
            k.EOS_INSIDE: (f"</s> inside the n-gram {_show(words)}",
                           "<s> may only begin an n-gram and </s> only end one (they mark sentence ends)"),
            k.ORDER_TOO_LARGE: (f"an n-gram of more than {MAX_ORDER} words", HINT_FORMAT),
        }[status]
        return LmError(f"{where}: {what[0]}", what[1])

    def levels(self) -> Levels:
        from lmtools.kernels.count import add_weighted, find_pairs

        if not self.rows:
            raise LmError(f"{self.name}: no counts (an empty input)", HINT_FORMAT)
        vocab = self.table.words()
        V = len(vocab)
        N = max(self.rows)
        for n in range(1, N):
            if n not in self.rows:
                above = min(m for m in self.rows if m > n)
                line = int(min(int(a.min()) for a in self.lines[above]))
                raise LmError(f"{self.name}:{line}: a {above}-gram, but the counts have no {n}-grams",
                              f"text counts hold every order 1..{N} (count the text with -n {N})")
        rows1, cnt1, _ = self._order(1)
        uni = np.zeros(V, np.int64)
        np.add.at(uni, rows1[:, 0], cnt1)
        declared = np.zeros(V, bool)
        declared[rows1[:, 0]] = True
        tables, levels = [], []
        for n in range(2, N + 1):
            rows, cnt, lines = self._order(n)
            # prefix: the first n-1 words, found order by order (the orders below are complete)
            pref = rows[:, 0].copy()
            pref[~declared[pref]] = -1
            for k in range(2, n):
                out = np.empty(rows.shape[0], np.int32)
                find_pairs(pref, rows[:, k - 1], tables[k - 2][0], tables[k - 2][1], out)
                pref = out
            self._missing(pref, rows, lines, n, 0, vocab)
            suf = rows[:, 1].copy()
            suf[~declared[suf]] = -1
            for k in range(2, n):
                out = np.empty(rows.shape[0], np.int32)
                find_pairs(suf, rows[:, k], tables[k - 2][0], tables[k - 2][1], out)
                suf = out
            self._missing(suf, rows, lines, n, 1, vocab)
            m = rows.shape[0]
            log2 = max(1, int(np.ceil(np.log2(2 * m + 1))))
            table, shift = np.full(2 << log2, -1, np.int64), 64 - log2
            prefix, word, count = np.empty(m, np.int32), np.empty(m, np.int32), np.empty(m, np.int64)
            ids = np.empty(m, np.int32)
            distinct = add_weighted(pref, np.ascontiguousarray(rows[:, -1]), cnt, table, shift, prefix, word, count, 0,
                                    ids)
            tables.append((table, shift))
            levels.append((prefix[:distinct], word[:distinct], count[:distinct]))
            del self.rows[n], self.counts[n], self.lines[n]
        sentences = int(uni[1])
        tokens = int(uni.sum()) - sentences
        return Levels(list(vocab), uni, levels, tokens, sentences)

    def _order(self, n: int):
        rows = np.concatenate(self.rows[n]) if len(self.rows[n]) > 1 else self.rows[n][0]
        cnt = np.concatenate(self.counts[n]) if len(self.counts[n]) > 1 else self.counts[n][0]
        lines = np.concatenate(self.lines[n]) if len(self.lines[n]) > 1 else self.lines[n][0]
        return rows, cnt, lines

    def _missing(self, found: np.ndarray, rows, lines, n: int, start: int, vocab) -> None:
        bad = np.flatnonzero(found < 0)
        if not bad.size:
            return
        i = int(bad[np.argmin(lines[bad])])
        gram = [vocab[w] for w in rows[i].tolist()]
        part = gram[start:start + n - 1]
        what = "prefix" if start == 0 else "suffix"
        raise LmError(f"{self.name}:{int(lines[i])}: the {n}-gram {_show(' '.join(gram))} has no line for its "
                      f"{what} {_show(' '.join(part))}",
                      "counts of text have a line for every n-gram's first and last n-1 words; "
                      "count the text again (lm-count --text) or add the line")


def _show(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


# ----------------------------------------------------------------------------------------------
# Writing


def write_text_counts(counts: Counts | Levels, out: BinaryIO) -> None:
    """Write a counts model as text counts (see the module's docstring for the order of the lines)."""
    if isinstance(counts, Levels):
        counts = counts.to_counts(counts.provenance)
    total = sum(int(g.shape[0]) for g in counts.ngrams)
    words = [w.encode("utf-8") for w in counts.vocab]
    if total < SMALL_WRITE:
        for rows, cnt in zip(counts.ngrams, counts.counts):
            out.write(b"".join(b" ".join(words[w] for w in row) + b"\t%d\n" % c
                               for row, c in zip(rows.tolist(), cnt.tolist())))
        return
    write_text_count_blocks(counts.vocab, zip(counts.ngrams, counts.counts), out)


def write_text_count_blocks(vocab: list[str], blocks, out: BinaryIO) -> None:
    """Write text counts from (rows, counts) blocks in the order of the lines (orders ascending, rows
    sorted): counts held on disk (lmtools.ngram.external.SortedCounts) are written a block at a time."""
    from lmtools.kernels.countstext import format_counts, format_size

    words = [w.encode("utf-8") for w in vocab]
    lengths = np.fromiter((len(w) for w in words), np.int64, len(words))
    offsets = np.zeros(len(words) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    pool = np.frombuffer(b"".join(words), np.uint8)
    for rows, cnt in blocks:
        for lo in range(0, rows.shape[0], WRITE_BLOCK):
            block = np.ascontiguousarray(rows[lo:lo + WRITE_BLOCK])
            buf = np.empty(format_size(lengths, block), np.uint8)
            used = format_counts(pool, offsets, block, np.ascontiguousarray(cnt[lo:lo + WRITE_BLOCK], np.int64), buf)
            out.write(memoryview(buf[:used]))
