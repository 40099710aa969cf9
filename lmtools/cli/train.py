"""lm-train: estimate a smoothed n-gram model from counts (or convert an ARPA file)."""

from __future__ import annotations

import functools
import re

import click
from click_option_group import GroupedOption, OptionGroup

from lmtools.cli import budget_options, common, train_dask
from lmtools.cli.output import write_model_to
from lmtools.errors import LmError
from lmtools.cli import count_options
from lmtools.cli.ffnn_options import ffnn_options_except

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class _GreedyNumbers(GroupedOption):
    """An option whose value may continue over the following plain numbers, so that KenLM's
    ``--prune 0 0 1`` and ``--discount 0.5 1 1.5`` work unquoted (as '0 0 1' and '0.5 1 1.5')."""

    def add_to_parser(self, parser, ctx):
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = getattr(parser, "_long_opt", {}).get(name) or getattr(parser, "_short_opt", {}).get(name)
            if opt is None or not hasattr(opt, "process"):
                continue  # another click: the option keeps its plain one-value form
            plain = opt.process

            def process(value, state, plain=plain):
                more = []
                rargs = getattr(state, "rargs", None)
                while rargs and _NUMBER.fullmatch(rargs[0]):
                    more.append(rargs.pop(0))
                plain(" ".join([value] + more) if more and isinstance(value, str) else value, state)

            opt.process = process


METHOD_HELP = ("kn-modified (default), kn, wb, abs, add-k, laplace, mle, katz, stupid (from text or counts); "
               "ffnn: the feedforward neural LM (from text FILES).")
# Options that only make sense for one family: given with the other, they are an error, not ignored.
NGRAM_ONLY = ("order", "arpa_out", "from_arpa", "interpolate", "discount", "prune", "k", "alpha", "vocab_file",
              "kenlm_compat", "prune_entropy", "prune_size", "no_query_tables", "memory", "temp_dir", "dask_address")
NGRAM_ONLY += ("trie", "quantize", "shards")
FFNN_ONLY = ("context", "dim", "hidden", "activation", "epochs", "batch", "optimizer", "lr", "momentum", "l2",
             "dropout", "dropout_emb", "output_layer", "classes", "valid", "lr_decay", "min_improvement", "patience",
             "time_limit", "seed", "threads", "device", "u_layout")
# (The text options, --min-count and --vocab-size serve both families: the n-gram methods count text
# FILES with them, and refuse them for counts or a model: lmtools.cli.train_input.TEXT_ONLY.)


NGRAM = OptionGroup("N-gram estimation (every --method but ffnn; input: text FILES, text counts or a counts model)")
NEURAL = OptionGroup("Neural model (--method ffnn; input: text FILES)")
TEXT = OptionGroup("Text (text FILES: counted as lm-count counts them for the n-gram methods; --method ffnn)")
OUTPUT = OptionGroup("Output (every method)")


@common.command("lm-train", grouped=True, short_help="estimate a smoothed n-gram model, or train the feedforward neural LM")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True, path_type=str))  # a directory: count shards
@click.option("--method", default="kn-modified", show_default=True, metavar="NAME", help=METHOD_HELP)
@common.deprecated_alias("-m", dest="method_m", multiple=True, metavar="NAME",
                         help="Deprecated spelling of --method (-m is the model in the other programs).")
@NGRAM.option("-n", "--order", type=int, default=None, metavar="N",
              help="Model order: the order counted from text FILES (default 3, as lm-count); from counts, "
                   "orders 1..N of them (default: all).")
@NGRAM.option("--from-arpa", metavar="FILE",
              help="Read the model from an ARPA file (plain or compressed) instead of estimating one.")
@NGRAM.option("--interpolate/--backoff", default=None,
              help="Interpolated (default for kn-modified, kn, wb, abs) or backoff form.")
@NGRAM.option("--discount", cls=_GreedyNumbers, multiple=True, metavar="D[,D2,D3]",
              help="Fixed discounts, one option per order (the last repeats): three values 'D1,D2,D3+' for "
                   "kn-modified, one for kn and abs. Default: estimated from the counts of counts.")
@NGRAM.option("--prune", cls=_GreedyNumbers, multiple=True, metavar="T[,T..]",
              help="Count cutoffs per order, KenLM's meaning: drop n-grams of order n whose count is <= T_n "
                   "(e.g. --prune 0 0 1 or 0,0,1; the last repeats; unigrams cannot be pruned).")
@NGRAM.option("--prune-entropy", type=common.Number(0), metavar="T",
              help="Then entropy pruning (Stolcke 1998, SRILM's -prune; lm-prune --threshold): drop the n-grams "
                   "whose removal raises perplexity by a relative amount below T (e.g. 1e-8).")
@NGRAM.option("--prune-size", type=click.IntRange(1), metavar="N",
              help="Then entropy pruning to at most N n-grams in all (lm-prune --size; N >= the unigram count).")
@NGRAM.option("-k", "k", type=common.Number(0, min_open=True), default=1.0, show_default=True, metavar="K",
              help="The k of add-k (k = 1 is Laplace).")
@NGRAM.option("--alpha", type=common.Number(0, 1, min_open=True), default=0.4, show_default=True, metavar="A",
              help="The back-off factor of stupid backoff.")
@NGRAM.option("--vocab", "vocab_file", metavar="FILE",
              help="Closed vocabulary: the whitespace-separated words of FILE; every other word becomes <unk>.")
@NGRAM.option("--kenlm-compat", is_flag=True,
              help="kn-modified: count the discount statistics exactly as KenLM's lmplz does (its ARPA digit for digit).")
@NGRAM.option("--arpa", "arpa_out", is_flag=True, help="Write ARPA text instead of an lmtools model file.")
@NGRAM.option("--no-query-tables", "no_query_tables", is_flag=True,
              help="Leave the query structure (hash tables, word table) out of the model file: 40% "
                   "of a big model's file (PTB 5-gram: 94 MB with, 54 MB without), but every run that scores "
                   "with the model builds it at start-up.")
@NGRAM.option("--trie", is_flag=True,
              help="Write the compact form: a sorted trie with bit-packed word ids and quantized log10 "
                   "probabilities and backoffs (as KenLM's build_binary trie -q 8 -b 8), in place of the "
                   "full-precision n-grams and the hash tables. Several times smaller; lm-ppl, lm-score and "
                   "lm-info read it, lm-gen, lm-prune, lm-mix and lm-train --arpa need the full model. Also "
                   "converts: lm-train MODEL --trie -o SMALL.lm.")
@NGRAM.option("--quantize", metavar="Q,B", default=None,
              help="With --trie: bits of the log10 probability and backoff codes (2..24 each, or 32: stored "
                   "exactly). Default 8,8.")
@functools.partial(budget_options.memory_options, option=NGRAM.option, memory_help=(
    "Memory budget for estimating from a counts model: a size as lm-count -S takes it (2G, 500M, 40%). Counts "
    "that would not fit are estimated one partition at a time, with the partitions on disk in -T DIR (the same "
    "model, bit for bit); a model too large for its query tables in the budget is written without them. "
    "Default: 40% for a counts FILE; a counts model on stdin is read whole unless -S is given."))
@NGRAM.option("--dask", "dask_address", metavar="ADDRESS|local:N", default=None, help=train_dask.DASK_HELP)
@NGRAM.option("--shards", is_flag=True, help=train_dask.SHARDS_HELP)
@ffnn_options_except("min_count", "vocab_size", option=NEURAL.option)
@functools.partial(common.text_options, option=TEXT.option)
@functools.partial(count_options.vocabulary_options, option=TEXT.option,
                   min_count_help=count_options.MIN_COUNT_HELP + " (--method ffnn too)",
                   vocab_size_help=count_options.VOCAB_SIZE_HELP + " <unk> <s> </s> come on top of V; with "
                   "--method ffnn, V includes them.")
@OUTPUT.option("-o", "--output", metavar="FILE",
               help="Write the model to FILE (atomically) instead of stdout; with --arpa a FILE ending in .gz is "
                    "gzipped. An -o of digits only that is not a file is refused (lmplz's -o is the order: -n here).")
@OUTPUT.option("-q", "--quiet", is_flag=True, help="No discounts, summary or training progress on stderr.")
def main(files, output, method, method_m, order, arpa_out, from_arpa, interpolate, discount, prune, prune_entropy,
         prune_size, k, alpha, vocab_file, kenlm_compat, no_query_tables, memory, temp_dir, dask_address, shards, quiet,
         lower, chars, encoding_errors, **ffnn):
    """Estimate a smoothed n-gram model from text FILES, text counts or a counts model (default:
    stdin), or, with --method ffnn, train the feedforward neural LM on text FILES.

    Text is counted first as lm-count counts it (one process, the same model as the pipe); text
    counts ('w1 .. wn<TAB>count' lines: a TAB in the first line) and counts models (lm-count's) are
    estimated from directly. The model goes to stdout or -o FILE, as an lmtools model file
    or, with --arpa, as ARPA text for KenLM, SRILM and decoders. --from-arpa converts an ARPA file.
    Each group of options below applies to the methods its title names; given with another
    method, an option is refused rather than ignored.

    \b
    Examples:
      lm-count -n 5 train.txt | lm-train -o kn5.lm
      lm-train -n 5 train.txt -o kn5.lm
      lm-train srilm-counts.txt.gz -o kn3.lm
      lm-count -n 3 train.txt | lm-train --method wb --arpa > wb3.arpa
      lm-train --from-arpa other.arpa.gz -o other.lm
      lm-train --prune 0,0,1 counts.lm -o pruned.lm
      lm-train --prune-entropy 1e-8 counts.lm -o small.lm
      lm-train --dask tcp://head:8786 /shared/counts.d -o kn5.lm
      lm-train --method ffnn --context 4 --dim 100 --hidden 200 --valid valid.txt train.txt -o ffnn.lm
    """
    from lmtools.ngram.smoothing import canonical_method, check_options

    trie = _trie_bits(ffnn.pop("trie"), ffnn.pop("quantize"))  # (q, b), or None: the full model
    common.refuse_order_as_output(output)
    method = _method(method, method_m)
    m = _usage(canonical_method, method)
    _check_option_family(m)
    _check_meaningful(m, ffnn)
    if m == "ffnn":
        _train_ffnn(list(files), output, quiet, common.make_text_options(lower, chars, encoding_errors), ffnn)
        return
    from lmtools.kernels import skip_blas

    skip_blas()  # no n-gram kernel calls BLAS: numba need not import scipy.linalg to probe it (0.1-0.3 s)
    paths = list(files) or ["-"]
    if order is not None and order < 1:
        raise common.UsageError(f"order must be at least 1, got -n {order}", "use -n 1 or more")
    discounts = _usage(_parse_discounts, discount)
    thresholds = _usage(_parse_prune, prune)
    _usage(check_options, m, interpolate=interpolate, discount=discounts, k=k, alpha=alpha, prune=thresholds)
    _check_entropy_pruning(m, prune_entropy, prune_size)
    if from_arpa is not None and files:
        raise common.UsageError("both --from-arpa and an input FILE given", "give one of them")
    # Check the output (a terminal, a missing directory, an input file) before reading any input.
    train_dask.check_shards(shards, dask_address, output, arpa_out, trie, prune_entropy, prune_size)
    shards_target = None
    if shards:
        from lmtools.cli.output import directory_target
        from lmtools.io.modelshards import is_model_shard_dir

        shards_target = directory_target(output, is_model_shard_dir, "model shards")
    else:
        target = common.output_target(output, inputs=([from_arpa] if from_arpa is not None else paths) + [vocab_file],
                                      binary=not arpa_out,
                                      tty_hint="use -o FILE, --arpa, or pipe it into another program (lm-info, lm-ppl)")
    if kenlm_compat and m != "kn-modified":
        raise common.UsageError(f"--kenlm-compat applies to kn-modified only, not {m}", "drop --kenlm-compat")
    train_dask.check(dask_address, paths, vocab_file, from_arpa)
    if no_query_tables and arpa_out:
        raise common.UsageError("--no-query-tables with --arpa", "ARPA text holds no query tables: drop one of them")
    if trie is not None and arpa_out:
        raise common.UsageError("--trie with --arpa", "ARPA text is the full model: drop one of them")
    options = {"method": m, "order": order, "interpolate": interpolate, "discount": discounts,
               "prune": thresholds, "k": k, "alpha": alpha, "vocab": vocab_file, "kenlm_compat": kenlm_compat}

    from lmtools.ngram.counts import Counts
    from lmtools.ngram.model import NGramModel

    if from_arpa is not None:
        from lmtools.cli.train_input import refuse_text_options
        from lmtools.io.arpa import read_arpa

        _no_estimation_options(method, order, interpolate, discounts, thresholds, vocab_file, kenlm_compat,
                               "--from-arpa")
        refuse_text_options("--from-arpa")
        model = read_arpa(from_arpa, warn=common.warn)
        model.provenance = {"program": "lm-train", "from_arpa": from_arpa}
    else:
        if paths == ["-"] and _stdin_is_terminal():
            raise common.UsageError("no FILE given and standard input is a terminal",
                                    "give text FILES or a counts FILE, or pipe lm-count into lm-train")
        if temp_dir is not None:
            budget_options.check_temp_dir(temp_dir)  # a wrong -T is refused before any work, as -o is

        tables_soon = not (no_query_tables or arpa_out or trie is not None or prune_entropy is not None
                           or prune_size is not None)

        def estimate(counts):
            pending = _lay_out_query_tables(counts, order, budget[0] if budget else None) if tables_soon else None
            model = _estimate(counts, m, order, interpolate, discounts, thresholds, k, alpha, vocab_file,
                              kenlm_compat, quiet)
            if pending is not None:  # None: written with tables built as usual (save_model)
                model.query = pending.result(model)
            return model

        def write(model, tables_fit, source, name):
            """Write a model estimated from ``source`` (counts: provenance, tokens, sentences) read from ``name``."""
            if any(hasattr(a, "chunks") for a in model.ngrams):  # estimated on disk: not reported yet
                _report(model, quiet)
            model.provenance = train_dask.estimated_provenance(options, source, name)
            _finish(model, target, arpa_out, no_query_tables, tables_fit, prune_entropy, prune_size, quiet, trie)

        if dask_address is not None:
            train_dask.run(dask_address, paths[0], output, temp_dir, memory, options, write, quiet, shards_target)
            return
        from lmtools.cli import train_bounded

        budget, kinds = train_bounded.budget_source(paths, memory)
        if budget is not None and train_bounded.estimate_in_budget(paths[0], *budget, temp_dir, estimate, options,
                                                                   write, quiet):
            return
        with train_bounded.text_spill(kinds, memory, temp_dir) as (text_budget, space):
            obj, counted = _read_input(paths, order, m, interpolate, k, alpha, kenlm_compat, lower, chars,
                                       encoding_errors, ffnn, kinds, text_budget, space)
            path = "-" if counted else paths[0]  # counted here: recorded as the pipe records it (same bytes)
            if counted:  # -n was the order counted: the counts hold orders 1..N, as lm-count's would
                order = options["order"] = None
            if isinstance(obj, NGramModel):
                _no_estimation_options(method, order, interpolate, discounts, thresholds, vocab_file, kenlm_compat,
                                       "an n-gram model input")
                model = obj
            elif isinstance(obj, Counts):
                if vocab_file is None:  # the model will have the counts' unigrams: refuse before estimating
                    _check_prune_size(prune_size, obj.sizes()[0])
                write(estimate(obj), True, obj, path)
                return
            elif train_bounded.on_disk(obj):  # counted on disk in the budget: estimated there too
                model, tables_fit = train_bounded.estimate_on_disk(obj, space, text_budget, options, quiet)
                write(model, tables_fit, obj, path)
                return
            elif type(obj).__name__ == "TrieModel":  # quantized, without the n-gram arrays to rewrite
                raise LmError(f"{path}: holds the compact trie form only (lm-train --trie), which cannot be "
                              "rewritten or converted", "start from the full model (or its counts)")
            else:
                raise LmError(f"{path}: is a {type(obj).__name__}, not n-gram counts",
                              "give a counts model from lm-count")
    _finish(model, target, arpa_out, no_query_tables, True, prune_entropy, prune_size, quiet, trie)


def _read_input(paths, order, m, interpolate, k, alpha, kenlm_compat, lower, chars, encoding_errors, ffnn, kinds,
                budget, space):
    """The n-gram input (counts, a model, or text counted here: in ``budget`` with ``space`` for spills)."""
    from lmtools.cli.train_input import read_ngram_input
    from lmtools.cli.warmup import input_is_pipe, stdin_waiting, warm_counts_path

    common.compile_note("smooth")
    if input_is_pipe(paths[0]):  # load the kernels while upstream is still counting
        warm_counts_path(order or 3, {"method": m, "interpolate": interpolate, "k": k, "alpha": alpha,
                                      "kenlm_compat": kenlm_compat},
                         waiting=stdin_waiting if paths[0] == "-" else (lambda: True))
    return read_ngram_input(paths, order, lower=lower, chars=chars, encoding_errors=encoding_errors,
                            min_count=ffnn["min_count"], vocab_size=ffnn["vocab_size"], kinds=kinds,
                            memory=budget, spill=space)


def _finish(model, target, arpa_out, no_query_tables, tables_fit, prune_entropy, prune_size, quiet,
            trie=None) -> None:
    """Prune (entropy), write the model and say what was written. ``tables_fit``: whether the query
    tables fit in the memory budget (a model estimated on disk may be too large for them); ``trie``:
    (q, b) of the compact form (lmtools.ngram.trie), None for the full model."""
    from lmtools.cli.train_bounded import materialize

    on_disk = any(hasattr(a, "chunks") for a in model.ngrams)
    if prune_entropy is not None or prune_size is not None:
        model = _entropy_prune(materialize(model), prune_entropy, prune_size, quiet)
        on_disk = False
    tables = not no_query_tables and not arpa_out
    if trie is not None:
        if on_disk:
            materialize(model)
        write_model_to(model, target, arpa_out, False, trie=trie)
        if not quiet and common.stderr_is_terminal():
            common.info(f"{model.method} order {model.order}, trie q={trie[0]} b={trie[1]}, n-grams per order: "
                        + " ".join(str(s) for s in model.sizes()))
        return
    if on_disk and tables:
        if tables_fit:
            materialize(model)
        else:
            tables = False
            if not quiet:
                common.info("query tables left out: they do not fit in the memory budget (-S); programs that "
                            "open the model build them in memory (lm-info shows query_tables)")
    write_model_to(model, target, arpa_out, tables)
    if not quiet and common.stderr_is_terminal():
        common.info(f"{model.method} order {model.order}, n-grams per order: "
                    + " ".join(str(s) for s in model.sizes()))


def _trie_bits(trie: bool, quantize: str | None):
    """(q, b) of --trie [--quantize Q,B], None without --trie (a usage error for a wrong Q,B)."""
    if quantize is not None and not trie:
        raise common.UsageError("--quantize without --trie", "add --trie (the quantized form is the trie's)")
    if not trie:
        return None
    parts = (quantize or "8,8").split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise common.UsageError(f"--quantize takes Q,B (two whole numbers of bits), not {quantize!r}",
                                "for example --quantize 8,8")
    q, b = (int(p) for p in parts)
    for what, v in (("probability", q), ("backoff", b)):  # lmtools.ngram.trie.check_bits, without numpy
        if not (2 <= v <= 24 or v == 32):
            raise common.UsageError(f"--quantize {quantize}: {what} bits must be 2..24 or 32 (no quantization), "
                                    f"not {v}", "for example --quantize 8,8")
    return q, b


def _method(method: str, old: tuple) -> str:
    """--method, or the deprecated -m NAME (-m is the model in every other program): a method name still
    works with a warning; a file name (``-m kn5.lm``) or a repeated -m is a usage error."""
    if not old:
        return method
    from lmtools.ngram.smoothing import canonical_method

    if len(old) > 1:
        raise common.UsageError(f"-m given {len(old)} times: lm-train estimates or trains one model",
                                "give the method once with --method NAME (a mixture of models is "
                                "lm-ppl/lm-score -m A -m B)")
    if common.given_options("method"):
        raise common.UsageError("both -m and --method given", f"give the method once: --method {method}")
    try:
        canonical_method(old[0])
    except LmError:
        raise common.UsageError(f"-m {old[0]}: lm-train has no -m model (its method is --method NAME)",
                                "give the counts or model as FILE (lm-train FILE), or an ARPA file as "
                                "--from-arpa FILE") from None
    common.deprecated("-m for the method", f"--method {old[0]}")
    return old[0]


def _usage(check, *args, **kw):
    """``check(*args, **kw)``, its LmError (an impossible option value) made a usage error (exit 2)."""
    try:
        return check(*args, **kw)
    except LmError as e:
        raise common.UsageError(e.message, e.hint) from None


def _check_meaningful(method: str, ffnn: dict) -> None:
    """Refuse an option that the method or the other options leave without effect (it would be ignored)."""
    for name, applies, what in (("k", method == "add-k", "--method add-k"),
                                ("alpha", method == "stupid", "--method stupid"),
                                ("momentum", ffnn.get("optimizer") == "momentum", "--optimizer momentum"),
                                ("classes", ffnn.get("output_layer") == "class", "--output-layer class")):
        flags = common.given_options(name)
        if flags and not applies:
            raise common.UsageError(f"{flags[0]} applies to {what} only", f"drop {flags[0]}, or use {what}")


def _check_entropy_pruning(method: str, threshold, size) -> None:
    if threshold is not None and size is not None:
        raise common.UsageError("both --prune-entropy and --prune-size given", "give one of them")
    if method == "stupid" and (threshold is not None or size is not None):
        flag = "--prune-entropy" if threshold is not None else "--prune-size"
        raise common.UsageError(f"{flag} needs probabilities; stupid backoff gives scores",
                                "use count cutoffs (--prune) or another --method")


def _entropy_prune(model, threshold, size, quiet):
    """Entropy pruning of the estimated (or read) model, as lm-prune does it."""
    from lmtools.cli.prune import entropy_prune

    _check_prune_size(size, model.sizes()[0])
    return entropy_prune(model, threshold, size, quiet)


def _check_prune_size(size, unigrams: int) -> None:
    if size is not None and size < unigrams:
        raise common.UsageError(f"--prune-size {size} is below the model's {unigrams} unigrams, which are never "
                                "pruned", f"give --prune-size {unigrams} or more")


def _check_option_family(method: str) -> None:
    """Refuse options of the other family (n-gram vs ffnn) instead of silently ignoring them."""
    ctx = click.get_current_context()
    given = [p for p in ctx.command.params
             if ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
    wrong = NGRAM_ONLY if method == "ffnn" else FFNN_ONLY
    bad = [p.opts[-1] for p in given if p.name in wrong]
    if bad:
        what = "the n-gram methods" if method == "ffnn" else "--method ffnn"
        raise common.UsageError(f"{', '.join(bad)} applies to {what} only, not --method {method}",
                                "drop it, or change --method")


def _train_ffnn(paths: list[str], output, quiet: bool, text_opts, options: dict) -> None:
    from lmtools.cli.ffnn_options import progress_reporter, run_ffnn_training
    from lmtools.nn.train import TrainingDiverged

    paths = paths or ["-"]
    # Check the output before the training, not after it (a missing directory, an input file, a terminal).
    target = common.output_target(output, inputs=paths + [options.get("valid")],
                                  tty_hint="use -o FILE or pipe it into lm-ppl")
    common.stdin_note(paths)
    common.compile_note("ffnn")
    report = (lambda ev, info: None) if quiet else progress_reporter()
    try:
        model = run_ffnn_training(paths, options.get("valid"), options, report, text_opts)
    except TrainingDiverged as e:
        if e.model is None:
            raise LmError(e.message, f"{e.hint}; no epoch was completed, so there is no model to keep") from None
        if output in (None, "-"):
            raise LmError(e.message, f"{e.hint}; the last good model is written only with -o FILE") from None
        _without_timings(e.model)
        write_model_to(e.model, target, False)  # keep the last good model, as the message says
        raise LmError(e.message, f"{e.hint}; the last good model (epoch {e.epoch}) is written to {output}") from None
    _without_timings(model)
    write_model_to(model, target, False)


def _without_timings(model) -> None:
    """Drop wall-clock seconds from the recorded training history (they are shown on stderr), so that
    the same seed and input give a byte-identical model file."""
    training = model.provenance.get("training")
    if isinstance(training, dict):
        for epoch in training.get("epochs", []):
            if isinstance(epoch, dict):
                epoch.pop("seconds", None)


def _stdin_is_terminal() -> bool:
    return common.stdin_is_terminal()


def _no_estimation_options(method, order, interpolate, discounts, thresholds, vocab_file, kenlm_compat, what):
    given = [name for name, v in (("-n", order), ("--interpolate/--backoff", interpolate), ("--discount", discounts),
                                  ("--prune", thresholds), ("--vocab", vocab_file)) if v is not None]
    if kenlm_compat:
        given.append("--kenlm-compat")
    if method != "kn-modified":
        given.insert(0, "--method")
    if given:  # with --from-arpa the options alone are impossible (a usage error); else the input decides
        raise (common.UsageError if what == "--from-arpa" else LmError)(
            f"{', '.join(given)} cannot be applied to {what} (it is already smoothed)",
                      "estimate from counts (lm-count) instead")


def _numbers(values, what: str, kind=float) -> list[list]:
    out = []
    for v in values:
        parts = [p for p in v.replace(",", " ").split() if p]
        try:
            out.append([kind(p) for p in parts])
        except ValueError:
            raise LmError(f"{what} {v!r} is not a list of numbers", f"e.g. {what} 0,0,1") from None
        if not parts:
            raise LmError(f"{what} given an empty value", f"e.g. {what} 0,0,1")
        if any(kind is int and abs(x) > common.INT_MAX for x in out[-1]):
            raise LmError(f"{what} {v!r}: a value is too large (at most {common.INT_MAX})", f"e.g. {what} 0,0,1")
    return out


def _parse_discounts(values) -> list | None:
    if not values:
        return None
    per_order = _numbers(values, "--discount")
    return [tuple(v) if len(v) > 1 else v[0] for v in per_order]


def _parse_prune(values) -> list[int] | None:
    if not values:
        return None
    flat = [x for v in _numbers(values, "--prune", int) for x in v]
    return flat


def _lay_out_query_tables(counts, order: int | None, budget: int | None):
    """The query tables of the n-grams of ``counts`` (orders 1..``order``) laid out beside the
    estimation (ngram.model.PendingTables), where they may be the model's and fit in memory (and in
    the -S ``budget``) beside the estimation; else None."""
    import numpy as np

    from lmtools import memory
    from lmtools.constants import query_table_bytes
    from lmtools.ngram.model import SMALL_BUILD, PendingTables

    ngrams = counts.ngrams[:order] if order is not None else counts.ngrams
    sizes = [int(g.shape[0]) for g in ngrams]
    if len(ngrams) < 2 or sum(sizes) <= SMALL_BUILD or not all(isinstance(g, np.ndarray) for g in ngrams):
        return None
    if budget is not None:  # the tables exist during the estimation now, not only after it
        from lmtools.bounded import BYTES_PER_NGRAM

        if BYTES_PER_NGRAM * sum(sizes) + query_table_bytes(sizes) > budget:
            return None
    avail, _ = memory.available()
    if avail is not None and memory.check_enabled() and \
            avail < memory.estimate_smoothing(sizes) + memory.estimate_query(sizes):
        return None
    return PendingTables(ngrams, counts.vocab, memory.zeros)


def _estimate(counts, method, order, interpolate, discounts, thresholds, k, alpha, vocab_file, kenlm_compat, quiet):
    from lmtools.ngram.smoothing import smooth

    lower = bool(counts.text and counts.text["lower"])  # the words of a lower-cased model are lower-case
    vocab = count_options.read_vocab_file(vocab_file, lower) if vocab_file else None
    if discounts is not None and method == "kn-modified":
        discounts = [d if isinstance(d, tuple) else (d,) for d in discounts]
    model = smooth(counts, method, order=order, interpolate=interpolate, discount=discounts, k=k, alpha=alpha,
                   prune=thresholds, vocab=vocab, kenlm_compat=kenlm_compat, warn=common.warn)
    _report(model, quiet)
    return model


def _report(model, quiet: bool) -> None:
    """The discounts estimated (and stupid backoff's caveat) on stderr."""
    method = model.method
    if not quiet and "discounts" in model.info:
        for n, d in enumerate(model.info["discounts"], start=1):
            vals = d if isinstance(d, (list, tuple)) else [d]
            label = "D1 D2 D3+" if len(vals) == 3 else "D"
            common.info(f"discounts order {n} ({label}): " + " ".join(f"{x:g}" for x in vals))
    if method == "stupid" and not quiet:
        common.warn("stupid backoff gives scores, not probabilities: perplexity is not defined for it")


if __name__ == "__main__":
    main()
