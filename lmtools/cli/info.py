"""lm-info: say what is inside a model file (any kind) or an ARPA file."""

from __future__ import annotations

import json

import click

from lmtools.cli import common


@common.command("lm-info", short_help="describe a model file")
@click.argument("model", default="-", type=click.Path(dir_okay=True, allow_dash=True, path_type=str))  # a directory: count shards
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object instead of KEY<TAB>VALUE lines (nested: provenance and its options are objects).")
@click.option("--list-vocab", "show_vocab", is_flag=True,
              help="Print the vocabulary instead, one word per line (id order).")
@common.deprecated_alias("--vocab", dest="show_vocab_old", is_flag=True,
                         help="Deprecated spelling of --list-vocab (--vocab is a vocabulary FILE in lm-count, "
                              "lm-train).")
@click.option("--verify", is_flag=True,
              help="Check every byte of the model first: all checksums and contents, which a mapped model "
                   "file otherwise leaves to the first read of its large arrays (exit 1 if damaged).")
def main(model, as_json, show_vocab, show_vocab_old, verify):
    """Describe MODEL (default: stdin): kind, order, vocabulary size, n-grams per order, provenance.

    MODEL is an lmtools model file (counts, n-gram or ffnn) or an ARPA file (plain or compressed).
    One fact per line, KEY<TAB>VALUE: nested facts have dotted keys (provenance.options.order; a list of
    records by index from 0: provenance.training.epochs.0.lr), other lists are space-separated (a list
    per order: its values joined by commas), and a tab or newline inside a value is written as \\t or \\n.

    \b
    Examples:
      lm-info counts.lm
      lm-count -n 3 corpus.txt | lm-info
      lm-info --json kn5.lm | jq .sizes
      lm-info kn5.lm | awk -F'\\t' '$1 == "sizes"'
      lm-info --verify kn5.lm > /dev/null && echo intact
    """
    if show_vocab_old:
        common.deprecated("--vocab for the word list", "--list-vocab")
        show_vocab = True
    if show_vocab and as_json:
        flag = "--vocab" if show_vocab_old else "--list-vocab"
        raise common.UsageError(f"--json and {flag} both given",
                                f"{flag} prints one word per line; give one of them")
    if model == "-" and _stdin_is_terminal():  # it would wait for a binary model typed at the keyboard
        raise common.UsageError("no MODEL given and standard input is a terminal",
                                "give a model FILE, or pipe a model in (lm-count ... | lm-info)")
    from lmtools.io.models import load_model

    obj = load_model(model, sort_counts=False, verify=True if verify else None)
    if show_vocab:
        click.echo("\n".join(obj.vocab))
        return
    facts = describe(obj)
    if as_json:
        click.echo(json.dumps(facts, ensure_ascii=False, allow_nan=False))
        return
    click.echo("".join(f"{key}\t{value}\n" for key, value in text_lines(facts)), nl=False)


def _stdin_is_terminal() -> bool:
    return common.stdin_is_terminal()


def text_lines(facts: dict, prefix: str = ""):
    """(dotted key, value as text) for every fact, nested dicts flattened (a list of records by index)."""
    for key, value in facts.items():
        if isinstance(value, dict) and value:
            yield from text_lines(value, f"{prefix}{key}.")
        elif isinstance(value, list) and any(isinstance(x, dict) for x in value):  # records: key.0.field
            yield from text_lines({str(i): x for i, x in enumerate(value)}, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _plain(value)


def _plain(v) -> str:
    if isinstance(v, (list, tuple)):
        return " ".join(",".join(_plain(y) for y in x) if isinstance(x, (list, tuple)) else _plain(x) for x in v)
    if v is None:
        return ""
    if isinstance(v, dict):
        return ""
    text = str(v).lower() if isinstance(v, bool) else str(v)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _jsonable(v):
    """A JSON value for ``v``: nested dicts and lists kept as objects and arrays (never a JSON string
    inside JSON), numpy scalars as numbers, nan and inf as null."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # a numpy scalar or 0-d array
        try:
            v = v.item()
        except (ValueError, TypeError):
            return str(v)
    if isinstance(v, float):
        return v if v == v and abs(v) != float("inf") else None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def describe(obj) -> dict:
    """The facts lm-info prints, as a dict (also an API for notebooks)."""
    from lmtools.ngram.counting import Levels
    from lmtools.ngram.counts import Counts
    from lmtools.ngram.model import NGramModel
    from lmtools.ngram.trie import TrieModel

    text = getattr(obj, "text", None)  # how the model's text was read (None: not recorded, as in ARPA files)
    if isinstance(obj, Levels):
        obj = _levels_facts(obj)
    facts: dict = {}
    if isinstance(obj, (Counts, NGramModel)):
        facts["kind"] = "counts" if isinstance(obj, Counts) else "ngram"
        facts["order"] = obj.order
        facts["vocabulary"] = len(obj.vocab)
        facts["sizes"] = obj.sizes()
    if isinstance(obj, Counts):
        facts["tokens"] = obj.tokens
        facts["sentences"] = obj.sentences
        facts["total_count"] = [int(c.sum()) for c in obj.counts]
    elif isinstance(obj, NGramModel):
        facts["method"] = obj.method
        facts["scores_only"] = obj.scores_only
        q = obj.query  # the stored query structure (lmtools-model(5)); without it, built at every load
        facts["query_tables"] = q is not None
        if q is not None:
            facts["query_layout"] = q.layout
            facts["query_bytes"] = q.nbytes()
        if obj.info:
            facts["info"] = dict(obj.info)
    elif isinstance(obj, TrieModel):  # the compact form (lm-train --trie): quantized, no full arrays
        facts.update({"kind": "ngram", "order": obj.order, "vocabulary": len(obj.vocab), "sizes": obj.sizes(),
                      "method": obj.method, "scores_only": obj.scores_only, "query_tables": False,
                      "trie": True, "trie_quantize": [obj.q, obj.b], "trie_bytes": obj.nbytes()})
        if obj.info:
            facts["info"] = dict(obj.info)
    else:
        facts["kind"] = "ffnn"
        facts.update(obj.describe() if hasattr(obj, "describe") else {"vocabulary": len(obj.vocab)})
    if text is not None:
        facts["text"] = {"chars": bool(text["chars"]), "lower": bool(text["lower"])}
    prov = getattr(obj, "provenance", None) or {}
    if prov:
        facts["provenance"] = dict(prov)
    return _jsonable(facts)


def _levels_facts(lv):
    """A Counts with the stored (unsorted) arrays: enough for sizes and totals, without sorting."""
    import numpy as np

    from lmtools.ngram.counts import Counts

    V = len(lv.vocab)
    ngrams = [np.arange(V, dtype=np.int32).reshape(V, 1)] + [np.empty((len(p), n), np.int32)
                                                             for n, (p, _, _) in enumerate(lv.levels, start=2)]
    return Counts(lv.vocab, ngrams, [lv.unigrams] + [c for _, _, c in lv.levels], lv.tokens, lv.sentences,
                  lv.provenance)


if __name__ == "__main__":
    main()
