"""lm-merge: merging shard counts equals counting the concatenated text."""

import io

import numpy as np
import pytest

from lmtools.io.models import save_model
from lmtools.ngram import counting
from lmtools.ngram.merge import merge_levels
from tests.conftest import SHAKESPEARE, run_prog


def _save(lv) -> bytes:
    lv.provenance = {}
    buf = io.BytesIO()
    save_model(lv, buf)
    return buf.getvalue()


@pytest.mark.parametrize("small", [True, False], ids=["plain-python", "kernel"])
def test_merge_equals_counting_the_concatenation(tmp_path, small):
    # both ways of summing (a dict for small inputs, the numba table otherwise) give the same file
    lines = SHAKESPEARE.read_text().splitlines(keepends=True)[:6000]
    shards = ["".join(lines[i::3]) for i in range(3)]
    paths = []
    for i, s in enumerate(shards):
        p = tmp_path / f"s{i}.txt"
        p.write_text(s)
        paths.append(str(p))
    whole = counting.count_levels(paths, 4)
    merged = merge_levels([counting.count_levels([p], 4) for p in paths], small=small)
    assert merged.vocab == whole.vocab
    assert _save(merged) == _save(whole)


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_cli_merge_and_errors(tmp_path):
    a = run_prog("lm-count", "-n", "3", input=b"a b c\n").stdout
    b = run_prog("lm-count", "-n", "3", input=b"c d\n").stdout
    (tmp_path / "a.lm").write_bytes(a)
    (tmp_path / "b.lm").write_bytes(b)
    r = run_prog("lm-merge", tmp_path / "a.lm", "-", input=b)
    assert r.returncode == 0
    both = run_prog("lm-count", "-n", "3", input=b"a b c\nc d\n").stdout
    from io import BufferedReader, BytesIO

    from lmtools.io.models import load_model

    m, w = (load_model(BufferedReader(BytesIO(x))) for x in (r.stdout, both))
    assert m.vocab == w.vocab and all(np.array_equal(x, y) for x, y in zip(m.counts, w.counts))
    assert m.tokens == w.tokens == 7
    two = run_prog("lm-count", "-n", "2", input=b"a\n").stdout
    (tmp_path / "two.lm").write_bytes(two)
    r = run_prog("lm-merge", tmp_path / "a.lm", tmp_path / "two.lm")
    assert r.returncode == 1 and b"order" in r.stderr and len(r.stderr.splitlines()) == 1
