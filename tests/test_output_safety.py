"""-o and signals, through real processes: only a regular file (or a new path) is replaced, atomically;
a device, fifo or terminal is written in place or refused; an output that is an input is refused before
the work; SIGINT, SIGTERM and SIGHUP end a program with 128 + the signal, no traceback, no temp file."""

import glob
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT, SHAKESPEARE, run_prog

MODULES = {"lm-count": "count", "lm-train": "train", "lm-merge": "merge"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A few kilobytes of text: lm-count counts it in plain Python (no numba), in a fraction of a second."""
    path = tmp_path_factory.mktemp("small") / "small.txt"
    path.write_bytes(SHAKESPEARE.read_bytes()[:20000])
    return path


@pytest.fixture(scope="module")
def small_model(small):
    r = run_prog("lm-count", "-n", "3", small)
    assert r.returncode == 0
    return r.stdout


def _one_error_line(r, *needles) -> str:
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("lm-") and ": error: " in err
    assert ".part" not in err  # the user's path, never the temporary file's
    for needle in needles:
        assert needle in err, err
    return err


def _no_temp_files(directory) -> None:
    assert [p for p in os.listdir(directory) if p.endswith(".part")] == []


def _popen(prog, *args, **kw):
    env = dict(os.environ)
    env.pop("LMTOOLS_DEBUG", None)
    env.update(kw.pop("env", {}))
    return subprocess.Popen([sys.executable, "-m", f"lmtools.cli.{MODULES[prog]}", *map(str, args)],
                            stderr=subprocess.PIPE, env=env, cwd=kw.pop("cwd", None), **kw)


# ----------------------------------------------------------------------------------------------
# Devices, fifos, symlinks: written in place or through the link, never renamed over


def test_char_devices_are_written_in_place(tmp_path, small):
    null, full = tmp_path / "null", tmp_path / "full"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    r = run_prog("lm-count", "-n", "3", small, "-o", null)
    assert r.returncode == 0 and r.stderr == b""
    # a full device: an error (exit 1), not a silent success
    err = _one_error_line(run_prog("lm-count", "-n", "3", small, "-o", full), str(full), "No space left")
    assert "free some disk space" in err
    for dev, minor in ((null, 3), (full, 7)):
        st = os.lstat(dev)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, minor)  # still the device
    _no_temp_files(tmp_path)


def test_terminal_device_refused_for_a_model(tmp_path, small):
    master, slave = os.openpty()
    try:
        tty = tmp_path / "tty"  # the pseudo-terminal's device, made here rather than named under /dev
        os.mknod(tty, stat.S_IFCHR | 0o600, os.fstat(slave).st_rdev)
        _one_error_line(run_prog("lm-count", "-n", "3", small, "-o", tty), "terminal")
        assert stat.S_ISCHR(os.lstat(tty).st_mode)
    finally:
        os.close(master)
        os.close(slave)


def test_fifo_with_a_reader(tmp_path, small, small_model):
    fifo = tmp_path / "f.lm"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = run_prog("lm-count", "-n", "3", small, "-o", fifo)
    reader.join(30)
    assert r.returncode == 0, r.stderr
    assert not reader.is_alive() and got == [small_model]  # the reader got the model, and its end
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _no_temp_files(tmp_path)
    # the program's own standard output by name (as /dev/stdout is), here a pipe: written in place
    r = run_prog("lm-count", "-n", "3", small, "-o", "/proc/self/fd/1")
    assert r.returncode == 0 and r.stdout == small_model, r.stderr


def test_symlink_target_replaced_link_and_mode_kept(tmp_path, small, small_model):
    real = tmp_path / "real.lm"
    real.write_bytes(b"old contents\n")
    os.chmod(real, 0o640)
    link = tmp_path / "link.lm"
    link.symlink_to(real.name)
    new = tmp_path / "new.lm"
    r = run_prog("lm-count", "-n", "3", small, "-o", link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == "real.lm"
    assert real.read_bytes() == small_model
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640  # the replaced file keeps its mode
    # a new file gets the permissions of any new file (the umask's)
    r = subprocess.run(["sh", "-c", f'umask 027; exec "$0" -m lmtools.cli.count -n 3 "{small}" -o "{new}"',
                        sys.executable], capture_output=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o640 and new.read_bytes() == small_model
    _no_temp_files(tmp_path)


# ----------------------------------------------------------------------------------------------
# Refused, before the work: an input as output, a missing directory, a directory, ''


def test_output_that_is_an_input_is_refused(tmp_path, small, small_model):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(small.read_bytes())
    before = corpus.read_bytes()
    hard = tmp_path / "hard.txt"
    os.link(corpus, hard)
    _one_error_line(run_prog("lm-count", "-n", "3", corpus, "-o", corpus), "corpus.txt", "input")
    _one_error_line(run_prog("lm-count", "-n", "3", corpus, "-o", hard), "hard.txt")  # a hard link
    assert corpus.read_bytes() == before and hard.read_bytes() == before
    # a counts file as lm-merge's output, through a symlink
    counts = tmp_path / "a.lm"
    counts.write_bytes(small_model)
    (tmp_path / "alias.lm").symlink_to(counts.name)
    _one_error_line(run_prog("lm-merge", counts, "-o", tmp_path / "alias.lm"), "alias.lm", "a.lm")
    assert counts.read_bytes() == small_model and (tmp_path / "alias.lm").is_symlink()
    _no_temp_files(tmp_path)


def test_stdin_as_output_is_refused(tmp_path, small):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(small.read_bytes())
    before = corpus.read_bytes()
    with open(corpus, "rb") as stdin:
        r = subprocess.run([sys.executable, "-m", "lmtools.cli.count", "-n", "3", "-o", str(corpus)],
                           stdin=stdin, capture_output=True)
    _one_error_line(r, "corpus.txt", "stdin")
    assert corpus.read_bytes() == before


def test_missing_directory_refused_before_the_work(tmp_path):
    # Without the early check, this training would run for minutes before failing on its output.
    missing = tmp_path / "no" / "such" / "dir" / "f.lm"
    t = time.time()
    r = run_prog("lm-train", "--method", "ffnn", "--epochs", "50", "--hidden", "200", SHAKESPEARE, "-o", missing)
    took = time.time() - t
    _one_error_line(r, str(missing), "does not exist")
    assert took < 30  # refused at start-up (about a second), not after the training
    assert not (tmp_path / "no").exists()


def test_directory_and_empty_name_refused(tmp_path, small):
    _one_error_line(run_prog("lm-count", "-n", "3", small, "-o", tmp_path), str(tmp_path), "directory")
    _one_error_line(run_prog("lm-count", "-n", "3", small, "-o", ""), "empty file name")
    assert list(tmp_path.iterdir()) == []


def test_closed_standard_streams(tmp_path, small):
    """Started with stdout or stdin closed (`>&-`, `<&-`): one error line, not an internal error; and
    with stderr closed, the model still goes to its file (not into descriptor 2)."""
    def sh(redirect, *args):
        return subprocess.run(["sh", "-c", f'exec "$0" -m lmtools.cli.count "$@" {redirect}', sys.executable,
                               *map(str, args)], capture_output=True, cwd=ROOT)

    _one_error_line(sh(">&-", "-n", "3", small), "standard output is closed", "-o FILE")
    _one_error_line(sh("<&-", "-n", "3", "-o", tmp_path / "x.lm"), "standard input is closed")
    r = sh("2>&-", "-n", "3", small, "-o", tmp_path / "y.lm")
    assert r.returncode == 0 and (tmp_path / "y.lm").read_bytes()[:14] == b"\xadlmtools-model"
    assert not (tmp_path / "x.lm").exists()


# ----------------------------------------------------------------------------------------------
# Signals


def _wait_blocked_in_body(p, timeout=60) -> None:
    """Wait until the program sleeps with numpy loaded: in its body, waiting for more of its stdin."""
    deadline = time.time() + timeout
    settled = 0
    while time.time() < deadline and settled < 3:
        try:
            state = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0]
            maps = open(f"/proc/{p.pid}/maps").read()
        except OSError:
            return
        settled = settled + 1 if state == "S" and "_multiarray_umath" in maps else 0
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_while_reading(tmp_path, sig):
    out = tmp_path / "x.lm"
    p = _popen("lm-count", "-n", "3", "-o", out, stdin=subprocess.PIPE)
    p.stdin.write(SHAKESPEARE.read_bytes()[:200000])  # past the small-input path: the numba counter
    p.stdin.flush()
    _wait_blocked_in_body(p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    p.stdin.close()
    assert p.returncode == 128 + sig, err
    assert b"Traceback" not in err and err.strip() == b""
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def counts4(tmp_path_factory):
    path = tmp_path_factory.mktemp("counts") / "c4.lm"
    assert run_prog("lm-count", "-n", "4", SHAKESPEARE, "-o", path).returncode == 0
    return path


def test_sigterm_while_writing_the_temporary_file(tmp_path, counts4):
    out = tmp_path / "x.arpa.gz"
    p = _popen("lm-train", counts4, "--arpa", "-o", out, cwd=tmp_path)
    deadline = time.time() + 120
    while p.poll() is None and time.time() < deadline:
        if glob.glob(str(tmp_path / ".x.arpa.gz.*.part")):
            p.send_signal(signal.SIGTERM)
            break
        time.sleep(0.005)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err  # the ARPA text is still being written when the signal lands
    assert b"Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file


SWALLOWED = r"""
import ctypes, os, signal
import click
from lmtools.cli import common

@common.command("lm-test")
@click.argument("path")
def main(path):
    target = common.output_target(path)
    # A signal whose exception Python cannot pass on: raised inside a ctypes callback (as during numba's
    # compilation), it would be printed as "Exception ignored" and the program would carry on.
    @ctypes.CFUNCTYPE(None)
    def callback():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    callback()
    with target.open() as out:
        out.write(b"finished\n")
    print("carried on")

main()
"""

SWALLOWED_BY_CODE = r"""
import os, signal
import click
from lmtools.cli import common

@common.command("lm-test")
@click.argument("path")
def main(path):
    target = common.output_target(path)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
    except BaseException:
        pass  # a library that swallows everything
    with target.open() as out:
        out.write(b"finished\n")
    print("carried on")

main()
"""


@pytest.mark.parametrize("script,status", [(SWALLOWED, 130), (SWALLOWED_BY_CODE, 143)])
def test_swallowed_signal_still_stops_the_program(tmp_path, script, status):
    out = tmp_path / "out.txt"
    out.write_bytes(b"previous\n")
    r = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, cwd=ROOT, timeout=60)
    assert r.returncode == status, r.stderr
    assert r.stdout == b"" and b"Traceback" not in r.stderr and b"Exception ignored" not in r.stderr
    assert out.read_bytes() == b"previous\n"  # not replaced
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.slow
def test_ctrl_c_during_the_first_kernel_compilation(tmp_path):
    """Ctrl-C while numba compiles the counting kernels (an empty cache) ends the program with 130."""
    cache = tmp_path / "cache"
    cache.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    out = work / "x.lm"
    p = _popen("lm-count", "-n", "3", SHAKESPEARE, "-o", out, env={"NUMBA_CACHE_DIR": str(cache)},
               stdout=subprocess.DEVNULL)
    deadline = time.time() + 300
    while p.poll() is None and time.time() < deadline:
        if any(name.endswith(".nbi") for _, _, files in os.walk(cache) for name in files):
            break  # the first kernel is compiled and cached: the next ones are being compiled
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    t = time.time()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert time.time() - t < 15  # not only once LLVM is done with the kernel it is compiling
    assert b"Traceback" not in err and b"Exception ignored" not in err
    assert list(work.iterdir()) == []
