"""The bad-input campaign (bench/reliability.py), a representative subset: each case runs a real lm-*
program in its own directory and must keep the shell contract (exit status, one error line, no
traceback, no temporary file left, nothing but the output touched). The whole table:
``python bench/reliability.py``."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("lm_reliability", ROOT / "bench" / "reliability.py")
rel = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(rel)

pytestmark = pytest.mark.slow

SUBSET = [
    # impossible option values, options of another method
    "options/lm-count.n=0",
    "options/lm-train.kn.discount=5",
    "options/lm-train.discount=nan",
    "options/lm-train.ffnn.lr=nan",
    "options/lm-train.ffnn.lr=1e4",
    "options/lm-gen.temperature=0",
    "options/lm-ppl.lambda=nan",
    "wrong-option/lm-train -m kn --epochs 3 counts.lm",
    # -o onto what is not a regular file, or is an input
    "output/lm-count -o null-device",
    "output/lm-count -o full-device",
    "output/lm-count -o fifo",
    "output/lm-train -o symlink-to-file",
    "output/lm-merge -o directory",
    "output/lm-count -o ''",
    "output/lm-count -o the input",
    "output/lm-merge -o an input",
    "output/lm-train ffnn -o missing-dir, checked first",
    "output/lm-score > full-device",
    "output/lm-count stdout closed",
    # pipes and signals
    "pipe/lm-score | head -1",
    "pipe/lm-gen | head -1",
    "signal/lm-count -o, SIGTERM while reading stdin",
    "signal/lm-train ffnn -o existing, SIGHUP mid-training",
    # damaged models and ARPA files
    "model-input/lm-ppl kn-trunc.lm.gz",
    "model-input/lm-info kn-trailing.lm",
    "model-input/lm-gen huge-claim.lm.gz",
    "model-input/lm-ppl nan-prob.arpa",
    "model-input/lm-ppl pos-prob.arpa",
    # text
    "text-input/lm-count bad-utf8.txt",
    "text-input/lm-score stops at invalid UTF-8 after the lines before",
    "text-input/lm-gen --prefix invalid UTF-8",
    "text-input/lm-count --max-line 1M, a 20 MB line",
    # character and word models mixed
    "mixing/lm-ppl --chars model, word text",
    "mixing/lm-ppl mixture of a char and a word model",
    "mixing/lm-merge --chars with word counts",
]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return rel.Fixtures(tmp_path_factory.mktemp("fixtures")).build(log=lambda s: None)


@pytest.fixture(scope="module")
def table(fixtures):
    return {c.name: c for c in rel.all_cases(fixtures)}


def test_subset_names_are_in_the_table(table):
    missing = [n for n in SUBSET if n not in table]
    assert not missing


@pytest.mark.parametrize("name", SUBSET)
def test_bad_input_case(fixtures, table, name, tmp_path):
    case = table[name]
    res = rel.run_case(case, fixtures, str(tmp_path))
    detail = "; ".join(f"{c}: {d}" for c, d in res.failures)
    assert res.passed, f"{res.command} -> exit {res.rc}: {detail} (stderr: {res.first_stderr_line()})"


def test_mutated_model_files(fixtures, tmp_path):
    """Damaged model and ARPA files, and models with right checksums but impossible contents, loaded
    in one process: refused with an LmError, or (where the policy allows) the intact model's scores."""
    muts = rel.mutations(fixtures, per_kind=24, seed=3) + rel.semantic_mutations(fixtures)
    results = rel.check_mutations(fixtures, muts, tmp_path)
    assert len(results) == len(muts)
    bad = [f"{m['id']} ({m['what']}): {m['outcome']} {m['detail']}" for m in results if m["failure"]]
    assert not bad, "\n".join(bad)
    assert sum(m["outcome"] == "refused" for m in results) > len(results) // 2


def test_harness_detects_damage(fixtures, tmp_path):
    """The harness itself: a file changed beside the output, a left .part file and a wrong exit status
    are each reported."""
    before = rel.snapshot(fixtures.dir)
    assert rel.compare(before, before, set(), set()) == []
    work = tmp_path / "w"
    work.mkdir()
    (work / "a.txt").write_text("a")
    snap = rel.snapshot(work)
    (work / "a.txt").write_text("b")
    (work / ".out.lm.x1.part").write_text("")
    classes = {c for c, _ in rel.compare(snap, rel.snapshot(work), set(), set())}
    assert classes == {"file-damaged", "temp-file-left"}
    case = rel.Case("misc/true", "lm-info", ["--no-such-option"], rel.OK)
    res = rel.run_case(case, fixtures, str(tmp_path))
    assert not res.passed and res.rc == 2
    assert {c for c, _ in res.failures} == {"exit-status"}
