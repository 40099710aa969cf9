"""lm-count and lm-info through real processes: the shell contract and bad input."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import SHAKESPEARE, error_line, run_prog


def _one_error_line(r, prog="lm-count", code=1):
    line = error_line(r, prog, code)
    assert b"Traceback" not in r.stderr
    return line


def test_count_pipe_to_info(tmp_path):
    r = run_prog("lm-count", "-n", "3", input=b"a b c\na b\n")
    assert r.returncode == 0 and r.stdout.startswith(b"\xadlmtools-model") and r.stderr == b""
    info = run_prog("lm-info", input=r.stdout)
    assert info.returncode == 0
    facts = dict(line.split("\t", 1) for line in info.stdout.decode().splitlines())
    assert facts["kind"] == "counts" and facts["order"] == "3"
    assert facts["sizes"] == "6 5 4"  # <unk> <s> </s> a b c; <s>a ab bc c</s> b</s>; 3-grams
    assert facts["tokens"] == "7" and facts["sentences"] == "2"
    assert facts["provenance.program"] == "lm-count"
    js = run_prog("lm-info", "--json", input=r.stdout)
    import json

    assert json.loads(js.stdout)["sizes"] == [6, 5, 4]


def test_files_gz_and_atomic_output(tmp_path):
    import gzip

    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(b"x y\n"))
    (tmp_path / "a.txt").write_bytes(b"x\n")
    out = tmp_path / "c.lm"
    r = run_prog("lm-count", "-n", "5", "-o", out, tmp_path / "a.txt", tmp_path / "b.txt.gz")
    assert r.returncode == 0 and r.stdout == b""
    info = run_prog("lm-info", out).stdout.decode()
    assert "sentences\t2" in info
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_same_input_same_bytes():
    a = run_prog("lm-count", "-n", "4", SHAKESPEARE).stdout
    b = run_prog("lm-count", "-n", "4", "-", input=SHAKESPEARE.read_bytes()).stdout
    # provenance names the input, so compare everything after the header's inputs differ: reparse
    from io import BufferedReader, BytesIO

    from lmtools.io.models import load_model

    ca, cb = (load_model(BufferedReader(BytesIO(x))) for x in (a, b))
    assert ca.vocab == cb.vocab and all((x == y).all() for x, y in zip(ca.counts, cb.counts))
    assert a == run_prog("lm-count", "-n", "4", SHAKESPEARE).stdout


def test_empty_input_is_a_valid_model():
    r = run_prog("lm-count", "-n", "3", input=b"")
    assert r.returncode == 0
    info = run_prog("lm-info", input=r.stdout).stdout.decode()
    assert "sizes\t3 0 0" in info and "sentences\t0" in info


@pytest.mark.parametrize("args,needle,code", [
    (["-n", "0"], "order must be 1 to 1000", 2),
    (["-n", "-1"], "order must be 1 to 1000", 2),
    (["--min-count", "0"], "--min-count", 2),
    (["no-such-file.txt"], "no such file", 1),
])
def test_bad_arguments(args, needle, code):
    r = run_prog("lm-count", *args, input=b"a\n")
    assert needle in _one_error_line(r, code=code)


def test_bad_input_bytes():
    assert "invalid UTF-8" in _one_error_line(run_prog("lm-count", input=b"ok\n\xc3\x28 bad\n"))
    assert ":2:" in _one_error_line(run_prog("lm-count", input=b"ok\n\xc3\x28 bad\n"))
    garbage = bytes(range(256)) * 50
    assert "binary data" in _one_error_line(run_prog("lm-count", input=garbage))
    r = run_prog("lm-count", "--encoding-errors=replace", input=b"ok\n\xc3\x28 bad\n")
    assert r.returncode == 0 and b"warning: replaced invalid UTF-8 in 1 lines" in r.stderr


def test_unwritable_output_leaves_nothing(tmp_path):
    target = tmp_path / "missing-dir" / "x.lm"
    assert "cannot write" in _one_error_line(run_prog("lm-count", "-o", target, input=b"a\n"))
    assert not target.parent.exists()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: nothing to check there
            return
        r = run_prog("lm-count", "-o", ro / "x.lm", input=b"a\n")
        _one_error_line(r)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


def test_existing_output_kept_when_run_fails(tmp_path):
    out = tmp_path / "keep.lm"
    out.write_bytes(b"old")
    r = run_prog("lm-count", "-o", out, input=b"\xff\n")
    _one_error_line(r)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.lm"]


def test_info_refuses_truncated_and_foreign(tmp_path):
    good = run_prog("lm-count", input=b"a b\n").stdout
    assert "truncated" in _one_error_line(run_prog("lm-info", input=good[:-5]), "lm-info")
    assert "not an lmtools model" in _one_error_line(run_prog("lm-info", input=b"hello\n"), "lm-info")
    assert "empty input" in _one_error_line(run_prog("lm-info", input=b""), "lm-info")
    (tmp_path / "junk.bin").write_bytes(os.urandom(1000))
    _one_error_line(run_prog("lm-info", tmp_path / "junk.bin"), "lm-info")


def _run_on_pty(args, stdin_bytes=b""):
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "lmtools.cli.count", *args], stdin=subprocess.PIPE,
                         stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    _, err = p.communicate(stdin_bytes, timeout=60)
    out = b""
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    os.close(master)
    return p.returncode, out, err


def test_model_never_written_to_a_terminal():
    code, out, err = _run_on_pty(["-n", "2"], b"a b\n")
    assert code == 1 and out == b""
    assert err.decode().startswith("lm-count: error: refusing to write a binary model to the terminal; use -o")


def _has_imported_numpy(pid: int) -> bool:
    """The program maps numpy's extension only once it is past argument parsing, in its command body."""
    try:
        return "_multiarray_umath" in open(f"/proc/{pid}/maps").read()
    except OSError:
        return True


def test_ctrl_c_leaves_no_partial_file(tmp_path):
    out = tmp_path / "x.lm"
    p = subprocess.Popen([sys.executable, "-m", "lmtools.cli.count", "-o", str(out)], stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdin.write(b"a b c\n" * 1000)
    p.stdin.flush()
    # Wait until the program is blocked reading stdin (past start-up and its signal set-up), so that
    # Ctrl-C lands where a user's would, however slow the machine is.
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            wchan = open(f"/proc/{p.pid}/wchan").read()
            stat = open(f"/proc/{p.pid}/stat").read().split()[2]
        except OSError:
            break
        if stat == "S" and ("pipe" in wchan or wchan in ("", "0")) and _has_imported_numpy(p.pid):
            break
        time.sleep(0.1)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and b"Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_closed_pipe_is_quiet():
    # lm-info --list-vocab | head -1: the reader goes away, the writer ends without a traceback.
    model = run_prog("lm-count", SHAKESPEARE).stdout
    sh = subprocess.run(f"{sys.executable} -m lmtools.cli.info --list-vocab | head -1", shell=True, input=model,
                        capture_output=True)
    assert sh.stdout == b"<unk>\n" and sh.stderr == b""


def test_help_does_not_import_numba():
    code = ("import sys; sys.argv=['lm-count','--help']\n"
            "from lmtools.cli.count import main\n"
            "try:\n main()\nexcept SystemExit: pass\n"
            "assert 'numba' not in sys.modules, 'numba imported'\n"
            "assert 'numpy' not in sys.modules, 'numpy imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert b"--order" in r.stdout


def test_version_and_usage_error():
    r = run_prog("lm-count", "--version")
    assert r.returncode == 0 and r.stdout.startswith(b"lm-count (lmtools) ")
    r = run_prog("lm-count", "--no-such-option")
    assert r.returncode == 2


def test_debug_shows_traceback():
    r = run_prog("lm-count", "--debug", "no-such-file")
    assert r.returncode == 1 and b"Traceback" in r.stderr


def test_huge_single_line(tmp_path):
    """A line of tens of megabytes is one sentence like any other (it is held in memory whole)."""
    words = b" ".join(b"w%d" % (i % 5000) for i in range(3_000_000))  # ~20 MB, one line, no newline
    p = tmp_path / "huge.txt"
    p.write_bytes(words)
    r = run_prog("lm-count", "-n", "2", p)
    assert r.returncode == 0, r.stderr
    facts = dict(line.split("\t", 1) for line in run_prog("lm-info", input=r.stdout).stdout.decode().splitlines())
    assert facts["sentences"] == "1" and facts["tokens"] == str(3_000_001)
    assert facts["vocabulary"] == str(5003)


@pytest.mark.slow  # one of the slowest (durations on 2 cores): kept out of make test's 4 minutes
def test_second_run_does_not_compile(tmp_path):
    """Kernels are cached on disk (numba cache=True): a second process loads them instead of compiling."""
    cache = tmp_path / "cache"
    text = (SHAKESPEARE.read_bytes() * 1)[:300_000]  # above the small-input threshold: the numba path
    env = {"NUMBA_CACHE_DIR": str(cache)}
    assert run_prog("lm-count", "-n", "3", input=text, env=env).returncode == 0
    files = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert any(str(p).endswith(".nbi") for p in files), "no cache index written"
    assert run_prog("lm-count", "-n", "3", input=text, env=env).returncode == 0
    after = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert after == files, "the second run compiled (cache files changed)"


def test_progress_bar_only_on_a_terminal(tmp_path):
    import pty

    p = tmp_path / "in.txt"
    p.write_bytes(SHAKESPEARE.read_bytes())
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lmtools.cli.count", "-o", str(tmp_path / "o.lm"), str(p)],
                            stderr=slave, stdout=subprocess.DEVNULL)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    assert b"sentences" in seen  # the summary line is shown on a terminal ...
    r = run_prog("lm-count", "-o", tmp_path / "o2.lm", p)
    assert r.stderr == b""  # ... and nothing at all when stderr is not a terminal
