"""lm-ppl: perplexity of text under a model (or a linear mixture of models), SRILM/KenLM-style."""

from __future__ import annotations

import sys

import click

from lmtools.cli import common
from lmtools.errors import LmError


# Text scored per step in one thread. 256 kB costs no time against 1 MB (lm-ppl on 10x PTB train:
# 1.70-1.74 s against 1.81 in process) and keeps 5 MB less in memory (the block read, its whole lines,
# their UTF-8 check, the per-line results; 1 MB kept 40 MB less than 8). With more threads a step is
# 1 MB a thread, to be split into parts worth a thread (ngram.query.PARALLEL_MIN_BYTES).
SCORE_CHUNK_BYTES = 1 << 18
PARALLEL_CHUNK_BYTES = 1 << 20


def score_chunk_bytes(threads: int) -> int:
    """Text read and scored per step by lm-ppl and lm-score with ``threads`` threads."""
    return SCORE_CHUNK_BYTES if threads <= 1 else PARALLEL_CHUNK_BYTES * threads


def model_options(func):
    """-m/--model (repeatable), --lambda (repeatable) and --threads: shared by lm-ppl and lm-score."""
    func = click.option("--threads", type=click.IntRange(1), default=1, show_default=True, metavar="T",
                        help="Score with T threads (n-gram models; 2 uses both cores of a 2-core machine).")(func)
    func = click.option("--lambda", "lambdas", type=str, multiple=True, metavar="W",
                        help="Interpolation weight of the models, in -m order: k-1 weights (the last model gets "
                             "the rest) or k weights summing to 1; repeat or separate by commas. "
                             "Default: equal weights.")(func)
    func = click.option("-m", "--model", "models", multiple=True, metavar="FILE",
                        help="The model: an lmtools model (counts, n-gram, ffnn) or an ARPA file, '-' for stdin. "
                             "Repeat for a linear mixture. Default: stdin, when text FILEs are given.")(func)
    return func


def resolve_sources(models: tuple, files: tuple) -> tuple[list[str], list[str]]:
    """(model sources, text paths): the model comes from stdin when only text files are given."""
    paths = list(files) or ["-"]
    models = list(models)
    if not models:
        if "-" in paths:
            raise common.UsageError("no model given (-m) and the text is read from stdin",
                          "give the model with -m FILE, or pipe the model in and name the text files")
        models = ["-"]
    if models.count("-") > 1:
        raise common.UsageError("stdin ('-') given as more than one model", "read at most one model from stdin")
    if paths.count("-") > 1:
        raise common.UsageError("stdin ('-') given more than once", "name it once")
    if "-" in models and "-" in paths:
        raise common.UsageError("both the model and the text would be read from stdin",
                      "give one of them as a file (-m FILE, or text FILEs)")
    if "-" in models and _stdin_is_terminal():  # it would wait for a binary model typed at the keyboard
        raise common.UsageError("no model given (-m) and standard input is a terminal",
                                "give -m FILE, or pipe a model in (lm-count ... | lm-ppl FILE)")
    return models, paths


def _stdin_is_terminal() -> bool:
    return common.stdin_is_terminal()


def parse_lambdas(values: tuple) -> list[float]:
    out = []
    for v in values:
        for part in str(v).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(float(part))
            except ValueError:
                raise common.UsageError(f"--lambda {part!r} is not a number", "give weights like --lambda 0.6") from None
    return out


def check_weights(weights: list[float], k: int) -> None:
    """The --lambda weights for k models, checked before any model is read (a usage error, exit 2)."""
    from lmtools.lambdas import check_lambdas

    try:
        check_lambdas(weights, k)
    except LmError as e:
        raise common.UsageError(e.message, e.hint) from None


def check_threads(threads: int) -> None:
    if threads < 1:
        raise common.UsageError(f"--threads must be at least 1, got {threads}", "use --threads 1 or 2")


def load_for_scoring(models: list[str], lambdas: list[float], need_probabilities: bool, text_paths=None):
    from lmtools.kinds import load_scorer
    from lmtools.ngram.query import SMALL_TOTAL_BYTES
    from lmtools.cli.warmup import input_is_pipe, warm_scoring_path

    # `lm-count big.txt | lm-ppl test.txt`: load the kernels while upstream is still counting, when
    # the text is large enough to be scored by them anyway (small texts stay on the numpy path)
    if "-" in models and input_is_pipe("-") and (common.input_size(text_paths or ["-"]) or 0) >= SMALL_TOTAL_BYTES:
        warm_scoring_path()

    size = common.input_size(text_paths or ["-"])
    if size is None or size > SMALL_TOTAL_BYTES:  # a small text is scored without the kernels
        common.compile_note("query")
    scorer = load_scorer(models, lambdas, warn=common.warn, skip_blas=True)
    if scorer.scores_only:
        if need_probabilities or scorer.kind == "mixture":
            raise LmError(f"{scorer.name}: a stupid-backoff model gives scores, not probabilities",
                          "perplexity and mixtures need a normalized model (lm-train --method kn-modified); "
                          "lm-score prints stupid-backoff scores of a single model")
    return scorer


def text_flags(scorer, lower: bool, chars: bool, models: list[str]) -> tuple[bool, bool]:
    """(lower, chars) to read the text with: what the model records (lm-count --chars/--lower), so a
    character model reads characters without --chars; a flag the record contradicts is refused.
    A model that records nothing (an ARPA file) reads the text as the flags say (words by default)."""
    kind = getattr(scorer, "text", None)
    if kind is None:
        return lower, chars
    name = ", ".join("<stdin>" if m == "-" else m for m in models)
    if chars and not kind["chars"]:
        raise common.UsageError(f"--chars given, but {name} is a model of words", "drop --chars")
    if lower and not kind["lower"]:
        raise common.UsageError(f"--lower given, but {name} was counted from text that was not lower-cased",
                                "drop --lower (or count the training text with --lower)")
    return kind["lower"], kind["chars"]


def _finite(x):
    """JSON has no inf/nan: they become null."""
    if isinstance(x, float):
        return x if x == x and abs(x) != float("inf") else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _fmt(x, digits=4) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}"


def summary_lines(label: str, f: dict) -> list[str]:
    return [
        f"{label}: {f['sentences']} sentences, {f['words']} words, {f['oovs']} OOVs, "
        f"{f['zeroprobs']} zero-probability tokens" + (" (p = 0: left out of log10 prob and perplexity)"
                                                       if f['zeroprobs'] else ""),
        f"log10 prob: {_fmt(f['logprob'])} (OOVs as <unk>), {_fmt(f['logprob_excl_oov'])} (OOVs left out)",
        f"perplexity: {_fmt(f['ppl'])} (OOVs as <unk>), {_fmt(f['ppl_excl_oov'])} (OOVs left out); "
        f"ppl1: {_fmt(f['ppl1'])} (OOVs left out, without </s>)",
        f"cross-entropy: {_fmt(f['bits_per_token'])} bits/token (OOVs as <unk>)",
    ]


def srilm_lines(label: str, f: dict) -> list[str]:
    """SRILM ``ngram -ppl``'s two lines: OOVs and zero-probability tokens are left out of logprob; ppl
    counts </s>, ppl1 does not (formatted as C++ streams print doubles: 6 significant digits)."""
    ppl = "undefined" if f["ppl_excl_oov"] is None else "%g" % f["ppl_excl_oov"]
    ppl1 = "undefined" if f["ppl1"] is None else "%g" % f["ppl1"]
    lines = [f"file {label}: {f['sentences']} sentences, {f['words']} words, {f['oovs']} OOVs"]
    if f["words"] + f["sentences"] > 0:
        lines.append(f"{f['zeroprobs']} zeroprobs, logprob= {'%g' % f['logprob_excl_oov']} ppl= {ppl} ppl1= {ppl1}")
    return lines


@common.command("lm-ppl", short_help="perplexity of text under a model")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (per file and total) instead of text.")
@click.option("--srilm", is_flag=True,
              help="Print SRILM ngram -ppl's report instead: per file 'file F: N sentences, M words, K OOVs' and "
                   "'Z zeroprobs, logprob= L ppl= P ppl1= P1' (OOVs left out; ppl1 without </s>), and a "
                   "'file TOTAL' report for several files, as add-ppls.")
@click.option("--per-sentence", is_flag=True,
              help="First one row per sentence: FILE, LINE, log10 prob, tokens, OOVs, perplexity (tab-separated).")
@common.text_options
def main(files, models, lambdas, threads, as_json, srilm, per_sentence, lower, chars, encoding_errors):
    """Perplexity of the text FILES (default: stdin) under a model.

    Prints per file, and in total when there are several: sentences, words, OOVs (words outside the
    model's vocabulary), zero-probability tokens (p = 0 with backoff weights included; left out of
    the figures that follow, as SRILM's zeroprobs), the log10 probability, the perplexity with OOVs
    scored as <unk> (KenLM's "including OOVs") and with OOVs left out (SRILM's ppl and ppl1),
    and the cross-entropy in bits per token. Every line of text is a sentence; </s> is scored, <s> is not.

    The model is an lmtools model of any kind (a counts model is smoothed on the fly with interpolated
    modified Kneser-Ney) or an ARPA file; without -m it is read from stdin.

    \b
    Examples:
      lm-count -n 3 train.txt | lm-ppl test.txt
      lm-ppl -m kn5.lm test.txt
      lm-ppl -m kn5.lm --json test.txt
      lm-ppl -m kn5.lm -m ffnn.lm --lambda 0.6 test.txt
      lm-ppl -m kn5.lm --srilm test.txt
    """
    if srilm and as_json:
        raise common.UsageError("--srilm and --json both given", "give one of them")
    check_threads(threads)
    model_srcs, paths = resolve_sources(models, files)
    weights = parse_lambdas(lambdas)
    check_weights(weights, len(model_srcs))  # before reading any model
    common.stdin_note(paths)
    scorer = load_for_scoring(model_srcs, weights, need_probabilities=True, text_paths=paths)

    from lmtools.io.text import display_name, iter_text_chunks
    from lmtools.ngram.scores import PplStats

    lower, chars = text_flags(scorer, lower, chars, model_srcs)
    text_opts = common.make_text_options(lower, chars, encoding_errors)
    total = PplStats()
    per_file = []
    out = sys.stdout
    with common.progress("scoring", total=common.input_size(paths)) as bar:
        for path in paths:
            stats = PplStats()
            rows = []
            for chunk in iter_text_chunks([path], text_opts, score_chunk_bytes(threads)):
                ls = scorer.line_scores(chunk.data, threads)
                stats.add(ls)
                stats.replaced_lines += chunk.replaced_lines
                if per_sentence:
                    lp, tok, oov = ls.lp, ls.tokens, ls.oovs
                    line0 = chunk.first_line
                    if as_json:
                        for i, (a, b, c) in enumerate(zip(lp.tolist(), tok.tolist(), oov.tolist())):
                            rows.append({"line": line0 + i, "logprob": a, "tokens": b, "oovs": c,
                                         "ppl": 10.0 ** (-a / b)})
                    else:
                        name = display_name(path)
                        out.write("".join(f"{name}\t{line0 + i}\t{a:.6f}\t{b}\t{c}\t{10.0 ** (-a / b):.6g}\n"
                                          for i, (a, b, c) in enumerate(zip(lp.tolist(), tok.tolist(), oov.tolist()))))
                bar.advance(len(chunk.data))
            per_file.append((path if srilm else display_name(path), stats, rows))
            total.merge(stats)
    if total.dropped:
        common.warn(f"dropped {total.dropped} literal <s>/</s> tokens inside lines")
    if total.replaced_lines:
        common.warn(f"replaced invalid UTF-8 in {total.replaced_lines} lines (--encoding-errors=replace)")
    if as_json:
        obj = {"model": model_srcs if len(model_srcs) > 1 else model_srcs[0],
               "files": [], "total": total.figures()}
        if getattr(scorer, "kind", "") == "mixture":
            obj["lambdas"] = scorer.lambdas.tolist()
        for name, stats, rows in per_file:
            entry = {"file": name, **stats.figures()}
            if per_sentence:
                entry["per_sentence"] = rows
            obj["files"].append(entry)
        import json  # here: the text output does without it

        out.write(json.dumps(_finite(obj)) + "\n")
        return
    lines = []
    if srilm:
        for name, stats, _ in per_file:
            lines += srilm_lines(name, stats.figures())
        if len(per_file) > 1:
            lines += srilm_lines("TOTAL", total.figures())
        out.write("\n".join(lines) + "\n")
        return
    for name, stats, _ in per_file:
        lines += summary_lines(f"file {name}", stats.figures())
    if len(per_file) > 1:
        lines += summary_lines("total", total.figures())
    out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
