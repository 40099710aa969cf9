"""lm-gen: sample sentences from any model, or show its next-word distribution for a history."""

from __future__ import annotations

import os
import sys

import click

from lmtools.cli import common

DEFAULT_N = 10


@common.command("lm-gen", short_help="sample sentences from a model")
@click.option("-m", "--model", "model_paths", multiple=True, metavar="FILE",
              help="The model: an lmtools model (counts, n-gram, ffnn) or an ARPA file (.gz too); '-' is stdin "
                   "(the default). Repeat for a linear mixture, sampled as lm-ppl scores it: each step draws from "
                   "sum_k lambda_k p_k(w | h).")
@click.option("--lambda", "lambdas", type=str, multiple=True, metavar="W",
              help="Interpolation weight of the models, in -m order, as lm-ppl --lambda: k-1 weights (the last "
                   "model gets the rest) or k summing to 1; repeat or separate by commas. Default: equal weights.")
@click.option("-s", "--sentences", "count", type=click.IntRange(0), default=None, metavar="N",
              help=f"Number of sentences. Default {DEFAULT_N} (1 with --greedy).")
@common.deprecated_alias("-n", "--count", dest="count_old", type=click.IntRange(0), metavar="N",
                         help="Deprecated spelling of -s/--sentences (-n is the order in the other programs).")
@click.option("--seed", type=int, default=None, metavar="S",
              help="Seed of the random numbers: the same model, options and seed give byte-identical output. "
                   "Default: a fresh random seed every run.")
@click.option("--prefix", metavar="TEXT",
              help="Start every sentence with these words (after <s>) and continue them; words outside the "
                   "vocabulary are taken as <unk> (with a warning).")
@click.option("--temperature", type=common.Number(0, min_open=True), default=1.0, show_default=True, metavar="T",
              help="Sample from p^(1/T), renormalized: below 1 sharper, above 1 flatter (T > 0).")
@click.option("--top-k", "top_k", type=common.Limit(1), default=None, metavar="K",
              help="Sample only among the K most likely words of each step (K >= 1). Default: no limit.")
@click.option("--top-p", "top_p", type=common.Number(0, 1, min_open=True), default=1.0, show_default=True, metavar="P",
              help="Nucleus sampling: only among the most likely words whose probabilities reach P (0 < P <= 1).")
@click.option("--greedy", is_flag=True, help="Take the most likely word at every step (no randomness).")
@click.option("--max-len", "max_len", type=click.IntRange(1, 1 << 24), default=100, show_default=True, metavar="L",
              help="Cut a sentence after L words (characters for a character model), not counting the prefix.")
@click.option("--allow-unk", "allow_unk", is_flag=True, help="Let <unk> be drawn (it is excluded by default).")
@click.option("--scores", is_flag=True,
              help="Print each sentence's log10 probability under the model before it, tab-separated.")
@click.option("--chars/--no-chars", "chars", default=None,
              help="Character tokens (printed joined, <sp> as a space) or word tokens (space-separated), for "
                   "--prefix, --next and the output. Default: as the model records (characters for a model "
                   "counted with --chars); a flag that contradicts the model is an error.")
@common.deprecated_alias("--words", dest="words_old", is_flag=True,
                         help="Deprecated spelling of --no-chars (--words is lm-score's per-word scores).")
@click.option("--next", "next_history", metavar="HISTORY",
              help="Instead of sampling, print the next-word distribution after <s> HISTORY: word, probability "
                   "and log10 p, most likely first.")
@click.option("--top", "top", type=common.Limit(0), default=10, show_default=True, metavar="K",
              help="With --next: print the K most likely words (0: the whole vocabulary).")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, metavar="T",
              help="Sample n-gram sentences with T threads (the output does not depend on T).")
def main(model_paths, lambdas, count, count_old, seed, prefix, temperature, top_k, top_p, greedy, max_len, allow_unk, scores,
         chars, words_old, next_history, top, threads):
    """Sample sentences from a model, one per line on stdout, or (--next) show the model's
    next-word distribution for a history.

    Every sentence starts after <s> (and --prefix) and ends when </s> is drawn or after --max-len
    words. Words are drawn from the model's exact distribution p(w | h) over the whole vocabulary:
    a counts model is smoothed on the fly (interpolated modified Kneser-Ney), an n-gram or ARPA
    model follows its back-off rule, an FFNN model its softmax. <unk> is never drawn unless
    --allow-unk.

    Several -m models are sampled as their linear mixture (the weights of --lambda, as lm-ppl):
    the next word's distribution is sum_k lambda_k p_k(w | h) over the union of the vocabularies (a
    word missing from one model gets p = 0 from it), and --temperature, --top-k and --top-p apply
    to that mixed distribution; --scores prints the mixture's score of each sentence as lm-score
    prints it.

    \b
    Examples:
      lm-gen -m kn5.lm -s 20 --seed 7
      lm-gen -m kn5.lm --prefix "the company said" -s 5
      lm-gen -m ffnn.lm --temperature 0.8 --top-k 50
      lm-gen -m kn5.lm --greedy --max-len 30
      lm-count -n 3 corpus.txt | lm-gen -s 3
      lm-gen -m kn5.lm --next "and thanks for all the" --top 10
      lm-gen -m kn5.lm -m ffnn.lm --lambda 0.6 -s 5 --seed 1
    """
    count, chars = _old_spellings(count, count_old, chars, words_old)
    from lmtools.cli.ppl import check_weights, parse_lambdas

    model_paths = list(model_paths) or ["-"]
    if model_paths.count("-") > 1:
        raise common.UsageError("stdin ('-') given as more than one model", "read at most one model from stdin")
    weights = parse_lambdas(lambdas)
    check_weights(weights, len(model_paths))  # before reading any model
    model_path = model_paths[0] if len(model_paths) == 1 else ", ".join(
        "<stdin>" if m == "-" else m for m in model_paths)
    _check_meaningful(next_history is not None, greedy)
    for flag, text in (("--prefix", prefix), ("--next", next_history)):
        if text is not None and not _is_utf8(text):
            raise common.UsageError(f"{flag} is not valid UTF-8 text",
                                    "give the words in UTF-8 (is the terminal's locale UTF-8?)")
    if next_history is not None and prefix is not None:
        raise common.UsageError("--next and --prefix both given", "give the history of --next alone (it is the prefix)")
    if "-" in model_paths and _stdin_is_terminal():
        raise common.UsageError("no model given (-m) and standard input is a terminal",
                                "give -m FILE, or pipe a model in (lm-count ... | lm-gen)")

    from lmtools.ngram.sample import check_options

    opts = check_options(temperature, top_k, top_p, greedy, max_len, allow_unk)
    common.compile_note("sample_sentences", "draw")  # the sampling kernels' modules
    sampler, kind = _load(model_paths[0]) if len(model_paths) == 1 else _load_mixture(model_paths, weights)
    chars, lower = text_flags(kind, chars, model_path)
    if lower:  # the model was counted from lower-cased text: so is the prefix or history
        prefix = prefix.lower() if prefix is not None else None
        next_history = next_history.lower() if next_history is not None else None
    if next_history is not None:
        return _next(sampler, next_history, top, chars)

    n = count if count is not None else (1 if greedy else DEFAULT_N)
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    if sampler.scores_only:
        common.warn("a stupid-backoff model gives scores, not probabilities: each step is normalized to sample, "
                    "and --scores prints sums of log10 scores")
    pre_words = _split(prefix or "", chars)
    pre_ids, oov = sampler.encode(pre_words)
    if oov:
        common.warn(f"{oov} word{'s' if oov > 1 else ''} of --prefix not in the vocabulary, taken as <unk>")
    if not sampler.python_draws(n, opts):  # else numba is never loaded
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    _generate(sampler, n, seed, pre_words, pre_ids, opts, chars, scores, threads)


def _old_spellings(count, count_old, chars, words_old):
    """-n/--count (now -s/--sentences) and --words (now --no-chars) still work, with a warning."""
    if count_old is not None:
        if count is not None:
            raise common.UsageError("both -s/--sentences and -n/--count given", f"give -s {count} alone")
        common.deprecated("-n/--count for the number of sentences", f"-s {count_old}")
        count = count_old
    if words_old:
        if chars is not None:
            raise common.UsageError("--words given with --chars or --no-chars", "give --no-chars alone")
        common.deprecated("--words for word tokens", "--no-chars")
        chars = False
    return count, chars


def _is_utf8(text: str) -> bool:
    """False for an argument whose bytes were not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _check_meaningful(next_mode: bool, greedy: bool) -> None:
    """Refuse options that the mode leaves without effect instead of ignoring them."""
    if next_mode:
        flags = common.given_options("count", "count_old", "temperature", "top_k", "top_p", "greedy", "max_len",
                                     "scores")
        if flags:
            raise common.UsageError(f"{flags[0]} applies to sampling, not to --next",
                                    "--next prints the model's own distribution (--top K limits it)")
        return
    flags = common.given_options("top")
    if flags:
        raise common.UsageError("--top applies to --next only", "drop --top (-s sets the number of sentences)")
    if greedy:
        flags = common.given_options("temperature", "top_k", "top_p")
        if flags:
            raise common.UsageError(f"{flags[0]} has no effect with --greedy (it takes the most likely word)",
                                    f"drop {flags[0]} or --greedy")


def _stdin_is_terminal() -> bool:
    return common.stdin_is_terminal()


def _load(path: str):
    from lmtools.io.models import read_source
    from lmtools.kinds import sampler_for

    unread = read_source(path)  # load_model's first step: the kind is known before any kernel runs
    if unread.kind != "ffnn":  # only the FFNN's kernels call BLAS
        from lmtools.kernels import skip_blas

        skip_blas()  # numba's BLAS probe imports scipy.linalg: 0.1-0.3 s before the first kernel
    obj = unread.build()
    name = "<stdin>" if path == "-" else path
    sampler = sampler_for(obj, name, warn=common.warn)
    return sampler, getattr(obj, "text", None)


def _load_mixture(paths: list[str], weights: list[float]):
    from lmtools.errors import LmError
    from lmtools.kinds import load_models, mixture_sampler

    models, names, kind = load_models(paths, warn=common.warn, skip_blas=True)
    for m, name in zip(models, names):
        if getattr(m, "scores_only", False):
            raise LmError(f"{name}: a stupid-backoff model gives scores, not probabilities",
                          "a mixture needs normalized models (lm-train --method kn-modified); lm-gen samples "
                          "a stupid-backoff model alone")
    return mixture_sampler(models, names, weights, warn=common.warn), kind


def text_flags(kind: dict | None, chars: bool | None, model_path: str) -> tuple[bool, bool]:
    """(chars, lower): how to read --prefix/--next and print tokens, from the text kind the model
    records; --chars/--words that contradict the record are refused. A model without one (an ARPA
    file) is taken as words unless --chars says otherwise."""
    if kind is None:
        return bool(chars), False
    if chars is not None and chars != kind["chars"]:
        name = "<stdin>" if model_path == "-" else model_path
        flag, what = ("--chars", "words") if chars else ("--no-chars", "characters (lm-count --chars)")
        raise common.UsageError(f"{flag} given, but {name} is a model of {what}",
                                f"drop {flag}: the model's own text kind applies")
    return kind["chars"], kind["lower"]


def _split(text: str, chars: bool) -> list[str]:
    from lmtools.io.text import CHAR_SPACE, chars_text, split_ascii

    if not chars:
        return split_ascii(text)
    tokens = split_ascii(chars_text(text))
    if tokens and text[-1:] in (" ", "\t"):  # "KING " continues after a space
        tokens.append(CHAR_SPACE)
    return tokens


def _render_vocab(vocab: list[str], chars: bool):
    """(pool, offsets, separator) of the output forms of the words, for the render kernel."""
    import numpy as np

    from lmtools.io.text import CHAR_SPACE

    forms = [(" " if w == CHAR_SPACE else w) for w in vocab] if chars else vocab
    enc = [w.encode("utf-8") for w in forms]
    offs = np.zeros(len(enc) + 1, np.int64)
    offs[1:] = np.cumsum([len(e) for e in enc])
    pool = np.frombuffer(b"".join(enc), np.uint8) if offs[-1] else np.zeros(0, np.uint8)
    sep = np.zeros(0, np.uint8) if chars else np.frombuffer(b" ", np.uint8)
    return pool, offs, sep


def _python_renderer(vocab: list[str], chars: bool, head_text: str):
    """The render kernel's lines built in Python, for a few sentences: (bytes, line ends) of
    ``head`` then the words (joined by a space; characters joined as they are), one per line."""
    import numpy as np

    from lmtools.io.text import CHAR_SPACE

    sep = "" if chars else " "

    def render(tokens, lengths):
        lines = []
        for row, n in zip(tokens.tolist(), lengths.tolist()):
            words = [(" " if vocab[w] == CHAR_SPACE else vocab[w]) if chars else vocab[w] for w in row[:n]]
            lines.append(sep.join(([head_text] if head_text else []) + words).encode("utf-8") + b"\n")
        ends = np.cumsum([len(x) for x in lines], dtype=np.int64)
        return np.frombuffer(b"".join(lines), np.uint8), ends
    return render


def _generate(sampler, n, seed, pre_words, pre_ids, opts, chars, scores, threads):
    import numpy as np

    from lmtools.io.text import detokenize_chars

    head_text = detokenize_chars(pre_words) if chars else " ".join(pre_words)
    if sampler.python_draws(n, opts):
        render = _python_renderer(sampler.vocab, chars, head_text)
    else:
        from lmtools.kernels.render import render as render_kernel

        pool, offs, sep = _render_vocab(sampler.vocab, chars)
        head = np.frombuffer(head_text.encode("utf-8"), np.uint8) if head_text else np.zeros(0, np.uint8)

        def render(tokens, lengths):
            return render_kernel(tokens, lengths, pool, offs, sep, head)
    out = sys.stdout.buffer
    failed = cut = 0
    for batch in sampler.sample_all(n, seed, pre_ids, opts, threads=threads):
        data, ends = render(batch.tokens, batch.lengths)
        failed += batch.failed
        cut += int((~batch.ended).sum()) - batch.failed
        if scores:
            buf = data.tobytes()
            starts = np.concatenate([[0], ends[:-1]])
            lines = [f"{x:.6f}\t".encode() + buf[a:b] for x, a, b in zip(batch.log10.tolist(), starts.tolist(),
                                                                           ends.tolist())]
            out.write(b"".join(lines))
        else:
            out.write(data.tobytes())
        out.flush()
    if failed:
        common.warn(f"{failed} sentence{'s' if failed > 1 else ''} stopped where no allowed word has probability "
                    "(try --allow-unk)")
    if cut and common.stderr_is_terminal():
        common.info(f"{cut} of {n} sentences cut at --max-len {opts.max_len} words")


def _next(sampler, history: str, top: int, chars: bool) -> None:
    import numpy as np

    words = _split(history, chars)
    ids, oov = sampler.encode(words)
    if oov:
        common.warn(f"{oov} word{'s' if oov > 1 else ''} of the history not in the vocabulary, taken as <unk>")
    p = sampler.distribution(ids)
    total = float(p.sum())
    order = np.argsort(-p, kind="stable")
    order = order[p[order] > 0.0]
    shown = order if top == 0 else order[:top]
    vocab = sampler.vocab
    with np.errstate(divide="ignore"):
        logp = np.log10(p[shown])
    rows = [(vocab[w], float(p[w]), float(lp)) for w, lp in zip(shown.tolist(), logp.tolist())]
    if common.stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table

        shown_h = " ".join(words) if words else "(sentence start)"
        table = Table(title=f"p(w | <s> {shown_h})", title_justify="left")
        table.add_column("word")
        table.add_column("probability", justify="right")
        table.add_column("log10 p", justify="right")
        for w, pr, lp in rows:
            table.add_row(w, f"{pr:.6f}", f"{lp:.4f}")
        Console().print(table)
    else:
        sys.stdout.write("".join(f"{w}\t{pr:.6g}\t{lp:.6f}\n" for w, pr, lp in rows))
        sys.stdout.flush()
    if len(shown) < len(order):
        common.info(f"showing the {len(shown)} most likely of {len(order)} words (together "
                    f"{float(p[shown].sum()):.6f}); the whole vocabulary sums to {total:.6f} (--top 0 lists all)")


if __name__ == "__main__":
    main()
