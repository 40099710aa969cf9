"""lm-score through real processes: one line out per line in, formats, streaming, pipes."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys

import pytest

from tests import naive_query as NQ
from tests.conftest import DATA, ROOT, SHAKESPEARE, run_prog

ARPA3 = DATA / "kenlm" / "tinyshakespeare-train.o3.arpa.xz"
TEXT = "First Citizen :\n\nzzyzx qqqq\n  the   king\tis dead  \nlast line without newline"


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """KenLM's ARPA as an lmtools model file (loads faster than the 2.6 MB ARPA.gz in every process)."""
    from lmtools.io.arpa import read_arpa
    from lmtools.io.models import save_model

    path = tmp_path_factory.mktemp("score") / "o3.lm"
    with open(path, "wb") as f:
        save_model(read_arpa(str(ARPA3), warn=lambda m: None), f)
    return path


@pytest.fixture(scope="module")
def ref():
    import lzma

    return NQ.tables_from_arpa_text(lzma.decompress(ARPA3.read_bytes()).decode("utf-8"))


def test_one_line_per_line_tsv(ref):
    r = run_prog("lm-score", "-m", ARPA3, input=TEXT.encode())
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode().splitlines()
    lines = TEXT.split("\n")
    assert len(out) == len(lines) == 5
    for line, row in zip(lines, out):
        lp, tokens, oovs, ppl = row.split("\t")
        want = NQ.score_line(*ref, line)
        assert float(lp) == pytest.approx(sum(w[1] for w in want), abs=2e-6)
        assert int(tokens) == len(want) and int(oovs) == sum(w[3] for w in want)
        assert float(ppl) == pytest.approx(10 ** (-float(lp) / int(tokens)), rel=1e-5)


def test_text_and_words_columns(ref, lm):
    r = run_prog("lm-score", "-m", lm, "--text", "--words", input=TEXT.encode())
    rows = r.stdout.decode().split("\n")[:-1]
    for line, row in zip(TEXT.split("\n"), rows):
        want = NQ.score_line(*ref, line)
        cols = row.split("\t", 4 + len(want))  # the line itself is last and may hold tabs
        assert cols[-1] == line
        words = [c.split(" ") for c in cols[4:-1]]
        assert [w[0] for w in words] == [w[0] for w in want]
        assert [float(w[1]) for w in words] == pytest.approx([w[1] for w in want], abs=2e-6)
        assert [int(w[2]) for w in words] == [w[2] for w in want]
        assert [w[3] == "1" for w in words] == [w[3] for w in want]


def test_jsonl(ref, lm):
    r = run_prog("lm-score", "-m", lm, "--format", "jsonl", "--words", "--text", "--lower", input=TEXT.encode())
    objs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [o["text"] for o in objs] == TEXT.split("\n")  # the line as read, not lower-cased
    for line, o in zip(TEXT.split("\n"), objs):
        want = NQ.score_line(*ref, line.lower())
        assert [w["word"] for w in o["words"]] == [w[0] for w in want]
        assert o["logprob"] == pytest.approx(sum(w[1] for w in want), abs=2e-6)
        assert [w["oov"] for w in o["words"]] == [w[3] for w in want]


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_large_input_matches_small_path(lm):
    """A large input takes the numba path, a small one the numpy path: same numbers."""
    lines = SHAKESPEARE.read_bytes().split(b"\n")[:-1][-3000:]
    data = b"\n".join(lines) + b"\n"
    big = run_prog("lm-score", "-m", lm, "--threads", "2", input=data).stdout.splitlines()
    assert len(big) == 3000
    small = []
    for k in range(0, 3000, 1000):  # 1000 lines ~ 35 kB: under the small-input limit
        part = b"\n".join(lines[k:k + 1000]) + b"\n"
        assert len(part) < 1 << 16
        small += run_prog("lm-score", "-m", lm, input=part).stdout.splitlines()
    assert big == small


def test_literal_sentence_markers_dropped_with_warning(lm):
    r = run_prog("lm-score", "-m", lm, input=b"<s> the king </s>\n")
    assert r.returncode == 0
    assert r.stderr.decode().count("warning") == 1 and "2 literal" in r.stderr.decode()
    assert r.stdout.split(b"\t")[1] == b"3"


def test_head_ends_quietly(lm):
    data = (SHAKESPEARE.read_bytes()) * 3
    p = subprocess.run(f"{sys.executable} -m lmtools.cli.score -m {lm} | head -1", shell=True,
                       input=data, capture_output=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1
    assert p.stderr == b""


def test_streaming_output_before_end_of_input(lm):
    """A slow producer: each line's score comes out before the next line is written."""
    proc = subprocess.Popen([sys.executable, "-m", "lmtools.cli.score", "-m", str(lm)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        for line in (b"the king is dead\n", b"long live the king\n"):
            proc.stdin.write(line)
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "no output while the input is still open"
            out = os.read(proc.stdout.fileno(), 4096)
            assert out.count(b"\n") == 1
    finally:
        proc.stdin.close()
        proc.wait(30)
    assert proc.returncode == 0


def test_errors(lm):
    r = run_prog("lm-score", input=b"x\n")
    assert r.returncode == 2 and b"lm-score: error:" in r.stderr and b"stdin" in r.stderr
    r = run_prog("lm-score", "-m", lm, input=b"ok\n\xfe\n")
    assert r.returncode == 1 and b":2:" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_prog("lm-score", "-m", lm, "--encoding-errors", "replace", input=b"ok\n\xfe\n")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
