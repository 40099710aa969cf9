"""lm-score: one line of scores per line of text, streaming, in constant memory."""

from __future__ import annotations

import sys

import click

from lmtools.cli import common
from lmtools.cli.ppl import (check_threads, check_weights, load_for_scoring, model_options, parse_lambdas,
                             resolve_sources, score_chunk_bytes, text_flags)
from lmtools.errors import LmError


@common.command("lm-score", short_help="score every line of text, streaming")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@model_options
@click.option("--format", "fmt", type=click.Choice(["tsv", "jsonl"]), default="tsv", show_default=True,
              help="tsv: tab-separated columns; jsonl: one JSON object per line (also --json).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: the same as --format jsonl.")
@click.option("--text", "with_text", is_flag=True, help="Add the input line itself (last column / \"text\").")
@click.option("--words", is_flag=True,
              help="Add every token's log10 p, matched n-gram order and OOV flag (</s> included).")
@common.text_options
def main(files, models, lambdas, threads, fmt, as_json, with_text, words, lower, chars, encoding_errors):
    """Score every line of the text FILES (default: stdin): exactly one output line per input line,
    in input order, whatever the line holds (empty, all OOV, very long).

    \b
    tsv columns: log10 prob <TAB> tokens <TAB> OOVs <TAB> perplexity [<TAB> line]
    tokens = words + 1 (</s>); perplexity = 10^(-log10 prob / tokens), OOVs scored as <unk>.
    With --words, one more column per token after these four (before the line of --text):
    "WORD LOG10P ORDER OOV" (space-separated; ORDER = length of the matched n-gram, OOV 1 or 0).

    Output is written and flushed after each block of input lines, so a downstream filter sees
    results while the input still streams in; memory stays constant over any input length.

    \b
    Examples:
      lm-score -m kn5.lm < crawl.txt > scores.tsv
      lm-score -m kn5.lm --text crawl.txt | awk -F'\\t' '$4 < 500'
      lm-score -m kn5.lm --words --json some.txt
      lm-score -m kn5.lm -m ffnn.lm --lambda 0.5 test.txt
    """
    if as_json:
        if common.given_options("fmt") and fmt != "jsonl":
            raise common.UsageError(f"--json and --format {fmt} both given", "give one of them")
        fmt = "jsonl"
    check_threads(threads)
    model_srcs, paths = resolve_sources(models, files)
    weights = parse_lambdas(lambdas)
    check_weights(weights, len(model_srcs))
    common.stdin_note(paths)
    scorer = load_for_scoring(model_srcs, weights, need_probabilities=False, text_paths=paths)
    lower, chars = text_flags(scorer, lower, chars, model_srcs)

    from lmtools.io.text import TextOptions, chars_text, iter_text_chunks

    # Lines are read as they are (for --text) and transformed for scoring here.
    read_opts = TextOptions(encoding_errors=encoding_errors, max_line=common.max_line())
    out = sys.stdout.buffer
    dropped = replaced = 0
    # text read (and output flushed) per step, at most; less from a slow producer
    for chunk in iter_text_chunks(paths, read_opts, score_chunk_bytes(threads), streaming=True):
        data = chunk.data
        if lower or chars:
            text = data.decode("utf-8")
            if lower:
                text = text.lower()
            if chars:
                text = chars_text(text)
            data = text.encode("utf-8")
        if words:
            scored = scorer.score_text(data, threads)
            ls = scored.line_scores()
        else:
            scored, ls = None, scorer.line_scores(data, threads)
        dropped += ls.n_dropped
        replaced += chunk.replaced_lines
        out.write(format_chunk(ls, scored, data, chunk.data, fmt, with_text, words))
        out.flush()
    if dropped:
        common.warn(f"dropped {dropped} literal <s>/</s> tokens inside lines")
    if replaced:
        common.warn(f"replaced invalid UTF-8 in {replaced} lines (--encoding-errors=replace)")


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def format_chunk(ls, scored, data: bytes, original: bytes, fmt: str, with_text: bool, words: bool) -> bytes:
    """The output lines for one chunk of input lines (``scored``: per-token results, for --words)."""
    lp_l, tok_l, oov_l = ls.lp.tolist(), ls.tokens.tolist(), ls.oovs.tolist()
    n = len(lp_l)
    texts = None
    if with_text:
        texts = [x.decode("utf-8") for x in _lines(original)]
        if len(texts) != n:
            raise LmError("internal: line count mismatch", "rerun with --debug and report it")
    per_word = None
    if words:
        per_word = _word_rows(scored, data, n)
    if fmt == "tsv" and texts is None and per_word is None:  # the common case, kept lean
        import numpy as np

        with np.errstate(over="ignore", divide="ignore"):
            ppl = np.power(10.0, -ls.lp / np.maximum(ls.tokens, 1)).tolist()
        return "".join(map("%.6f\t%d\t%d\t%.6g\n".__mod__, zip(lp_l, tok_l, oov_l, ppl))).encode("utf-8")
    out = []
    if fmt == "jsonl":
        import json  # here: the tsv output does without it

        for i in range(n):
            a, b = lp_l[i], tok_l[i]
            ppl = _ppl(a, b)
            obj = {"logprob": a, "tokens": b, "oovs": oov_l[i], "ppl": ppl if ppl != float("inf") else None}
            if per_word is not None:
                obj["words"] = [{"word": w, "logprob": p, "order": o, "oov": bool(v)} for w, p, o, v in per_word[i]]
            if texts is not None:
                obj["text"] = texts[i]
            out.append(json.dumps(obj, ensure_ascii=False))
    else:
        for i in range(n):
            a, b = lp_l[i], tok_l[i]
            row = f"{a:.6f}\t{b}\t{oov_l[i]}\t{_ppl(a, b):.6g}"
            if per_word is not None:
                row += "".join(f"\t{w} {p:.6f} {o} {int(v)}" for w, p, o, v in per_word[i])
            if texts is not None:
                row += "\t" + texts[i]
            out.append(row)
    if not out:
        return b""
    return ("\n".join(out) + "\n").encode("utf-8")


def _ppl(lp: float, tokens: int) -> float:
    try:
        return 10.0 ** (-lp / tokens)
    except OverflowError:
        return float("inf")


def _word_rows(scored, data: bytes, n: int):
    """Per line: [(word, log10 p, order, oov)] for its tokens and </s>."""
    import numpy as np

    from lmtools.io.text import line_words

    starts = scored.starts()
    ends = np.append(starts[1:], scored.ids.size)
    lp = scored.logp.tolist()
    order = scored.order.tolist()
    oov = scored.oov.tolist()
    rows = []
    for i, line in enumerate(_lines(data)):
        toks = [t.decode("utf-8") for t in line_words(line)[0]]
        toks.append("</s>")
        s, e = int(starts[i]) + 1, int(ends[i])
        if e - s != len(toks):
            raise LmError("internal: token count mismatch", "rerun with --debug and report it")
        rows.append([(toks[j], lp[s + j], order[s + j], oov[s + j]) for j in range(len(toks))])
    return rows


if __name__ == "__main__":
    main()
