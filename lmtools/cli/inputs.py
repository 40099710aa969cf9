"""What an input of lm-train or lm-merge holds: a model file, text counts or a text corpus.

The rule, in this order (documented in lm-train(1) and lm-merge(1)):
1. an lmtools model file (its magic bytes) or an ARPA file (``\\data\\`` first): "model";
2. a first line with a TAB: "counts", text counts (``n-gram TAB count``), and then every line must
   be one (a bad line is an error naming FILE:LINE, never a silent switch to text);
3. anything else: "text", a corpus (one sentence per line); an empty input is left to the model
   reader, whose error says what was expected.
Compressed inputs (gzip, bzip2, xz) are looked at decompressed. Standard input and named pipes cannot
be rewound, so the bytes looked at are put back in front of them for the reader that follows (stdin:
``sys.stdin``, which click's test runner restores; a pipe: ``io.text.put_back``); a regular file is
simply opened again.
"""

from __future__ import annotations

import io
import sys

MODEL, COUNTS, TEXT = "model", "counts", "text"
KIND_NAMES = {MODEL: "a model file", COUNTS: "text counts", TEXT: "a text corpus"}


def input_kind(path: str) -> str:
    """MODEL, COUNTS or TEXT for a path ('-': stdin, then left readable from its first byte)."""
    from lmtools.io.countstext import first_line, is_counts_line
    from lmtools.io.modelfile import peek_is_model
    from lmtools.io.text import open_binary, put_back

    if path != "-" and _is_dir(path):  # a directory of count shards (lm-count --shards): the model reader
        return MODEL
    stream = open_binary(path)
    head, again = _head(stream)
    if path == "-":
        sys.stdin = io.TextIOWrapper(again, encoding="utf-8", errors="replace")
    elif not _regular(path):  # a named pipe, <(command): its bytes cannot be read twice
        put_back(path, again)
    else:
        stream.close()
    if not head or peek_is_model(head) or head.lstrip()[:6] == b"\\data\\":
        return MODEL  # (an empty input too: the model reader says what it expected)
    line, _ = first_line(io.BytesIO(head))
    return COUNTS if is_counts_line(line) else TEXT


def _is_dir(path: str) -> bool:
    import os

    return os.path.isdir(path)


def _regular(path: str) -> bool:
    import os
    import stat

    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _head(stream):
    """The bytes up to the first line's end (at least 64, at most the sniffing limit) and a stream
    that still starts with them."""
    from lmtools.io.countstext import first_line

    line, again = first_line(stream)
    head = again.peek(len(line) + 64)
    return bytes(head), again
