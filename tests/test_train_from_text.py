"""lm-train from text in one process (as lmplz): ``lm-train -n N corpus.txt`` gives the bytes of
``lm-count -n N corpus.txt | lm-train``, with lm-count's counting options; how lm-train tells text,
text counts and model files apart, and the options each kind of input refuses.
"""

from __future__ import annotations

import gzip

import pytest

from lmtools.cli import inputs
from tests.conftest import SHAKESPEARE, error_line, run_prog
from tests.inprocess import invoke, keep_signal_handlers, ok  # noqa: F401 (an autouse fixture)

LINES = SHAKESPEARE.read_bytes().splitlines(keepends=True)


def pipe(tmp_path, count_args, train_args, corpus) -> bytes:
    """lm-count ARGS corpus | lm-train ARGS, in process (the counts through a file, as a pipe carries them)."""
    counts = ok(invoke("lm-count", "-q", *count_args, corpus)).stdout_bytes
    return ok(invoke("lm-train", "-q", *train_args, input=counts)).stdout_bytes


def one(train_args, *corpus) -> bytes:
    return ok(invoke("lm-train", "-q", *train_args, *corpus)).stdout_bytes


# The whole of Tiny Shakespeare, orders 1-5, several methods (the model file, bytes and all).
CASES = [(1, "kn-modified"), (1, "mle"), (2, "wb"), (2, "add-k"), (3, "kn-modified"), (3, "katz"), (4, "abs"),
         (4, "kn"), (5, "kn-modified"), (5, "wb"), (5, "stupid")]


@pytest.mark.parametrize("order,method", CASES)
def test_one_process_equals_the_pipe_on_tiny_shakespeare(order, method, tmp_path):
    want = pipe(tmp_path, ["-n", order], ["--method", method], SHAKESPEARE)
    got = one(["-n", order, "--method", method], SHAKESPEARE)
    assert got == want


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("trainfromtext")
    (d / "a.txt").write_bytes(b"".join(LINES[:2000]))
    (d / "b.txt.gz").write_bytes(gzip.compress(b"".join(LINES[2000:3000])))
    (d / "v.txt").write_text("the and of to a I you my First Citizen zzunseen\n")
    return d


@pytest.mark.parametrize("count_args,train_args", [
    (["-n", "3", "--lower", "--min-count", "2"], ["--arpa"]),
    (["-n", "4", "--chars"], ["--method", "wb"]),
    (["-n", "3", "--vocab-size", "500"], ["--prune", "0,1"]),
    (["-n", "2", "--encoding-errors", "replace"], ["--method", "katz", "--arpa"]),
    (["-n", "3", "--max-line", "1K"], []),
])
def test_counting_options_mean_what_they_mean_to_lm_count(d, tmp_path, count_args, train_args):
    want = pipe(tmp_path, count_args, train_args, d / "a.txt")
    assert one(count_args + train_args, d / "a.txt") == want


def test_vocab_is_the_estimations_closed_vocabulary(d, tmp_path):
    """--vocab stays lm-train's option (applied to the counts), with text as with counts."""
    want = pipe(tmp_path, ["-n", "3"], ["--vocab", d / "v.txt"], d / "a.txt")
    assert one(["-n", "3", "--vocab", d / "v.txt"], d / "a.txt") == want


def test_several_files_compressed_and_stdin(d, tmp_path):
    counts = ok(invoke("lm-count", "-q", "-n", "3", d / "a.txt", d / "b.txt.gz")).stdout_bytes
    want = ok(invoke("lm-train", "-q", input=counts)).stdout_bytes
    assert one(["-n", "3"], d / "a.txt", d / "b.txt.gz") == want
    text = (d / "a.txt").read_bytes()
    counts = ok(invoke("lm-count", "-q", "-n", "2", input=text)).stdout_bytes
    want = ok(invoke("lm-train", "-q", input=counts)).stdout_bytes
    assert ok(invoke("lm-train", "-q", "-n", "2", input=text)).stdout_bytes == want
    assert ok(invoke("lm-train", "-q", "-n", "2", input=gzip.compress(text))).stdout_bytes == want


def test_default_order_is_lm_counts(d, tmp_path):
    assert one([], d / "a.txt") == pipe(tmp_path, [], [], d / "a.txt")


@pytest.mark.slow
def test_processes_give_the_same_bytes(d, tmp_path):
    """The real programs, through a real pipe (stdin of lm-train is lm-count's stdout)."""
    counts = run_prog("lm-count", "-q", "-n", "3", d / "a.txt")
    assert counts.returncode == 0
    a = run_prog("lm-train", "-q", "-o", tmp_path / "a.lm", input=counts.stdout)
    b = run_prog("lm-train", "-q", "-n", "3", d / "a.txt", "-o", tmp_path / "b.lm")
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    assert (tmp_path / "a.lm").read_bytes() == (tmp_path / "b.lm").read_bytes()


def test_the_kinds_of_input(d, tmp_path):
    ok(invoke("lm-count", "-q", "-n", "2", "-o", tmp_path / "c.lm", d / "a.txt"))
    ok(invoke("lm-count", "-q", "-n", "2", "--text", "-o", tmp_path / "c.txt", d / "a.txt"))
    ok(invoke("lm-train", "-q", "-o", tmp_path / "m.lm", tmp_path / "c.lm"))
    ok(invoke("lm-train", "-q", "--arpa", "-o", tmp_path / "m.arpa", tmp_path / "c.lm"))
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "tab.txt").write_bytes(b"\n\nno tab on the first line\tthough later\n")
    assert [inputs.input_kind(str(tmp_path / f)) for f in ("c.lm", "m.lm", "m.arpa", "c.txt", "tab.txt")] == \
        [inputs.MODEL, inputs.MODEL, inputs.MODEL, inputs.COUNTS, inputs.TEXT]
    assert inputs.input_kind(str(d / "a.txt")) == inputs.TEXT
    assert inputs.input_kind(str(d / "b.txt.gz")) == inputs.TEXT
    # an empty input goes to the model reader, which says what it expected
    line = error_line(invoke("lm-train", tmp_path / "empty.txt"), "lm-train", 1)
    assert "empty input" in line


@pytest.mark.parametrize("args,code,needle", [
    (["-n", "1001", "{a}"], 2, "order must be 1 to 1000"),
    (["-n", "0", "{a}"], 2, "order"),
    (["--lower", "{c}"], 1, "--lower applies to text FILES"),
    (["--min-count", "2", "{t}"], 1, "--min-count applies to text FILES"),
    (["--chars", "--from-arpa", "{arpa}"], 2, "--chars applies to text FILES"),
    (["{c}", "{c}"], 2, "read one counts input"),
    (["{t}", "{t}"], 2, "read one counts input"),
    (["{a}", "{c}"], 1, "a text corpus"),
    (["{a}", "-", "-"], 2, "stdin"),
])
def test_refused(d, tmp_path, args, code, needle):
    ok(invoke("lm-count", "-q", "-n", "2", "-o", tmp_path / "c.lm", d / "a.txt"))
    ok(invoke("lm-count", "-q", "-n", "2", "--text", "-o", tmp_path / "t.txt", d / "a.txt"))
    ok(invoke("lm-train", "-q", "--arpa", "-o", tmp_path / "m.arpa", tmp_path / "c.lm"))
    names = {"a": d / "a.txt", "c": tmp_path / "c.lm", "t": tmp_path / "t.txt", "arpa": tmp_path / "m.arpa"}
    args = [a.format(**names) for a in args]
    r = invoke("lm-train", *args, "-o", tmp_path / "out.lm", input=b"")
    assert needle in error_line(r, "lm-train", code)
    assert not (tmp_path / "out.lm").exists()


def test_ffnn_keeps_its_vocabulary_options(d, tmp_path):
    """--min-count and --vocab-size are shared with --method ffnn (its own meaning of --vocab-size)."""
    (tmp_path / "small.txt").write_bytes(b"".join(LINES[:300]))
    r = ok(invoke("lm-train", "--method", "ffnn", "-q", "--epochs", "1", "--dim", "4", "--hidden", "4",
                  "--context", "2", "--vocab-size", "50", "--min-count", "2", "-o", tmp_path / "f.lm",
                  tmp_path / "small.txt"))
    from lmtools.io.models import load_model

    assert len(load_model(str(tmp_path / "f.lm")).vocab) == 50
    assert r.stderr == ""


@pytest.mark.parametrize("producer", ["lm-count -q -n 2 --text {a}", "lm-count -q -n 2 {a}", "cat {a}",
                                      "gzip -c {a}"])
@pytest.mark.slow
def test_named_pipes_are_read_once(d, tmp_path, producer):
    """A FILE that is a pipe (bash's <(command)) is looked at and then read from where it was: the
    bytes looked at are put back, since a pipe cannot be opened twice."""
    import subprocess
    import sys

    want = ok(invoke("lm-train", "-q", "-n", "2", "--arpa", d / "a.txt")).stdout_bytes
    cmd = (f"{sys.executable} -m lmtools.cli.train -q -n 2 --arpa <({producer.format(a=d / 'a.txt')})"
           .replace("lm-count", f"{sys.executable} -m lmtools.cli.count"))
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == want
