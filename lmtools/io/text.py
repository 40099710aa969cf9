"""Reading text: files or stdin, compressed or not, validated as UTF-8, turned into token ids.

Conventions (DESIGN.md, "Text conventions"): one sentence per line; an empty line is a sentence
with no words; tokens are separated by ASCII whitespace; ``<s>``/``</s>`` are added around every
line and a literal ``<s>``/``</s>`` inside a line is dropped (counted, the caller warns once);
``<unk>`` in the text is the unknown-word token itself.

The fast path (``encode_chunks``) reads whole lines in large chunks and tokenizes their bytes in a
numba kernel; Python touches strings only for the vocabulary. A line is held in memory whole: a line
longer than ``max_line`` bytes (64 MiB unless --max-line says otherwise) is an error naming its file
and line, and a long line costs about twice its size while it is read (its pieces and the joined
line; UTF-8 is validated a few MB at a time), plus 5 bytes per token for its ids.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import re
import sys
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from lmtools.constants import ASCII_WHITESPACE
from lmtools.errors import LmError
from lmtools.vocab import SPECIALS

CHUNK_BYTES = 8 << 20
DEFAULT_MAX_LINE = 64 << 20  # bytes in one line, at most (--max-line raises it)
CHAR_SPACE = "<sp>"  # the token standing for a run of whitespace in --chars mode
ENCODING_ERRORS = ("strict", "replace")
# The text rule: tokens are split at ASCII whitespace only (bytes 9-13 and 32: tab, newline, VT, FF,
# CR, space), as KenLM does; any other character (U+00A0, \x1c-\x1f, U+3000...) is part of a token.
# A literal <s> or </s> in the text is dropped. line_words is the Python copy of the rule,
# kernels.tokenize.next_token (with is_space and is_sentence_mark) the numba one; tests check they agree.
_ASCII_WS = re.compile("[" + re.escape(ASCII_WHITESPACE) + "]+")
_MARKS = (SPECIALS[1], SPECIALS[2])  # <s>, </s>
_MARKS_BYTES = tuple(w.encode() for w in _MARKS)


# ----------------------------------------------------------------------------------------------
# Opening files


_PUT_BACK: dict[str, BinaryIO] = {}  # see put_back


def put_back(path: str, stream: BinaryIO) -> None:
    """Have the next ``open_binary(path)`` return ``stream``: the input of a named pipe (a FIFO,
    ``<(command)``) already read from to tell what it holds, put back in front of the rest (it cannot be
    opened again); ``stream`` is decompressed already."""
    _PUT_BACK[path] = stream


def open_binary(path: str) -> BinaryIO:
    """Open a path (or ``-`` for stdin) for reading bytes, decompressing gzip, bzip2 or xz.

    Compression is recognised by its magic bytes, so compressed stdin works too.
    """
    again = _PUT_BACK.pop(path, None) if path != "-" else None
    if again is not None:
        return again
    if path == "-":
        raw = sys.stdin.buffer
        if not hasattr(raw, "peek"):
            raw = io.BufferedReader(raw)
        name = "<stdin>"
    else:
        try:
            raw = open(path, "rb")
        except FileNotFoundError:
            raise LmError(f"{path}: no such file", "check the path") from None
        except IsADirectoryError:
            raise LmError(f"{path}: is a directory", "give a file") from None
        except PermissionError:
            raise LmError(f"{path}: permission denied", "check the file's permissions") from None
        except OSError as e:
            raise LmError(f"{path}: cannot open ({e.strerror})", "check the path") from None
        name = path
    try:
        magic = raw.peek(6)[:6]
    except OSError as e:
        raise LmError(f"{name}: cannot read ({e.strerror or e})", "check the path") from None
    kind = compression_of(magic)
    if kind == "gzip":
        return _Named(_Decompressing(gzip.GzipFile(fileobj=raw, mode="rb"), name, kind, raw), name)
    if kind == "bzip2":
        return _Named(_Decompressing(bz2.BZ2File(raw, mode="rb"), name, kind, raw), name)
    if kind == "xz":
        return _Named(_Decompressing(lzma.LZMAFile(raw, mode="rb"), name, kind, raw), name)
    return raw


def compression_of(magic: bytes) -> str | None:
    """"gzip", "bzip2" or "xz" when ``magic`` (the first 6 bytes) starts such a stream, else None."""
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic[:3] == b"BZh":
        return "bzip2"
    if magic[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return None


# What a damaged gzip, bzip2 or xz stream raises while it is read.
DECOMPRESSION_ERRORS = (EOFError, zlib.error, lzma.LZMAError, OSError, ValueError)


def damaged(name: str, kind: str, e: BaseException) -> LmError:
    """The one-line error for a compressed stream that cannot be decompressed (or a read that failed)."""
    if isinstance(e, OSError) and e.errno is not None:  # the device, not the data
        return LmError(f"{name}: cannot read ({e.strerror or e})", "check the file and the disk")
    detail = str(e) or type(e).__name__
    return LmError(f"{name}: damaged {kind} data ({detail})",
                   "the file is cut short or corrupt; recompress or recreate it")


def decompress(data: bytes, name: str) -> bytes:
    """``data`` decompressed when it is a gzip, bzip2 or xz stream (by its magic), else itself."""
    kind = compression_of(data[:6])
    if kind is None:
        return data
    try:
        if kind == "gzip":
            return gzip.decompress(data)
        if kind == "bzip2":
            return bz2.decompress(data)
        return lzma.decompress(data)
    except DECOMPRESSION_ERRORS as e:
        raise damaged(name, kind, e) from None


class _Decompressing(io.RawIOBase):
    """A raw reader over a gzip/bzip2/xz file object whose damaged data becomes one LmError."""

    def __init__(self, inner, name: str, kind: str, source=None):
        self.inner, self.display_name, self.kind, self.source = inner, name, kind, source

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            return self.inner.readinto(b)
        except DECOMPRESSION_ERRORS as e:
            raise damaged(self.display_name, self.kind, e) from None

    def close(self) -> None:
        try:
            self.inner.close()
            if self.source is not None and self.source is not sys.stdin.buffer:
                self.source.close()  # the compressed file (the decompressor leaves it open)
        except DECOMPRESSION_ERRORS:
            pass
        super().close()


class _Named(io.BufferedReader):
    """A decompressing reader that remembers the file name and offers peek() and read1()."""

    def __init__(self, inner, name):
        super().__init__(inner, buffer_size=1 << 20)
        self.display_name = name

    @property
    def name(self):
        return self.display_name


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


# ----------------------------------------------------------------------------------------------
# Chunks of whole lines, validated


@dataclass
class TextOptions:
    lower: bool = False
    chars: bool = False
    encoding_errors: str = "strict"  # or "replace": invalid bytes become U+FFFD, lines counted
    max_line: int = DEFAULT_MAX_LINE  # bytes in one line (without its newline), at most

    def kind(self) -> dict:
        """How the text was read, as models record it (header key ``text``): which tokens, which case."""
        return {"chars": bool(self.chars), "lower": bool(self.lower)}


# ----------------------------------------------------------------------------------------------
# The text kind a model records: {"chars": bool, "lower": bool}, or None when unknown (ARPA files,
# models written before the record existed and without lm-count's options in their provenance).


def header_text_kind(header: dict, name: str = "model") -> dict | None:
    """The text kind of a model file: its header's ``text`` map; for older files the text options
    lm-count recorded in the provenance (at any depth: lm-train keeps the counts' provenance); else None."""
    t = header.get("text")
    if t is not None:
        if not (isinstance(t, dict) and isinstance(t.get("chars"), bool) and isinstance(t.get("lower"), bool)):
            raise LmError(f"{name}: corrupt model header (text)", "recreate the model")
        return {"chars": t["chars"], "lower": t["lower"]}
    return provenance_text_kind(header.get("provenance"))


def provenance_text_kind(provenance) -> dict | None:
    """The text options found in a provenance map (the nearest ``options`` holding ``chars``), or None."""
    queue = [provenance]
    while queue:
        d = queue.pop(0)
        if isinstance(d, dict):
            opts = d.get("options")
            if isinstance(opts, dict) and isinstance(opts.get("chars"), bool):
                return {"chars": opts["chars"], "lower": bool(opts.get("lower", False))}
            queue.extend(v for v in d.values() if isinstance(v, (dict, list)))
        elif isinstance(d, list):
            queue.extend(d)
    return None


def describe_text_kind(kind: dict | None) -> str:
    """'characters', 'lower-cased words', ... for messages."""
    if kind is None:
        return "text of unrecorded kind"
    what = "characters" if kind["chars"] else "words"
    return f"lower-cased {what}" if kind["lower"] else what


@dataclass
class Chunk:
    data: bytes  # whole lines of valid UTF-8 (after --lower/--chars transforms)
    first_line: int  # 1-based line number of the chunk's first line in its file
    path: str
    replaced_lines: int = 0  # lines in which invalid UTF-8 was replaced


def iter_line_chunks(stream: BinaryIO, path: str, chunk_bytes: int = CHUNK_BYTES,
                     opts: TextOptions | None = None, streaming: bool = False) -> Iterator[Chunk]:
    """Yield chunks of whole lines from ``stream``.

    With ``streaming`` the reader returns whatever lines are available instead of waiting for a
    full chunk (for lm-score behind a slow producer).
    """
    opts = opts or TextOptions()
    max_line = opts.max_line
    line_no = 1
    # The start of a line not ended yet, as the blocks it came in: joined once when its newline (or
    # the end of the input) arrives, so a long line costs linear time, and each block is searched
    # for a newline once.
    pending: list[bytes] = []
    pending_bytes = 0
    read = stream.read1 if streaming and hasattr(stream, "read1") else stream.read
    while True:
        try:
            block = read(chunk_bytes)
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise LmError(f"{display_name(path)}: cannot read ({e})", "check that the file is intact") from None
        if not block:
            if pending:
                if pending_bytes > max_line:
                    raise line_too_long(path, line_no, max_line)
                yield from _validated_lines(b"".join(pending), line_no, path, opts)
            return
        cut = block.rfind(b"\n")
        if cut < 0:
            pending.append(block)
            pending_bytes += len(block)
            if pending_bytes > max_line:
                raise line_too_long(path, line_no, max_line)
            continue
        if pending:
            if pending_bytes + block.find(b"\n") > max_line:
                raise line_too_long(path, line_no, max_line)
            pending.append(block[: cut + 1])
            whole = b"".join(pending)
        else:
            whole = block if cut + 1 == len(block) else block[: cut + 1]
        rest = block[cut + 1:]
        pending = [rest] if rest else []
        pending_bytes = len(rest)
        yield from _validated_lines(whole, line_no, path, opts)
        line_no += whole.count(b"\n")


def line_too_long(path: str, line: int, max_line: int) -> LmError:
    return LmError(f"{display_name(path)}:{line}: line longer than {max_line} bytes (--max-line {max_line})",
                   "put one sentence per line, or raise --max-line (a line costs about twice its size "
                   "in memory)")


class _BadLine(Exception):
    """A line of a block that cannot be read: ``error`` to raise once the lines before it (the first
    ``good_bytes`` bytes of the block) have been passed on, so that a streaming reader such as lm-score
    writes every line before the bad one."""

    def __init__(self, good_bytes: int, error: LmError):
        super().__init__(str(error))
        self.good_bytes, self.error = good_bytes, error


def _bad_line(data: bytes, first_line: int, pos: int, error_for_line) -> _BadLine:
    start = data.rfind(b"\n", 0, pos) + 1
    return _BadLine(start, error_for_line(first_line + data.count(b"\n", 0, start)))


def _validated_lines(data: bytes, first_line: int, path: str, opts: TextOptions) -> Iterator[Chunk]:
    """The block as one Chunk; at a bad line, the lines before it as a Chunk, then the line's error."""
    try:
        chunk = _validated(data, first_line, path, opts)
    except _BadLine as bad:
        if bad.good_bytes:
            yield _validated(data[: bad.good_bytes], first_line, path, opts)
        raise bad.error from None
    yield chunk


def _line_length_error(data: bytes, first_line: int, path: str, max_line: int) -> _BadLine | None:
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    lengths = np.diff(ends, prepend=-1) - 1
    bad = np.flatnonzero(lengths > max_line)
    if not bad.size:
        return None
    return _bad_line(data, first_line, int(ends[bad[0]]), lambda line: line_too_long(path, line, max_line))


def _validated(data: bytes, first_line: int, path: str, opts: TextOptions) -> Chunk:
    """``data`` (whole lines) checked and transformed; raises _BadLine at the first line that cannot be read."""
    if opts.max_line < len(data):  # lines inside one block may exceed a low --max-line
        too_long = _line_length_error(data, first_line, path, opts.max_line)
        if too_long is not None:
            raise too_long
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _bad_line(data, first_line, nul, lambda line: LmError(
            f"{display_name(path)}:{line}: binary data (NUL byte), not text", "give UTF-8 text, one sentence per line"))
    replaced = 0
    try:
        if opts.lower or opts.chars:
            text = data.decode("utf-8")
        else:  # validate only, without holding a decoded copy of a long line
            _check_utf8(data)
    except UnicodeDecodeError as e:
        if opts.encoding_errors != "replace":
            byte = data[e.start]
            raise _bad_line(data, first_line, e.start, lambda line: LmError(
                f"{display_name(path)}:{line}: invalid UTF-8 (byte 0x{byte:02x})",
                "convert the file to UTF-8, or pass --encoding-errors=replace")) from None
        text, replaced = _decode_replacing(data)
    if opts.lower:
        text = text.lower()
    if opts.chars:
        text = chars_text(text)
    if opts.lower or opts.chars or replaced:
        data = text.encode("utf-8")
    return Chunk(data, first_line, path, replaced)


def _check_utf8(data: bytes, step: int = 1 << 22) -> None:
    """Raise UnicodeDecodeError (positions as ``data.decode`` gives them) unless ``data`` is UTF-8."""
    if len(data) <= step:
        data.decode("utf-8")
        return
    dec = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for i in range(0, len(data), step):
            dec.decode(view[i:i + step], final=i + step >= len(data))
    except UnicodeDecodeError:
        data.decode("utf-8")  # the same error, with its position in the whole of data
        raise


def _decode_replacing(data: bytes) -> tuple[str, int]:
    bad_positions: list[int] = []

    def handler(err: UnicodeDecodeError):
        bad_positions.append(err.start)
        return "\ufffd", err.end

    codecs.register_error("lmtools-count-replaced", handler)
    text = data.decode("utf-8", errors="lmtools-count-replaced")
    newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    lines = np.unique(np.searchsorted(newlines, np.asarray(bad_positions)))
    return text, int(lines.size)


def chars_text(text: str) -> str:
    """Character tokens: each character of a line becomes a token, whitespace runs ``<sp>``."""
    out = []
    for line in text.split("\n"):
        line = _ASCII_WS.sub("\x1f", line.strip(ASCII_WHITESPACE))
        out.append(" ".join(line).replace("\x1f", CHAR_SPACE))
    return "\n".join(out)


def detokenize_chars(tokens: Iterable[str]) -> str:
    """Inverse of --chars for output: join characters, ``<sp>`` back to a space."""
    return "".join(" " if t == CHAR_SPACE else t for t in tokens)


# ----------------------------------------------------------------------------------------------
# Token ids


class TokenTable:
    """Word <-> id table on the numba fast path; ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``."""

    def __init__(self, words: Iterable[str] = ()):
        from lmtools.kernels.tokenize import new_table

        self.hashes, self.slots, self.pool, self.offsets, self.n_words = new_table()
        self._words: list[str] = []
        self.add_words(list(SPECIALS))
        self.add_words([w for w in words if w not in SPECIALS])

    @classmethod
    def from_arrays(cls, hashes, slots, pool, offsets) -> "TokenTable":
        """A table holding the words of a stored one (kernels/query.build_word_table's arrays, e.g.
        a model file's query structure), without adding them again: writable copies of the arrays
        (the tokenizer may grow the table)."""
        t = cls.__new__(cls)
        n = int(offsets.shape[0]) - 1
        t.hashes, t.slots, t.pool = np.array(hashes), np.array(slots), np.array(pool)
        t.offsets = np.zeros(max(n + 2, 1 << 12), np.int64)
        t.offsets[: n + 1] = offsets
        t.n_words, t._words = n, []
        return t

    def add_words(self, words: list[str]) -> None:
        """Append words (no whitespace inside, none already present) with the next ids, in order."""
        if not words:
            return
        before = self.n_words
        self._run(("\n".join(words) + "\n").encode("utf-8"), grow=True)
        if self.n_words != before + len(words):
            raise ValueError("vocabulary words must be distinct, non-empty and contain no whitespace")
        self._words = []  # rebuilt lazily

    def _run(self, data: bytes, grow: bool):
        from lmtools.kernels.tokenize import tokenize

        buf = np.frombuffer(data, np.uint8)
        cap = len(data) + 2 * data.count(b"\n") + 4
        from lmtools import memory

        ids = memory.empty(cap, np.int32)
        oov = memory.empty(cap, np.bool_)
        (n_ids, n_lines, n_dropped, n_oov, self.hashes, self.slots, self.pool, self.offsets,
         self.n_words) = tokenize(buf, self.hashes, self.slots, self.pool, self.offsets, self.n_words, grow, ids, oov)
        return ids[:n_ids], oov[:n_ids], n_lines, n_dropped, n_oov

    def encode(self, data: bytes, grow: bool):
        """(ids, oov, n_lines, n_dropped, n_oov) for whole lines of UTF-8 ``data``."""
        return self._run(data, grow)

    def encode_chunk(self, chunk: Chunk, grow: bool) -> "EncodedChunk":
        ids, oov, n_lines, n_dropped, n_oov = self._run(chunk.data, grow)
        return EncodedChunk(ids, oov, n_lines, n_dropped, n_oov, chunk.first_line, chunk.path,
                            chunk.replaced_lines, len(chunk.data))

    def __len__(self) -> int:
        return self.n_words

    def words(self) -> list[str]:
        """The vocabulary, id order."""
        if len(self._words) != self.n_words:
            raw = self.pool[: self.offsets[self.n_words]].tobytes()
            offs = self.offsets[: self.n_words + 1].tolist()
            self._words = [raw[offs[i]:offs[i + 1]].decode("utf-8") for i in range(self.n_words)]
        return self._words


@dataclass
class EncodedChunk:
    ids: np.ndarray  # int32: <s> w1 .. wk </s> per line
    oov: np.ndarray  # bool: True where a word outside the vocabulary was mapped to <unk>
    n_lines: int
    n_dropped: int  # literal <s>/</s> removed
    n_oov: int
    first_line: int
    path: str
    replaced_lines: int
    n_bytes: int  # bytes of text in the chunk


def iter_text_chunks(paths: list[str], opts: TextOptions | None = None, chunk_bytes: int = CHUNK_BYTES,
                     streaming: bool = False) -> Iterator[Chunk]:
    """Validated chunks of whole lines of each file in turn (``-`` is stdin)."""
    for path in paths or ["-"]:
        stream = open_binary(path)
        try:
            yield from iter_line_chunks(stream, path, chunk_bytes, opts, streaming)
        finally:
            if path != "-":
                stream.close()


def encode_chunks(paths: list[str], table: TokenTable, *, grow: bool, opts: TextOptions | None = None,
                  chunk_bytes: int = CHUNK_BYTES, streaming: bool = False) -> Iterator[EncodedChunk]:
    """Token ids of the lines of each file in turn, a chunk at a time (memory bounded by the chunk)."""
    for chunk in iter_text_chunks(paths, opts, chunk_bytes, streaming):
        yield table.encode_chunk(chunk, grow)


@dataclass
class EncodedText:
    ids: np.ndarray
    oov: np.ndarray
    n_lines: int
    n_dropped: int
    n_oov: int
    replaced_lines: int


def encode_text(paths: list[str], vocab_words: list[str] | None = None, *, opts: TextOptions | None = None,
                table: TokenTable | None = None) -> tuple[EncodedText, TokenTable]:
    """All token ids of the given files at once.

    With ``vocab_words`` (a fixed vocabulary) unknown words become ``<unk>`` and are marked OOV;
    without it the vocabulary grows (ids in order of first occurrence) and is returned in the table.
    """
    grow = vocab_words is None and table is None
    if table is None:
        table = TokenTable(vocab_words or ())
    parts = list(encode_chunks(paths, table, grow=grow, opts=opts))
    if parts:
        ids = np.concatenate([p.ids for p in parts])
        oov = np.concatenate([p.oov for p in parts])
    else:
        ids, oov = np.zeros(0, np.int32), np.zeros(0, np.bool_)
    return EncodedText(ids, oov, sum(p.n_lines for p in parts), sum(p.n_dropped for p in parts),
                       sum(p.n_oov for p in parts), sum(p.replaced_lines for p in parts)), table


def read_sentences(paths: list[str], opts: TextOptions | None = None) -> Iterator[list[str]]:
    """Token lists, one per line (no ``<s>``/``</s>``; literal ones dropped): the simple, slow path."""
    for path in paths or ["-"]:
        stream = open_binary(path)
        try:
            for chunk in iter_line_chunks(stream, path, CHUNK_BYTES, opts):
                text = chunk.data.decode("utf-8")
                lines = text.split("\n")
                if lines and lines[-1] == "":
                    lines.pop()
                for line in lines:
                    yield line_words(line)[0]
        finally:
            if path != "-":
                stream.close()


def split_ascii(text):
    """The tokens of ``text`` (str or bytes), split at ASCII whitespace only (see ASCII_WHITESPACE)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text).split()  # bytes.split() splits at exactly the six ASCII whitespace bytes
    return [t for t in _ASCII_WS.split(text) if t]


def line_words(line) -> tuple[list, int]:
    """The text rule for one line (str or bytes, no newline needed): its tokens split at ASCII
    whitespace with a literal ``<s>`` or ``</s>`` dropped, and how many were dropped."""
    marks = _MARKS_BYTES if isinstance(line, (bytes, bytearray, memoryview)) else _MARKS
    tokens = split_ascii(line)
    words = [t for t in tokens if t not in marks]
    return words, len(tokens) - len(words)
