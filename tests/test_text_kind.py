"""How a model's text was read (characters or words, lower-cased or not) travels with the model, and
every consumer applies it or refuses a mismatch.

In process through click's CliRunner (the programs are the same functions the launchers call).
"""

from __future__ import annotations

import io
import json
import signal

import pytest

from lmtools.io.text import header_text_kind, provenance_text_kind
from tests.conftest import SHAKESPEARE
from tests.conftest import error_line as one_error
from tests.inprocess import invoke, keep_signal_handlers, ok  # noqa: F401 (an autouse fixture)

LINES = SHAKESPEARE.read_bytes().splitlines(keepends=True)
TRAIN = b"".join(LINES[:600])
TEST = b"".join(LINES[600:660])



@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """Counts and models of one text read four ways, and the texts."""
    d = tmp_path_factory.mktemp("kind")
    (d / "train.txt").write_bytes(TRAIN)
    (d / "test.txt").write_bytes(TEST)
    (d / "shard2.txt").write_bytes(b"".join(LINES[700:800]))
    saved = {s: signal.getsignal(s) for s in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for name, flags in (("words", []), ("chars", ["--chars"]), ("lower", ["--lower"]),
                        ("lchars", ["--chars", "--lower"])):
        ok(invoke("lm-count", "-n", "3", *flags, d / "train.txt", "-o", d / f"{name}.counts"))
        ok(invoke("lm-train", "-q", d / f"{name}.counts", "-o", d / f"{name}.lm"))
    for s, h in saved.items():
        signal.signal(s, h)
    return d


def _header(path) -> dict:
    from lmtools.io.modelfile import read_model

    return read_model(io.BytesIO(path.read_bytes()), str(path))[0]


def test_models_record_their_text_kind(d):
    assert _header(d / "chars.counts")["text"] == {"chars": True, "lower": False}
    assert _header(d / "chars.lm")["text"] == {"chars": True, "lower": False}  # carried by lm-train
    assert _header(d / "lchars.lm")["text"] == {"chars": True, "lower": True}
    assert _header(d / "words.lm")["text"] == {"chars": False, "lower": False}
    facts = json.loads(ok(invoke("lm-info", "--json", d / "lower.lm")).stdout)
    assert facts["text"] == {"chars": False, "lower": True}


def test_older_files_fall_back_to_the_provenance():
    counts_prov = {"program": "lm-count", "options": {"order": 3, "chars": True, "lower": False}}
    assert header_text_kind({"provenance": counts_prov}) == {"chars": True, "lower": False}
    # lm-train keeps the counts' provenance one level down
    train_prov = {"program": "lm-train", "options": {"method": "kn-modified", "order": None},
                  "counts": {"program": "lm-count", "options": {"chars": False, "lower": True}}}
    assert header_text_kind({"provenance": train_prov}) == {"chars": False, "lower": True}
    assert header_text_kind({"provenance": {"program": "lm-merge", "options": {"order": 3}}}) is None
    assert provenance_text_kind(None) is None
    # the header's own record wins; a malformed one is a corrupt header
    assert header_text_kind({"text": {"chars": False, "lower": False}, "provenance": counts_prov})["chars"] is False
    from lmtools.errors import LmError

    with pytest.raises(LmError, match="corrupt model header"):
        header_text_kind({"text": {"chars": "yes", "lower": False}}, "m.lm")


@pytest.mark.parametrize("model", ["chars.lm", "chars.counts", "lchars.lm"])
def test_chars_model_reads_characters_without_the_flag(d, model):
    flags = ["--chars", "--lower"] if model.startswith("l") else ["--chars"]
    auto = ok(invoke("lm-ppl", "--json", "-m", d / model, d / "test.txt"))
    explicit = ok(invoke("lm-ppl", "--json", "-m", d / model, *flags, d / "test.txt"))
    assert auto.stdout == explicit.stdout
    total = json.loads(auto.stdout)["total"]
    assert total["oovs"] == 0 and total["ppl"] < 20  # characters, not 1,300 OOV words
    auto = ok(invoke("lm-score", "-m", d / model, d / "test.txt"))
    explicit = ok(invoke("lm-score", "-m", d / model, *flags, d / "test.txt"))
    assert auto.stdout == explicit.stdout and len(auto.stdout.splitlines()) == TEST.count(b"\n")


def test_lower_model_lower_cases_the_text(d):
    auto = ok(invoke("lm-ppl", "--json", "-m", d / "lower.lm", d / "test.txt"))
    explicit = ok(invoke("lm-ppl", "--json", "-m", d / "lower.lm", "--lower", d / "test.txt"))
    assert auto.stdout == explicit.stdout
    # the same text already lower-cased scores the same
    (d / "test_lc.txt").write_bytes(TEST.decode().lower().encode())
    lc = ok(invoke("lm-ppl", "--json", "-m", d / "lower.lm", d / "test_lc.txt"))
    assert json.loads(lc.stdout)["total"]["ppl"] == json.loads(auto.stdout)["total"]["ppl"]


@pytest.mark.parametrize("prog,model,flag", [
    ("lm-ppl", "words.lm", "--chars"),
    ("lm-ppl", "words.lm", "--lower"),
    ("lm-ppl", "chars.lm", "--lower"),
    ("lm-score", "words.lm", "--chars"),
    ("lm-score", "lower.lm", "--chars"),
])
def test_contradicting_flags_are_refused(d, prog, model, flag):
    msg = one_error(invoke(prog, "-m", d / model, flag, d / "test.txt"), prog, 2)
    assert flag in msg and model in msg


def test_arpa_records_nothing_and_reads_words(d):
    arpa = d / "chars.arpa"
    ok(invoke("lm-train", "-q", "--arpa", d / "chars.counts", "-o", arpa))
    # as today: words unless --chars, and --chars is not refused
    as_words = json.loads(ok(invoke("lm-ppl", "--json", "-m", arpa, d / "test.txt")).stdout)["total"]
    as_chars = json.loads(ok(invoke("lm-ppl", "--json", "-m", arpa, "--chars", d / "test.txt")).stdout)["total"]
    assert as_words["oovs"] > 0.9 * as_words["words"] and as_chars["oovs"] == 0
    # in a mixture it reads text as the model that records its kind
    mix = ok(invoke("lm-ppl", "--json", "-m", d / "chars.lm", "-m", arpa, d / "test.txt"))
    assert json.loads(mix.stdout)["total"]["oovs"] == 0


@pytest.mark.parametrize("prog", ["lm-ppl", "lm-score"])
@pytest.mark.parametrize("a,b", [("chars.lm", "words.lm"), ("words.lm", "lower.lm"), ("chars.lm", "lchars.lm")])
def test_mixtures_of_text_kinds_are_refused(d, prog, a, b):
    msg = one_error(invoke(prog, "-m", d / a, "-m", d / b, d / "test.txt"), prog, 1)
    assert a in msg and b in msg and "cannot be mixed" in msg


def test_gen_reads_prefix_and_history_as_the_model(d):
    auto = ok(invoke("lm-gen", "-m", d / "chars.lm", "-s", "4", "--seed", "3", "--prefix", "First "))
    explicit = ok(invoke("lm-gen", "-m", d / "chars.lm", "-s", "4", "--seed", "3", "--prefix", "First ", "--chars"))
    assert auto.stdout == explicit.stdout
    assert all(line.startswith("First ") for line in auto.stdout.splitlines())
    # a lower-cased model: the history is lower-cased as its text was
    upper = ok(invoke("lm-gen", "-m", d / "lower.lm", "--next", "FIRST CITIZEN:", "--top", "5"))
    lower = ok(invoke("lm-gen", "-m", d / "lower.lm", "--next", "first citizen:", "--top", "5"))
    assert upper.stdout == lower.stdout and "warning" not in upper.stderr
    assert "--no-chars" in one_error(invoke("lm-gen", "-m", d / "chars.lm", "--no-chars", "-s", "1"), "lm-gen", 2)
    assert "--chars" in one_error(invoke("lm-gen", "-m", d / "words.lm", "--chars", "-s", "1"), "lm-gen", 2)


def test_ffnn_records_its_text_kind(d, tmp_path):
    out = tmp_path / "f.lm"
    ok(invoke("lm-train", "--method", "ffnn", "-q", "--chars", "--epochs", "1", "--dim", "4", "--hidden", "4",
              "--context", "2", d / "train.txt", "-o", out))
    assert _header(out)["text"] == {"chars": True, "lower": False}
    auto = ok(invoke("lm-ppl", "--json", "-m", out, d / "test.txt"))
    assert auto.stdout == ok(invoke("lm-ppl", "--json", "-m", out, "--chars", d / "test.txt")).stdout
    msg = one_error(invoke("lm-ppl", "-m", out, "-m", d / "words.lm", d / "test.txt"), "lm-ppl", 1)
    assert "cannot be mixed" in msg


def test_api_reads_text_as_the_model(d):
    import lmtools.api as lm

    m = lm.Model(str(d / "chars.lm"))
    assert m.text == {"chars": True, "lower": False}
    line = TEST.splitlines()[0].decode()
    scored = ok(invoke("lm-score", "-m", d / "chars.lm", input=(line + "\n").encode())).stdout
    assert abs(m.score(line) - float(scored.split("\t")[0])) < 1e-4
    ppl = json.loads(ok(invoke("lm-ppl", "--json", "-m", d / "chars.lm", d / "test.txt")).stdout)["total"]["ppl"]
    assert m.perplexity_of_file(str(d / "test.txt"))["ppl"] == pytest.approx(ppl, rel=1e-9)


# ----------------------------------------------------------------------------------------------
# lm-merge: shards counted alike, or refused naming two of them


@pytest.mark.parametrize("flags,needle", [
    (["--chars"], "--chars"),
    (["--lower"], "--lower"),
    (["--vocab-size", "50"], "--vocab-size"),
    (["--min-count", "2"], "--min-count"),
    (["--vocab", "VOCAB"], "--vocab"),
])
def test_merge_refuses_shards_counted_differently(d, tmp_path, flags, needle):
    (tmp_path / "v.txt").write_text("the and of to I\n")
    flags = [str(tmp_path / "v.txt") if f == "VOCAB" else f for f in flags]
    ok(invoke("lm-count", "-n", "3", d / "shard2.txt", "-o", tmp_path / "plain.lm"))
    ok(invoke("lm-count", "-n", "3", *flags, d / "shard2.txt", "-o", tmp_path / "odd.lm"))
    out = tmp_path / "m.lm"
    msg = one_error(invoke("lm-merge", tmp_path / "plain.lm", tmp_path / "odd.lm", "-o", out), "lm-merge", 1)
    assert needle in msg and "plain.lm" in msg and "odd.lm" in msg
    assert not out.exists()


def test_merge_of_shards_with_their_own_vocabularies_warns(d, tmp_path):
    for i, name in enumerate(("train.txt", "shard2.txt")):
        ok(invoke("lm-count", "-n", "2", "--min-count", "2", d / name, "-o", tmp_path / f"s{i}.lm"))
    r = ok(invoke("lm-merge", tmp_path / "s0.lm", tmp_path / "s1.lm", "-o", tmp_path / "m.lm"))
    assert "lm-merge: warning:" in r.stderr and "--min-count" in r.stderr
    r = ok(invoke("lm-merge", d / "words.counts", d / "words.counts", "-o", tmp_path / "m2.lm"))
    assert r.stderr == ""


def test_merge_of_different_closed_vocabularies_is_refused(d, tmp_path):
    (tmp_path / "v1.txt").write_text("the and of\n")
    (tmp_path / "v2.txt").write_text("the and to\n")
    for i in (1, 2):
        ok(invoke("lm-count", "-n", "2", "--vocab", tmp_path / f"v{i}.txt", d / "shard2.txt",
                  "-o", tmp_path / f"s{i}.lm"))
    msg = one_error(invoke("lm-merge", tmp_path / "s1.lm", tmp_path / "s2.lm"), "lm-merge", 1)
    assert "different --vocab" in msg


def test_merged_chars_shards_keep_the_kind(d, tmp_path):
    ok(invoke("lm-count", "-n", "3", "--chars", d / "shard2.txt", "-o", tmp_path / "s2.lm"))
    ok(invoke("lm-merge", d / "chars.counts", tmp_path / "s2.lm", "-o", tmp_path / "m.lm"))
    assert _header(tmp_path / "m.lm")["text"] == {"chars": True, "lower": False}
    # merging the merged file again still checks (the options travel in the provenance)
    ok(invoke("lm-merge", tmp_path / "m.lm", tmp_path / "s2.lm", "-o", tmp_path / "m2.lm"))
    msg = one_error(invoke("lm-merge", tmp_path / "m.lm", d / "words.counts"), "lm-merge", 1)
    assert "m.lm" in msg and "words.counts" in msg
    auto = ok(invoke("lm-ppl", "--json", "-m", tmp_path / "m.lm", d / "test.txt"))
    assert json.loads(auto.stdout)["total"]["oovs"] == 0
