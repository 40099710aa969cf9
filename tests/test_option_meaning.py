"""One meaning per option name across the programs: the new spellings, the old ones still working with
one deprecation line, habits of KenLM and SRILM refused with a hint, lm-ppl --srilm, lm-info's
machine-readable forms, lm-train's grouped --help and the note when the kernels compile.

In process through click's CliRunner (the programs are the same functions the launchers call).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import signal

import pytest

from lmtools.cli import common
from tests.conftest import PROGRAMS, SHAKESPEARE, error_line
from tests.inprocess import invoke, keep_signal_handlers, ok  # noqa: F401 (an autouse fixture)

LINES = SHAKESPEARE.read_bytes().splitlines(keepends=True)



def usage_error(r, prog: str) -> str:
    line = error_line(r, prog, 2)
    assert r.stdout == ""
    return line


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("meaning")
    (d / "train.txt").write_bytes(b"".join(LINES[:400]))
    (d / "test.txt").write_bytes(b"".join(LINES[400:430]) + b"zzqx unseenword the\n\n")
    saved = {s: signal.getsignal(s) for s in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        ok(invoke("lm-count", "-n", "3", "-o", d / "c.lm", d / "train.txt"))
        ok(invoke("lm-train", "-q", "-o", d / "kn.lm", d / "c.lm"))
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    return d


# ----------------------------------------------------------------------------------------------
# -m is the model, -n the order: lm-train's method and lm-gen's number of sentences


def test_train_old_m_is_the_method_with_a_warning(d, tmp_path):
    new = ok(invoke("lm-train", "--method", "wb", "-q", "-o", tmp_path / "new.lm", d / "c.lm"))
    old = ok(invoke("lm-train", "-m", "wb", "-q", "-o", tmp_path / "old.lm", d / "c.lm"))
    assert new.stderr == ""
    assert old.stderr == "lm-train: warning: -m for the method is deprecated; use --method wb\n"
    assert (tmp_path / "old.lm").read_bytes() == (tmp_path / "new.lm").read_bytes()


@pytest.mark.parametrize("args,needle", [
    (["-m", "kn5.lm", "--arpa"], "--from-arpa"),  # SRILM/KenLM habit: -m is the model
    (["-m", "wb", "-m", "kn"], "--method NAME"),  # a repeated -m: lm-train makes one model
    (["-m", "wb", "--method", "kn"], "--method"),
    (["--method", "nope"], "unknown smoothing method"),
    (["-o", "5"], "did you mean -n 5? (write -o ./5 for a file named 5)"),  # lmplz's -o is the order
])
def test_train_refuses_what_looks_like_a_mistake(d, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    assert needle in usage_error(invoke("lm-train", *args, d / "c.lm"), "lm-train")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("prog", ["lm-count", "lm-merge"])
def test_o_of_digits_is_refused_unless_a_file(d, tmp_path, monkeypatch, prog):
    monkeypatch.chdir(tmp_path)
    src = d / ("train.txt" if prog == "lm-count" else "c.lm")
    line = usage_error(invoke(prog, "-o", "5", src), prog)
    assert "-o 5 would write a file named 5" in line and "-o ./5" in line
    assert ("did you mean -n 5?" in line) == (prog == "lm-count")
    assert list(tmp_path.iterdir()) == []
    ok(invoke(prog, "-o", "./5", src))  # the spelled-out path is written
    assert (tmp_path / "5").stat().st_size > 0
    (tmp_path / "5").unlink()
    (tmp_path / "5").write_bytes(b"old")
    ok(invoke(prog, "-o", "5", src))  # an existing file named 5 is an ordinary output
    assert (tmp_path / "5").read_bytes() != b"old"


def test_gen_sentences_and_the_old_n(d):
    new = ok(invoke("lm-gen", "-m", d / "kn.lm", "-s", "4", "--seed", "3"))
    long = ok(invoke("lm-gen", "-m", d / "kn.lm", "--sentences", "4", "--seed", "3"))
    old = ok(invoke("lm-gen", "-m", d / "kn.lm", "-n", "4", "--seed", "3"))
    assert len(new.stdout.splitlines()) == 4 and new.stdout == long.stdout == old.stdout
    assert new.stderr == ""
    assert old.stderr == "lm-gen: warning: -n/--count for the number of sentences is deprecated; use -s 4\n"
    usage_error(invoke("lm-gen", "-m", d / "kn.lm", "-n", "4", "-s", "4"), "lm-gen")


def test_gen_no_chars_and_the_old_words(d):
    new = ok(invoke("lm-gen", "-m", d / "kn.lm", "-s", "3", "--seed", "1", "--no-chars"))
    old = ok(invoke("lm-gen", "-m", d / "kn.lm", "-s", "3", "--seed", "1", "--words"))
    assert new.stdout == old.stdout and new.stderr == ""
    assert old.stderr == "lm-gen: warning: --words for word tokens is deprecated; use --no-chars\n"


def test_gen_mixture_weights_as_lm_ppl(d):
    """-m A -m B is a mixture (as lm-ppl); --lambda is spelled and checked as lm-ppl's."""
    ok(invoke("lm-gen", "-m", d / "kn.lm", "-m", d / "c.lm", "--lambda", "0.3", "-s", "2", "--seed", "1"))
    assert "two or more models" in usage_error(invoke("lm-gen", "-m", d / "kn.lm", "--lambda", "0.3"), "lm-gen")
    assert "3 weights for 2 models" in usage_error(
        invoke("lm-gen", "-m", d / "kn.lm", "-m", d / "c.lm", "--lambda", "0.3,0.3,0.4"), "lm-gen")


def test_ppl_and_score_mix_repeated_m(d):
    one = json.loads(ok(invoke("lm-ppl", "-m", d / "kn.lm", "--json", d / "test.txt")).stdout)
    mix = json.loads(ok(invoke("lm-ppl", "-m", d / "kn.lm", "-m", d / "kn.lm", "--json", d / "test.txt")).stdout)
    assert mix["lambdas"] == [0.5, 0.5] and mix["total"]["ppl"] == pytest.approx(one["total"]["ppl"], rel=1e-9)


@pytest.mark.parametrize("prog,args", [("lm-ppl", ["t.txt"]), ("lm-score", ["t.txt"]), ("lm-info", []),
                                       ("lm-ppl", ["-m", "-", "t.txt"])])
def test_no_model_and_a_terminal_on_stdin_is_a_usage_error(prog, args, monkeypatch):
    """It would wait, silently, for a binary model typed at the keyboard: say what is missing."""
    module = "ppl" if prog in ("lm-ppl", "lm-score") else "info"
    monkeypatch.setattr(importlib.import_module(f"lmtools.cli.{module}"), "_stdin_is_terminal", lambda: True)
    assert "standard input is a terminal" in usage_error(invoke(prog, *args), prog)


# ----------------------------------------------------------------------------------------------
# Output options: --json is JSON output everywhere; --words is lm-score's; --vocab is an input FILE


def test_score_json_is_format_jsonl(d):
    a = ok(invoke("lm-score", "-m", d / "kn.lm", "--json", "--words", d / "test.txt"))
    b = ok(invoke("lm-score", "-m", d / "kn.lm", "--format", "jsonl", "--words", d / "test.txt"))
    assert a.stdout == b.stdout and len(a.stdout.splitlines()) == 32
    assert all(isinstance(json.loads(line), dict) for line in a.stdout.splitlines())
    ok(invoke("lm-score", "-m", d / "kn.lm", "--json", "--format", "jsonl", d / "test.txt"))
    assert "--json" in usage_error(invoke("lm-score", "-m", d / "kn.lm", "--json", "--format", "tsv", d / "test.txt"),
                                   "lm-score")


def test_info_list_vocab_and_the_old_vocab(d):
    new = ok(invoke("lm-info", "--list-vocab", d / "kn.lm"))
    old = ok(invoke("lm-info", "--vocab", d / "kn.lm"))
    assert new.stdout == old.stdout and new.stdout.splitlines()[:3] == ["<unk>", "<s>", "</s>"]
    assert old.stderr == "lm-info: warning: --vocab for the word list is deprecated; use --list-vocab\n"


def _strings(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)
    elif isinstance(x, str):
        yield x


def test_info_json_is_nested(d):
    facts = json.loads(ok(invoke("lm-info", "--json", d / "kn.lm")).stdout)
    prov = facts["provenance"]
    assert prov["options"]["method"] == "kn-modified" and prov["counts"]["options"]["order"] == 3
    for s in _strings(facts):  # no JSON text inside a string
        assert not s.lstrip().startswith(("{", "[")), s


def test_info_text_is_key_tab_value(d):
    from lmtools.cli.info import text_lines

    text = ok(invoke("lm-info", d / "kn.lm")).stdout
    facts = dict(line.split("\t", 1) for line in text.splitlines())
    assert all(line.count("\t") == 1 for line in text.splitlines())
    assert facts["kind"] == "ngram" and facts["provenance.options.method"] == "kn-modified"
    assert facts["provenance.counts.options.order"] == "3" and facts["scores_only"] == "false"
    assert len(facts["info.discounts"].split()) == 3 and len(facts["info.discounts"].split()[0].split(",")) == 3
    records = dict(text_lines({"a": {"epochs": [{"lr": 0.5}, {"lr": 0.25}], "sizes": [[1, 2], [3]]}}))
    assert records == {"a.epochs.0.lr": "0.5", "a.epochs.1.lr": "0.25", "a.sizes": "1,2 3"}
    help_text = ok(invoke("lm-info", "--help")).stdout
    assert "KEY<TAB>VALUE" in help_text


# ----------------------------------------------------------------------------------------------
# lm-ppl --srilm: SRILM ngram -ppl's two lines, from a hand computation over lm-score's per-token rows


def _hand_srilm(d):
    rows = [json.loads(x) for x in ok(invoke("lm-score", "-m", d / "kn.lm", "--json", "--words",
                                             d / "test.txt")).stdout.splitlines()]
    sentences = len(rows)
    words = sum(len(r["words"]) - 1 for r in rows)
    oovs = sum(w["oov"] for r in rows for w in r["words"])
    logprob = math.fsum(w["logprob"] for r in rows for w in r["words"] if not w["oov"])
    ppl = 10 ** (-logprob / (words - oovs + sentences))  # </s> counted
    ppl1 = 10 ** (-logprob / (words - oovs))  # without </s>
    return sentences, words, oovs, logprob, ppl, ppl1


def test_ppl_srilm_report(d):
    sentences, words, oovs, logprob, ppl, ppl1 = _hand_srilm(d)
    assert oovs >= 2 and sentences == 32  # the two made-up words, and more
    out = ok(invoke("lm-ppl", "-m", d / "kn.lm", "--srilm", d / "test.txt")).stdout.splitlines()
    assert out[0] == f"file {d / 'test.txt'}: {sentences} sentences, {words} words, {oovs} OOVs"
    m = re.fullmatch(r"0 zeroprobs, logprob= (\S+) ppl= (\S+) ppl1= (\S+)", out[1])
    assert m, out[1]
    assert m.group(1) == "%g" % logprob
    assert float(m.group(2)) == pytest.approx(ppl, rel=1e-5) and float(m.group(3)) == pytest.approx(ppl1, rel=1e-5)
    assert len(out) == 2


def test_ppl_srilm_total_of_several_files(d):
    out = ok(invoke("lm-ppl", "-m", d / "kn.lm", "--srilm", d / "test.txt", d / "test.txt")).stdout.splitlines()
    assert len(out) == 6 and out[4].startswith("file TOTAL: 64 sentences,")
    assert out[5].split(" ppl=")[1] == out[1].split(" ppl=")[1]  # the same text twice: the same ppl and ppl1
    assert "--srilm" in usage_error(invoke("lm-ppl", "-m", d / "kn.lm", "--srilm", "--json", d / "test.txt"),
                                    "lm-ppl")


# ----------------------------------------------------------------------------------------------
# lm-train --help: options in groups that say which methods they apply to


def test_train_help_is_grouped():
    text = ok(invoke("lm-train", "--help")).stdout
    text = text[text.index("\nOptions:\n"):]
    heads = [line.strip() for line in text.splitlines() if re.match(r"  \S.*:\s*$", line)]
    assert [h.split(" (")[0] for h in heads] == ["N-gram estimation", "Neural model", "Text", "Output", "General"]
    assert "ffnn" in heads[1] and "ffnn" in heads[2] and "every method" in heads[3]

    def group_of(opt):
        current = None
        for line in text.splitlines():
            if re.match(r"  \S.*:\s*$", line):
                current = line.strip().split(" (")[0]
            elif re.match(rf"\s+(-\w, )?{re.escape(opt)}(?![\w-])", line):
                return current
    assert group_of("--order") == "N-gram estimation" and group_of("--discount") == "N-gram estimation"
    assert group_of("--context") == "Neural model" and group_of("--chars") == "Text"
    assert group_of("--output") == "Output" and group_of("--help") == "General"
    assert "-m, --method" not in text and "--method NAME" in text
    assert ok(invoke("lm-train", "-V")).stdout.startswith("lm-train (lmtools) ")
    assert ok(invoke("lm-train", "-h")).stdout.endswith(text)


def test_train_grouped_options_keep_their_parsing(d, tmp_path):
    """KenLM's unquoted --prune 0 0 1 still works inside its option group."""
    a = ok(invoke("lm-train", "-q", "--prune", "0", "0", "1", "-o", tmp_path / "a.lm", d / "c.lm"))
    b = ok(invoke("lm-train", "-q", "--prune", "0,0,1", "-o", tmp_path / "b.lm", d / "c.lm"))
    assert a.stderr == b.stderr == "" and (tmp_path / "a.lm").read_bytes() == (tmp_path / "b.lm").read_bytes()


# ----------------------------------------------------------------------------------------------
# The first run compiles the kernels: one line on a terminal


def _cache_dir(root) -> str:
    return common._kernel_cache_dirs()[0]


def test_compile_note_when_the_cache_is_empty(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(common, "stderr_is_terminal", lambda: True)
    common.compile_note("query")
    assert capsys.readouterr().err.endswith("compiling kernels on first use (about 30 s, once)\n")
    # numba's cache layout under NUMBA_CACHE_DIR: <dir>/<parent dir name>_<sha1 of the kernels' dir>/
    cache = _cache_dir(tmp_path)
    assert os.path.dirname(cache) == str(tmp_path) and os.path.basename(cache).startswith("kernels_")
    os.makedirs(cache)
    open(os.path.join(cache, "count.count_next_order-97.py311.nbi"), "w").close()
    common.compile_note("query")  # another module's kernels do not count
    assert "compiling" in capsys.readouterr().err
    open(os.path.join(cache, "query.score_lines-40.py311.nbi"), "w").close()
    common.compile_note("query")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(common, "stderr_is_terminal", lambda: False)
    common.compile_note("nothing-cached")  # a log or a pipe: never
    assert capsys.readouterr().err == ""


def test_compile_note_finds_numbas_own_cache(tmp_path):
    """Where numba really writes: a kernel compiled with NUMBA_CACHE_DIR set lands in the directory
    kernels_cached looks at."""
    import subprocess
    import sys

    code = ("from lmtools.kernels.tokenize import is_space; is_space(32); "
            "from lmtools.cli.common import kernels_cached; print(kernels_cached('tokenize'))")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout == b"True\n", r.stderr


def test_compile_note_thresholds_match_the_small_paths():
    """lm-count and lm-ppl say nothing of compiling for a text their plain paths take (no kernels)."""
    from lmtools.cli import count
    from lmtools.ngram import counting

    assert count.SMALL_INPUT_BYTES == counting.SMALL_INPUT_BYTES


def test_no_compile_note_for_a_small_text(d, monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))  # an empty cache
    monkeypatch.setattr(common, "stderr_is_terminal", lambda: True)
    r = ok(invoke("lm-count", "-q", "-o", tmp_path / "c.lm", d / "test.txt"))
    assert "compiling" not in r.stderr


def test_one_meaning_per_option_name():
    """Every visible spelling of these names means one thing in every program (a hidden one is a
    deprecated alias, which warns)."""
    import click

    meaning = {"-m": lambda p: p.name in ("models", "model_paths") and not p.is_flag,
               "-n": lambda p: p.name == "order", "-o": lambda p: p.name == "output",
               "--json": lambda p: p.is_flag, "--vocab": lambda p: p.name == "vocab_file" and not p.is_flag,
               "--words": lambda p: p.is_flag and p.name == "words", "-s": lambda p: p.name == "count",
               "--chars": lambda p: p.name == "chars", "-q": lambda p: p.name == "quiet",
               "-S": lambda p: p.name == "memory", "-T": lambda p: p.name == "temp_dir"}
    seen = set()
    for prog, module in PROGRAMS.items():
        for p in importlib.import_module(f"lmtools.cli.{module}").main.params:
            if not isinstance(p, click.Option):
                continue
            for opt in p.opts + p.secondary_opts:
                if opt in meaning:
                    seen.add(opt)
                    assert p.hidden or meaning[opt](p), f"{prog} {opt} means {p.name}"
                    if p.hidden:
                        assert "Deprecated" in (p.help or ""), f"{prog} {opt}"
    assert seen == set(meaning)
