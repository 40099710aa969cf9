"""lm-train --dask: estimation on a Dask cluster gives lm-train's model, byte for byte, from a count-shard
directory (each worker reads its partition) or a counts file (split by the client); a worker killed
mid-job changes nothing; the client interrupted leaves no output and no temporary directory.

The single-process lm-train is the reference: its estimation is checked against plain-Python
references elsewhere (tests/test_smoothing*.py, test_partitioned.py), and the partitioned stages
the cluster runs are bit-identical to it, so the files must be equal.

One LocalCluster of 2 worker processes for the module (tests.test_dask_count's fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lmtools.errors import LmError
from tests.conftest import PTB, SHAKESPEARE, error_line, run_prog
from tests.inprocess import invoke, keep_signal_handlers  # noqa: F401 (an autouse fixture)
from tests.test_dask_count import conn  # noqa: F401 (the module's LocalCluster)

TEXT = SHAKESPEARE.read_bytes()


def spill_dirs(path) -> list:
    return [f for f in os.listdir(path) if f.startswith("lmtools-spill-") or f.endswith(".part")]


@pytest.fixture(scope="module")
def inputs(conn, tmp_path_factory):  # noqa: F811
    """150 KB of Tiny Shakespeare counted to order 4: as 3 count shards, and as one counts file."""
    d = tmp_path_factory.mktemp("dtrain")
    text = d / "ts.txt"
    text.write_bytes(TEXT[:150_000])
    shards, counts = d / "ts.d", d / "ts.counts"
    r = invoke("lm-count", "-q", "-n", "4", "--dask", conn.address, "--shards", "--partitions", "3",
               "-o", shards, text)
    assert r.exit_code == 0, r.stderr
    assert invoke("lm-count", "-q", "-n", "4", "-o", counts, text).exit_code == 0
    return {"shards": shards, "counts": counts, "dir": d}


def train(*args) -> bytes:
    r = invoke("lm-train", "-q", *args, "-o", "-")
    assert r.exit_code == 0, (r.stderr, r.exception)
    return r.stdout_bytes


def assert_same_model(a: bytes, b: bytes, tmp_path) -> None:
    """Equal model files, and (for the message of a failure) their arrays."""
    if a == b:
        return
    from lmtools.io.models import load_model

    (tmp_path / "a.lm").write_bytes(a)
    (tmp_path / "b.lm").write_bytes(b)
    ma, mb = load_model(str(tmp_path / "a.lm")), load_model(str(tmp_path / "b.lm"))
    for n in range(ma.order):
        assert np.array_equal(ma.ngrams[n], mb.ngrams[n]), n
        assert np.array_equal(ma.logprob[n], mb.logprob[n]), n
        assert np.array_equal(ma.backoff[n], mb.backoff[n]), n
    assert a == b  # the arrays are equal: the header differs


@pytest.mark.parametrize("args", [[], ["--method", "kn-modified", "--kenlm-compat"], ["--method", "wb"],
                                  ["--method", "stupid"], ["-n", "2", "--method", "katz"]])
def test_shards_give_lm_trains_model(conn, inputs, tmp_path, args):  # noqa: F811
    a = train("--dask", conn.address, *args, inputs["shards"])
    b = train(*args, inputs["shards"])
    assert len(a) > 100_000
    assert_same_model(a, b, tmp_path)
    assert spill_dirs(inputs["dir"]) == [] and spill_dirs(tmp_path) == []


@pytest.mark.slow
def test_shards_and_counts_file_give_the_same_arrays(conn, inputs, tmp_path):  # noqa: F811
    """A shard directory and lm-count's file of the same text: the same model (the header names the input)."""
    from lmtools.io.models import load_model

    for src, name in ((inputs["shards"], "s.lm"), (inputs["counts"], "c.lm")):
        r = invoke("lm-train", "-q", "--dask", conn.address, "--prune", "0,0,1", src, "-o", tmp_path / name)
        assert r.exit_code == 0, r.stderr
    plain = tmp_path / "p.lm"
    assert invoke("lm-train", "-q", "--prune", "0,0,1", inputs["counts"], "-o", plain).exit_code == 0
    ref = load_model(str(plain))
    for name in ("s.lm", "c.lm"):
        m = load_model(str(tmp_path / name))
        assert m.sizes() == ref.sizes()
        for n in range(ref.order):
            assert np.array_equal(m.ngrams[n], ref.ngrams[n]) and np.array_equal(m.logprob[n], ref.logprob[n])
            assert np.array_equal(m.backoff[n], ref.backoff[n])
    assert spill_dirs(tmp_path) == []


def test_counts_file_split_by_the_client_arpa(conn, inputs, tmp_path):  # noqa: F811
    a = train("--dask", conn.address, "--arpa", "-n", "3", inputs["counts"])
    b = train("--arpa", "-n", "3", inputs["counts"])
    assert a == b and b"\\data\\" in a[:20] and b"\\3-grams:" in a


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_retried_and_exact(conn, inputs):  # noqa: F811
    from lmtools.cli import budget_options
    from lmtools.cluster_train import estimate_job, shard_unigrams
    from lmtools.io.models import load_model
    from lmtools.ngram.smoothing import smooth

    client = conn.client
    pids = client.run(os.getpid)
    killed = []

    def kill_one(what):
        if not killed:  # the first partition's statistics are in: the other tasks are queued or running
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    uni, N, P = shard_unigrams(str(inputs["shards"]), None)
    with budget_options.spill_space(str(inputs["dir"])) as space:
        model = estimate_job(conn, [str(inputs["shards"])] * P, uni, space, on_step=kill_one)
        got = [[a.load() if hasattr(a, "load") else a for a in arrays]
               for arrays in (model.ngrams, model.logprob, model.backoff)]
    ref = smooth(load_model(str(inputs["counts"])), "kn-modified")
    assert killed
    for k, arrays in enumerate((ref.ngrams, ref.logprob, ref.backoff)):
        for n in range(N):
            assert np.array_equal(got[k][n], arrays[n]), (k, n)
    assert spill_dirs(inputs["dir"]) == []
    client.wait_for_workers(2, timeout=60)
    assert killed[0] not in client.run(os.getpid).values()


@pytest.mark.parametrize("args,needle", [
    (["--dask", "local:0", "c.d"], "local:N"),
    (["--dask", "local:2"], "stdin"),
    (["--dask", "local:2", "a", "b"], "2 inputs"),
    (["--dask", "local:2", "--vocab", "v.txt", "c.d"], "--vocab"),
    (["--dask", "local:2", "--from-arpa", "x.arpa"], "--from-arpa"),
    (["--dask", "local:2", "--method", "ffnn", "x.txt"], "--dask"),
])
def test_usage_errors(args, needle):
    r = invoke("lm-train", *args, "-o", os.devnull)
    assert needle in error_line(r, "lm-train", 2)


def test_missing_dask_is_one_usage_line(inputs, tmp_path):
    (tmp_path / "dask").mkdir()
    (tmp_path / "dask" / "__init__.py").write_text("raise ImportError('No module named dask')\n")
    r = run_prog("lm-train", "--dask", "local:2", inputs["shards"], "-o", tmp_path / "m.lm",
                 env={"PYTHONPATH": str(tmp_path)})
    assert error_line(r, "lm-train", 2) == "lm-train: error: --dask needs dask and distributed; pip install 'lmtools[dask]'"
    assert not (tmp_path / "m.lm").exists()


def test_data_errors(conn, inputs, tmp_path):  # noqa: F811
    (tmp_path / "plain").mkdir()
    r = invoke("lm-train", "-q", "--dask", conn.address, tmp_path / "plain", "-o", tmp_path / "m.lm")
    assert "not a directory of count shards" in error_line(r, "lm-train", 1)
    r = invoke("lm-train", "-q", "--dask", conn.address, "-n", "7", inputs["shards"], "-o", tmp_path / "m.lm")
    assert "order 7 is larger than the counts' order 4" in error_line(r, "lm-train", 1)
    assert sorted(os.listdir(tmp_path)) == ["plain"]
    with pytest.raises(LmError, match="order 5 is larger"):
        from lmtools.cluster_train import shard_unigrams

        shard_unigrams(str(inputs["shards"]), 5)


def test_a_corrupt_shard_is_named(conn, inputs, tmp_path):  # noqa: F811
    import shutil

    bad = tmp_path / "bad.d"
    shutil.copytree(inputs["shards"], bad)
    data = bytearray((bad / "part-00001.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside a member: its CRC-32 no longer matches
    (bad / "part-00001.npz").write_bytes(bytes(data))
    r = invoke("lm-train", "-q", "--dask", conn.address, bad, "-o", tmp_path / "m.lm")
    line = error_line(r, "lm-train", 1)
    assert f"{bad}/part-00001.npz: corrupt count shard" in line, line
    assert sorted(os.listdir(tmp_path)) == ["bad.d"]  # no output, no temporary directory


@pytest.mark.slow
@pytest.mark.parametrize("shards", [False, True], ids=["one-file", "model-shards"])
def test_ctrl_c_leaves_no_output_and_no_temporary_directory(conn, tmp_path, shards):  # noqa: F811
    big = tmp_path / "big.txt"
    big.write_bytes(TEXT * 2)
    counts = tmp_path / "big.d"
    assert run_prog("lm-count", "-q", "-n", "5", "--dask", conn.address, "--shards", "--partitions", "8",
                    "-o", counts, big).returncode == 0
    env = dict(os.environ)
    env.pop("LMTOOLS_DEBUG", None)
    statuses = []
    for delay in (0.0, 1.0, 2.5):  # while pass 1, pass 2 or the merge runs
        out = tmp_path / f"m{delay}.{'d' if shards else 'lm'}"
        proc = subprocess.Popen([sys.executable, "-m", "lmtools.cli.train", "--dask", conn.address, str(counts),
                                 *(["--shards"] if shards else []), "-o", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stderr.readline().startswith(b"lm-train: dashboard at")
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        statuses.append(proc.returncode)
        # 130: interrupted, no output. 0: done before the signal. -SIGINT: the signal came after the program's
        # body had ended (its handlers already put back, the model written and renamed in place): then the
        # output, if any, is whole. In no case a partial output or a temporary file.
        assert proc.returncode in (130, 0, -signal.SIGINT), err
        if proc.returncode == 130:
            assert not out.exists()
        elif out.exists():
            from lmtools.io.models import load_model

            model = load_model(str(out))
            assert model.order == 5
        assert spill_dirs(tmp_path) == [] and [f for f in os.listdir(tmp_path) if f.startswith(".")] == []
    assert 130 in statuses


@pytest.mark.slow
def test_ptb_5gram_equals_lm_train(conn, tmp_path):  # noqa: F811
    shards = tmp_path / "ptb.d"
    r = run_prog("lm-count", "-q", "-n", "5", "--dask", conn.address, "--shards", "-o", shards,
                 PTB / "train.txt")
    assert r.returncode == 0, r.stderr
    a = run_prog("lm-train", "-q", "--dask", conn.address, shards, "-o", tmp_path / "a.lm")
    b = run_prog("lm-train", "-q", shards, "-o", tmp_path / "b.lm")
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    assert (tmp_path / "a.lm").read_bytes() == (tmp_path / "b.lm").read_bytes()
    assert spill_dirs(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# Pass 2 reads the suffix rows pass 1 found (and searches again when they are missing or cut short)


def test_pass_two_reads_the_suffix_rows_of_pass_one(inputs, tmp_path):  # noqa: F811
    from lmtools import cluster_train as ct
    from lmtools.io.countshards import read_meta
    from lmtools.ngram.partitioned import combine, plan

    uni, N, P = ct.shard_unigrams(str(inputs["shards"]), None)
    spec = plan("kn-modified", N)
    results = {}
    for p in range(P):
        paths = {n: str(tmp_path / f"suf-{p}-{n}") for n in range(3, N + 1)}
        st = ct.stats_task(str(inputs["shards"]), p, spec, uni.size, paths)
        part = ct.load_shard(str(inputs["shards"]), p, N)
        for n, path in paths.items():  # the rows a search finds, written whole
            want = ct.partition_index(part).suf[n]
            assert np.array_equal(np.fromfile(path, np.int32), want)
        results[p] = (st, paths, part)
    glob = combine(uni, [ct.sum_stats([r[0] for r in results.values()])], spec)
    for p, (_, paths, part) in results.items():
        kept = {(n, w): str(tmp_path / f"out-{p}-{n}-{w}") for n in range(2, N + 1) for w in ct.RESULT_PARTS}
        searched = {k: v + ".searched" for k, v in kept.items()}
        a = ct.estimate_task(str(inputs["shards"]), p, glob, kept, paths)
        # a suffix file cut short: pass 2 searches for the rows itself, to the same result
        path3 = paths[3]
        data = open(path3, "rb").read()
        open(path3, "wb").write(data[:-4])
        assert ct._read_suffixes(part, paths) is None
        b = ct.estimate_task(str(inputs["shards"]), p, glob, searched, paths)
        assert a == b
        for key in a["shapes"]:
            assert open(kept[key], "rb").read() == open(searched[key], "rb").read(), key
    assert read_meta(str(inputs["shards"]))["partitions"] == P


def test_task_log_names_every_stage(conn, inputs, tmp_path, monkeypatch):  # noqa: F811
    log = tmp_path / "tasks.jsonl"
    monkeypatch.setenv("LMTOOLS_DASK_TASKS", str(log))
    train("--dask", conn.address, inputs["shards"])
    import json

    tasks = [json.loads(line) for line in log.read_text().splitlines()]
    groups = {"-".join(t["key"].split("-")[:3]) for t in tasks}
    assert {"lm-train-stats", "lm-train-estimate"} <= groups
    est = [t for t in tasks if t["key"].startswith("lm-train-estimate-")]
    assert len(est) == 3 and all(t["seconds"]["compute"] > 0 and t["worker"].startswith("tcp://") for t in est)
    assert spill_dirs(inputs["dir"]) == [] and spill_dirs(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# Model shards (--shards): the partitions as the workers wrote them, opened as the one model


@pytest.mark.parametrize("args", [[], ["--method", "wb"], ["--method", "stupid"], ["-n", "2", "--method", "katz"],
                                  ["--prune", "0,1,1", "--kenlm-compat"]])
def test_model_shards_open_as_lm_trains_model(conn, inputs, tmp_path, args):  # noqa: F811
    from lmtools.io.models import load_model
    from lmtools.io.modelshards import is_model_shard_dir

    out = tmp_path / "m.d"
    r = invoke("lm-train", "-q", "--dask", conn.address, "--shards", *args, "-o", out, inputs["shards"])
    assert r.exit_code == 0, r.stderr
    assert is_model_shard_dir(str(out)) and "meta.json" in os.listdir(out)
    assert len([f for f in os.listdir(out) if f.endswith(".bin")]) >= 3  # one partition's arrays at least
    one = tmp_path / "one.lm"
    (one).write_bytes(train(*args, inputs["shards"]))
    a, b = load_model(str(out)), load_model(str(one))
    assert a.method == b.method and a.order == b.order and a.vocab == b.vocab and a.info == b.info
    for n in range(a.order):
        assert np.array_equal(a.ngrams[n], b.ngrams[n]), n
        assert np.array_equal(a.logprob[n], b.logprob[n]), n
        assert np.array_equal(a.backoff[n], b.backoff[n]), n
    text = inputs["dir"] / "ts.txt"
    for prog, extra in (("lm-ppl", []), ("lm-score", []), ("lm-gen", ["-s", "5", "--seed", "3"])):
        files = [] if prog == "lm-gen" else [text]
        ra = invoke(prog, "-m", out, *extra, *files)
        rb = invoke(prog, "-m", one, *extra, *files)
        # (lm-ppl refuses stupid backoff's scores, from either)
        assert ra.exit_code == rb.exit_code and ra.stdout_bytes == rb.stdout_bytes, (prog, ra.stderr, rb.stderr)
        assert ra.exit_code == 0 or "stupid" in args
    assert spill_dirs(inputs["dir"]) == [] and spill_dirs(tmp_path) == []
    assert [f for f in os.listdir(tmp_path) if f.endswith((".part", ".old"))] == []


def test_model_shards_usage_and_damage(conn, inputs, tmp_path):  # noqa: F811
    shards = inputs["shards"]
    for args, needle in ((["--shards", shards, "-o", tmp_path / "x.d"], "add --dask"),
                         (["--dask", conn.address, "--shards", shards], "name it with -o DIR"),
                         (["--dask", conn.address, "--shards", "--arpa", shards, "-o", tmp_path / "x.d"], "--arpa")):
        assert needle in error_line(invoke("lm-train", *args), "lm-train", 2)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    r = invoke("lm-train", "-q", "--dask", conn.address, "--shards", shards, "-o", tmp_path / "other")
    assert "refusing to replace it" in error_line(r, "lm-train", 1)
    assert os.listdir(tmp_path / "other") == ["notes.txt"]
    out = tmp_path / "m.d"
    assert invoke("lm-train", "-q", "--dask", conn.address, "--shards", shards, "-o", out).exit_code == 0
    text = inputs["dir"] / "ts.txt"
    victim = sorted(f for f in os.listdir(out) if f.endswith("-rows.bin"))[0]
    data = (out / victim).read_bytes()
    (out / victim).write_bytes(data[:-4])
    line = error_line(invoke("lm-ppl", "-m", out, text), "lm-ppl", 1)
    assert victim in line and "cut short" in line
    (out / victim).unlink()
    assert "is missing" in error_line(invoke("lm-ppl", "-m", out, text), "lm-ppl", 1)
    (out / "meta.json").write_text('{"format": "lmtools-model-shards", "version": 1, "order": "x"}')
    assert "corrupt model shards" in error_line(invoke("lm-ppl", "-m", out, text), "lm-ppl", 1)
