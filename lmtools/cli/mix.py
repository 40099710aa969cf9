"""lm-mix: the interpolation weights of several models that minimise the perplexity of held-out
text (EM), and the static mixture of n-gram models written as one model."""

from __future__ import annotations

import json
import sys

import click

from lmtools.cli import common
from lmtools.cli.output import write_model_to
from lmtools.errors import LmError

DIGITS = 6  # decimals of the printed weights; the perplexity reported is that of the printed weights


@common.command("lm-mix", short_help="best mixture weights; static mixture of n-gram models")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("-m", "--model", "models", multiple=True, metavar="FILE",
              help="A model of the mixture: an lmtools model (counts, n-gram, ffnn) or an ARPA file, '-' for stdin. "
                   "Give two or more, in the order of the weights.")
@click.option("--lambda", "lambdas", type=str, multiple=True, metavar="W",
              help="The weights, in -m order, as lm-ppl --lambda: k-1 (the last model gets the rest) or k summing "
                   "to 1; repeat or separate by commas. With text FILEs, EM starts from them (default: equal "
                   "weights); without, they are the weights of the static mixture (-o, --arpa).")
@click.option("--max-iter", "max_iter", type=common.Limit(0), default=10000, show_default=True,
              metavar="N", help="Stop EM after N iterations (0: no EM, the --lambda weights as given).")
@click.option("--tol", type=common.Number(0, min_open=True), default=1e-6, show_default=True, metavar="X",
              help="Stop EM when no weight moves by X or more in an iteration.")
@click.option("--skip-oovs", "skip_oovs", is_flag=True,
              help="Fit the perplexity with OOVs left out (lm-ppl's second figure, SRILM's ppl) instead of the "
                   "perplexity with OOVs as <unk> (lm-ppl's first figure).")
@click.option("-v", "--verbose", is_flag=True, help="One line per EM iteration on stderr: the weights and perplexity.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("-o", "--output", metavar="FILE",
              help="Write the static mixture (n-gram models only) to FILE as one lmtools n-gram model (atomically); "
                   "with --arpa as ARPA text (FILE ending in .gz: gzip).")
@click.option("--arpa", "arpa_out", is_flag=True,
              help="Write the static mixture as ARPA text: to -o FILE, or to stdout (the report goes to stderr).")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, metavar="T",
              help="Score the text with T threads (n-gram models).")
@common.text_options
def main(files, models, lambdas, max_iter, tol, skip_oovs, verbose, as_json, output, arpa_out, threads, lower, chars,
         encoding_errors):
    """Find the interpolation weights of the models -m A -m B ... that minimise the perplexity of
    the held-out text FILES ('-' for stdin), by EM (finished by Newton's method on the same
    likelihood, where EM creeps); print them (in -m order, as lm-ppl --lambda reads them) with the
    perplexity of each model alone, of the uniform mixture and of the best one. With -o or --arpa,
    also write the static mixture of n-gram models as one back-off model.

    Any model kinds mix (counts, n-gram, ARPA, ffnn), as lm-ppl scores a mixture: each model reads
    the text through its own vocabulary (a word outside it is that model's <unk>); a token outside
    every model's vocabulary is an OOV of the mixture, fitted as <unk> (or left out with
    --skip-oovs); a token that every model gives p = 0 is left out. Stupid-backoff models are
    refused (scores, not probabilities). The perplexity printed is that of the printed weights:
    lm-ppl with the same models, text and --lambda prints the same number.

    The static mixture (SRILM's ngram -mix-lm -write-lm) holds the union of the models' n-grams,
    each with p = sum_k lambda_k p_k(w|h) (each p_k by its own back-off rule), and backoff weights
    recomputed so that every context sums to one over the union of the vocabularies (a word
    missing from one model gets p = 0 from it). Its weights are fitted on the text FILES, or given
    by --lambda without text.

    \b
    Examples:
      lm-mix -m kn5.lm -m wb3.lm valid.txt
      lm-ppl -m kn5.lm -m wb3.lm --lambda 0.8,0.2 test.txt
      lm-mix -m kn5.lm -m ffnn.lm -m wb3.lm -v --json valid.txt
      lm-mix -m kn5.lm -m wb3.lm valid.txt -o mixed.lm
      lm-mix -m kn5.lm -m wb3.lm --lambda 0.7 --arpa > mixed.arpa
    """
    from lmtools.cli.ppl import check_threads, check_weights, parse_lambdas, text_flags

    models = list(models)
    files = list(files)
    k = len(models)
    if k < 2:
        raise common.UsageError(f"{k} model{'' if k == 1 else 's'} given: lm-mix mixes two or more",
                                "give each model with -m FILE (lm-mix -m A.lm -m B.lm heldout.txt)")
    if models.count("-") > 1:
        raise common.UsageError("stdin ('-') given as more than one model", "read at most one model from stdin")
    if files.count("-") > 1:
        raise common.UsageError("stdin ('-') given more than once", "name it once")
    if "-" in models and "-" in files:
        raise common.UsageError("both a model and the text would be read from stdin",
                                "give one of them as a file")
    check_threads(threads)
    weights = parse_lambdas(lambdas)
    if weights:
        check_weights(weights, k)  # before reading any model
    static = output is not None or arpa_out
    if not files:
        if not weights:
            raise common.UsageError("no held-out text given to fit the weights on",
                                    "give a text FILE (lm-mix -m A -m B heldout.txt), or the weights with --lambda "
                                    "to write a static mixture with -o FILE")
        if not static:
            raise common.UsageError("--lambda without text and without -o/--arpa: nothing to fit or write",
                                    "give a held-out text FILE to fit the weights, or -o FILE for the static mixture")
        flags = common.given_options("max_iter", "tol", "skip_oovs", "threads", "lower", "chars", "encoding_errors")
        if flags:
            raise common.UsageError(f"{flags[0]} applies to fitting on text, and no text FILE is given",
                                    f"drop {flags[0]}, or give a held-out text FILE")
    if max_iter == 0 and not weights and files:
        raise common.UsageError("--max-iter 0 without --lambda: no weights to report",
                                "give the weights with --lambda, or let EM run (--max-iter 1 or more)")
    model_to_stdout = static and output in (None, "-")
    if model_to_stdout and as_json:
        raise common.UsageError("--json and the static mixture would both go to stdout",
                                "write the model with -o FILE")
    target = None
    if static:
        target = common.output_target(output, inputs=models + files, binary=not arpa_out,
                                      tty_hint="use -o FILE, or --arpa for text")
    report = sys.stderr if model_to_stdout else sys.stdout

    from lmtools.kinds import load_models
    from lmtools.lambdas import check_lambdas

    start = check_lambdas(weights, k) if weights else None
    if files:
        common.stdin_note(files)
        common.compile_note("query")
    objs, names, text = load_models(models, warn=common.warn, skip_blas=True)
    _check_models(objs, names, static)

    result = None
    final = start
    if files:
        result = _fit(objs, names, text, files, start, max_iter, tol, skip_oovs, verbose, threads, lower, chars,
                      encoding_errors, text_flags)
        final = result["lambdas"]
    mixed = None
    if static:
        from lmtools.ngram.mix import static_mixture

        mixed = static_mixture(objs, final, names, progress=common.info if verbose else None)
        mixed.text = text
        mixed.provenance = {"program": "lm-mix", "models": names, "lambdas": list(final), "heldout": files}
        if result is not None:
            result["static"] = _static_figures(mixed, result["chunks"], threads)
    if result is not None:
        _report(result, names, skip_oovs, as_json, report, target)
    if static:
        write_model_to(mixed, target, arpa_out)
        if not as_json and result is None and common.stderr_is_terminal():
            common.info(f"static mixture with --lambda {','.join(_fmt_weight(x) for x in final)}: n-grams per order "
                        + " ".join(str(s) for s in mixed.sizes()))


def _check_models(objs, names, static: bool) -> None:
    from lmtools.ngram.model import NGramModel

    for obj, name in zip(objs, names):
        if getattr(obj, "scores_only", False):
            raise LmError(f"{name}: a stupid-backoff model gives scores, not probabilities",
                          "mixtures need normalized models (lm-train --method kn-modified or wb)")
        if static and not isinstance(obj, NGramModel):
            raise LmError(f"{name}: a static mixture is made of n-gram models, and this is an {obj.__class__.__name__}",
                          "drop -o/--arpa: lm-ppl and lm-gen use the mixture of any models with --lambda")


def _fit(objs, names, text, files, start, max_iter, tol, skip_oovs, verbose, threads, lower, chars, encoding_errors,
         text_flags):
    """Score the text with every model, fit the weights by EM, and take lm-ppl's figures of each
    model, the uniform mixture and the fitted one (with the weights as printed)."""
    import numpy as np

    from lmtools.io.text import iter_text_chunks
    from lmtools.kinds import scorer_for
    from lmtools.mixture import Mixture, fit_lambdas, fit_tokens, round_lambdas
    from lmtools.ngram.scores import NO_CONTEXT, PplStats
    from lmtools.vocab import BOS_ID

    scorers = [scorer_for(o, n) for o, n in zip(objs, names)]
    probe = Mixture(scorers, [1.0 / len(scorers)] * len(scorers))
    probe.text = text
    lower, chars = text_flags(probe, lower, chars, [n for n in names])
    text_opts = common.make_text_options(lower, chars, encoding_errors)
    chunks = []  # (per-model Scored, replaced lines, the text) of each chunk, in order, as lm-ppl reads the text
    columns = []
    with common.progress("scoring", total=common.input_size(files)) as bar:
        for chunk in iter_text_chunks(files, text_opts):
            parts = [s.score_text(chunk.data, threads) for s in scorers]
            chunks.append((parts, chunk.replaced_lines, chunk.data))
            ids = parts[0].ids
            keep = (ids != BOS_ID) & (ids != NO_CONTEXT)
            if skip_oovs:
                keep &= ~np.logical_and.reduce([p.oov for p in parts])
            columns.append(np.stack([p.logp[keep] for p in parts]))
            bar.advance(len(chunk.data))
    L = np.concatenate(columns, axis=1) if columns else np.zeros((len(scorers), 0))
    if not fit_tokens(L).any():
        shown = ", ".join("<stdin>" if f == "-" else f for f in files)
        raise LmError(f"{shown}: no token to fit the weights on" + (" (every word is an OOV)" if L.shape[1] else ""),
                      "give held-out text with words the models know" + ("" if not skip_oovs else
                                                                          ", or drop --skip-oovs"))

    def say(it, lam, ppl):
        common.info(f"iteration {it}: perplexity {ppl:.6f}, weights " + " ".join(f"{x:.6f}" for x in lam.tolist()))

    if max_iter == 0:
        fit = None
        lambdas = list(start)
    else:
        fit = fit_lambdas(L, start, tol, max_iter, say if verbose else None)
        lambdas = round_lambdas(fit.lambdas, DIGITS)

    def figures(weights) -> dict:
        stats = PplStats()
        for parts, replaced, _ in chunks:
            scored = parts[0] if weights is None else Mixture(scorers, weights).combine(parts)
            stats.add(scored.line_scores())
            stats.replaced_lines += replaced
        return stats.figures()

    alone = []
    for i in range(len(scorers)):
        stats = PplStats()
        for parts, _, _ in chunks:
            stats.add(parts[i].line_scores())
        alone.append(stats.figures())
    k = len(scorers)
    return {"lambdas": lambdas, "fit": fit, "alone": alone, "uniform": figures([1.0 / k] * k),
            "mixture": figures(lambdas), "chunks": chunks, "static": None, "tokens_fitted": int(L.shape[1])}


def _static_figures(model, chunks, threads) -> dict:
    """lm-ppl's figures of the static mixture on the same text (the chunks as read)."""
    from lmtools.ngram.query import QueryModel
    from lmtools.ngram.scores import PplStats

    qm = QueryModel(model, "static mixture")
    stats = PplStats()
    for _, replaced, data in chunks:
        stats.add(qm.line_scores(data, threads))
        stats.replaced_lines += replaced
    return stats.figures()


def _json_safe(x):
    """JSON has no inf/nan: they become null."""
    if isinstance(x, float):
        return x if x == x and abs(x) != float("inf") else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def _fmt_weight(x: float) -> str:
    """DIGITS decimals, or all of them for a given weight that has more: it reads back as the same float."""
    short = f"{x:.{DIGITS}f}"
    return short if float(short) == x else repr(float(x))


def _ppl(f: dict, skip_oovs: bool) -> float | None:
    return f["ppl_excl_oov"] if skip_oovs else f["ppl"]


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _report(result: dict, names, skip_oovs: bool, as_json: bool, out, target) -> None:
    lam = result["lambdas"]
    fit = result["fit"]
    if as_json:
        obj = {"models": [{"model": n, "lambda": w, **f} for n, w, f in zip(names, lam, result["alone"])],
               "lambdas": lam, "objective": "ppl_excl_oov" if skip_oovs else "ppl",
               "iterations": fit.iterations if fit else 0, "converged": bool(fit.converged) if fit else None,
               "tokens_fitted": result["tokens_fitted"], "uniform": result["uniform"], "mixture": result["mixture"],
               "static": result["static"], "output": None if target is None else target.name}
        out.write(json.dumps(_json_safe(obj)) + "\n")
        out.flush()
        return
    which = "OOVs left out" if skip_oovs else "OOVs as <unk>"
    lines = [f"model {i + 1}: {n}: weight {_fmt_weight(w)}, perplexity alone {_fmt(_ppl(f, skip_oovs))}"
             for i, (n, w, f) in enumerate(zip(names, lam, result["alone"]))]
    lines.append(f"uniform mixture: perplexity {_fmt(_ppl(result['uniform'], skip_oovs))}")
    m = result["mixture"]
    figures = f"perplexity {_fmt(m['ppl'])} (OOVs as <unk>), {_fmt(m['ppl_excl_oov'])} (OOVs left out)"
    if fit is None:
        lines.append(f"mixture: {figures}; weights as given (--max-iter 0)")
    else:
        lines.append(f"best mixture: {figures}; fitted to the perplexity with {which}; EM: {fit.iterations} "
                     f"iteration{'s' if fit.iterations != 1 else ''}, "
                     + ("converged" if fit.converged else "not converged (--max-iter reached)"))
    if result["static"] is not None:
        s = result["static"]
        lines.append(f"static mixture: perplexity {_fmt(s['ppl'])} (OOVs as <unk>), {_fmt(s['ppl_excl_oov'])} "
                     f"(OOVs left out)")
    lines.append("--lambda " + ",".join(_fmt_weight(x) for x in lam))
    out.write("\n".join(lines) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
