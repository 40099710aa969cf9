"""Plain-Python reference scorer for back-off n-gram models (tests only).

Dicts of word tuples, the rule written out as in DESIGN.md ("Query"): for each word w after
context h (at most N-1 words, starting with <s>), find the longest n-gram h_m w in the model;
log10 p = its log10 p + the backoffs of the suffixes of h longer than h_m that are in the model.
A word without a unigram is scored as <unk> and stays in the context as <unk>.
No numpy, no hashing, no early stop: every order is looked up.
"""

import math

from tests.naive import split_ascii


def tables_from_model(model):
    """{word tuple: (log10 p, backoff)} from an NGramModel."""
    vocab = model.vocab
    table = {}
    for n in range(1, model.order + 1):
        rows = model.ngrams[n - 1].tolist()
        lps = model.logprob[n - 1].tolist()
        bos = model.backoff[n - 1].tolist()
        for row, lp, bo in zip(rows, lps, bos):
            table[tuple(vocab[i] for i in row)] = (lp, bo)
    return table, model.order


def tables_from_arpa_text(text):
    """{word tuple: (log10 p, backoff)} and the order, parsed from ARPA text (a separate reader)."""
    table = {}
    order = 0
    n = 0
    for line in text.split("\n"):
        line = line.strip()
        if not line or line.startswith("ngram ") or line == "\\data\\" or line == "\\end\\":
            continue
        if line.startswith("\\") and line.endswith("-grams:"):
            n = int(line[1:line.index("-")])
            order = max(order, n)
            continue
        parts = line.split()
        lp = float(parts[0])
        words = tuple(parts[1:1 + n])
        bo = float(parts[1 + n]) if len(parts) > 1 + n else 0.0
        table[words] = (lp, bo)
    return table, order


def score_words(table, order, words, bos=True, eos=True):
    """[(word, log10 p, matched order, oov)] for one sentence's words (+ </s> if eos)."""
    ctx = ["<s>"] if bos else []
    out = []
    toks = [w for w in words if w not in ("<s>", "</s>")] + (["</s>"] if eos else [])
    for w in toks:
        oov = (w,) not in table
        q = "<unk>" if oov else w
        h = ctx[-(order - 1):] if order > 1 else []
        best = 0
        for m in range(len(h), -1, -1):
            if tuple(h[len(h) - m:]) + (q,) in table:
                best = m
                break
        lp = table[tuple(h[len(h) - best:]) + (q,)][0] if best or (q,) in table else -100.0
        total = lp
        for k in range(best + 1, len(h) + 1):
            g = tuple(h[len(h) - k:])
            if g in table:
                total += table[g][1]
        out.append((w, total, best + 1, oov))
        ctx.append(q)
    return out


def score_line(table, order, line):
    return score_words(table, order, split_ascii(line))


def ppl_figures(table, order, lines):
    """(ppl incl. OOVs, ppl excl. OOVs, tokens, oovs) over lines, no zero-probability handling."""
    lp_all = lp_iv = 0.0
    tokens = oovs = 0
    for line in lines:
        for _, lp, _, oov in score_line(table, order, line):
            tokens += 1
            lp_all += lp
            if oov:
                oovs += 1
            else:
                lp_iv += lp
    return 10 ** (-lp_all / tokens), 10 ** (-lp_iv / (tokens - oovs)), tokens, oovs


def log10_mix(logps, lambdas):
    """log10 sum_i lambda_i 10^lp_i, plainly."""
    return math.log10(sum(lam * 10.0 ** lp for lam, lp in zip(lambdas, logps)))
