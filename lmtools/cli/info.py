"""lm-info: say what is inside a model file (any kind) or an ARPA file."""

from __future__ import annotations

import json

import click

from lmtools.cli import common


@common.command("lm-info", short_help="describe a model file")
@click.argument("model", default="-", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of 'key: value' lines.")
@click.option("--vocab", "show_vocab", is_flag=True,
              help="Print the vocabulary instead, one word per line (id order).")
def main(model, as_json, show_vocab):
    """Describe MODEL (default: stdin): kind, order, vocabulary size, n-grams per order, provenance.

    MODEL is an lmtools model file (counts, n-gram or ffnn) or an ARPA file (plain or compressed).

    \b
    Examples:
      lm-info counts.lm
      lm-count -n 3 corpus.txt | lm-info
      lm-info --json kn5.lm | jq .sizes
    """
    if show_vocab and as_json:
        raise common.UsageError("--json and --vocab both given", "--vocab prints one word per line; give one of them")
    from lmtools.io.models import load_model

    obj = load_model(model, sort_counts=False)
    if show_vocab:
        click.echo("\n".join(obj.vocab))
        return
    facts = describe(obj)
    if as_json:
        click.echo(json.dumps(facts, ensure_ascii=False))
        return
    for key, value in facts.items():
        if isinstance(value, dict):
            for k, v in value.items():
                click.echo(f"{key}.{k}\t{_plain(v)}")
        else:
            click.echo(f"{key}\t{_plain(value)}")


def _plain(v) -> str:
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return str(v)


def describe(obj) -> dict:
    """The facts lm-info prints, as a dict (also an API for notebooks)."""
    from lmtools.ngram.counting import Levels
    from lmtools.ngram.counts import Counts
    from lmtools.ngram.model import NGramModel

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
        if obj.info:
            facts["info"] = dict(obj.info)
    else:
        facts["kind"] = "ffnn"
        facts.update(obj.describe() if hasattr(obj, "describe") else {"vocabulary": len(obj.vocab)})
    if text is not None:
        facts["text"] = {"chars": bool(text["chars"]), "lower": bool(text["lower"])}
    prov = getattr(obj, "provenance", None) or {}
    if prov:
        facts["provenance"] = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in prov.items()}
    return facts


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
