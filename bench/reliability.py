#!/usr/bin/env python3
"""The bad-input campaign: every lm-* program given what a careless user, a cron job or a hostile
file would give it, each case checked against the shell contract (see DESIGN.md, "Conventions").

    python bench/reliability.py                 # the whole table (a few minutes on 2 cores)
    python bench/reliability.py --json          # machine-readable results on stdout
    python bench/reliability.py -k output -k signal   # only cases whose name contains a word
    python bench/reliability.py --record        # also write RELIABILITY.md at the repository root

Per case (each in its own temporary directory holding copies of small real models and texts):
- the exit status: 0 success, 1 data error, 2 usage error, 128+N (or killed by N) after signal N,
  141 (or killed by SIGPIPE, or 0) quietly when the reader of stdout goes away;
- an error is exactly one line on stderr, ``lm-x: error: ...``, its last line, that names no temporary
  file and says no "internal error"; never a Python traceback;
- no partial or temporary file is left (no ``*.part`` anywhere, nothing new but the named output);
- no file other than the named output is replaced or modified (bytes, mtime, type of every entry in
  the directory compared before and after; a failed run leaves even the output as it was); device
  nodes, fifos and symlinks named by -o stay what they were;
- bounded time (a timeout per case) and, where the case says so, bounded memory (peak RSS).

Model files are also mutated in bulk (truncations, byte flips in the header and the arrays, compressed
copies, ARPA damage, and models written with correct checksums but impossible contents), several
hundred files checked in one worker process through ``lmtools.io.models.load_model``: each must be
refused with an LmError, or, if accepted, give exactly the scores of the intact model (policy per
mutation); a sample of them also goes through the programs.

The harness is imported by tests/test_bad_input.py (one copy of the code). Exit status: 1 when any
case fails.
"""

from __future__ import annotations

import argparse
import bz2
import datetime
import gzip
import hashlib
import json
import lzma
import os
import random
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "lmtools" / "data" / "tinyshakespeare.txt"
PROGRAMS = ("lm-count", "lm-train", "lm-ppl", "lm-score", "lm-gen", "lm-info", "lm-merge")
MAGIC = b"\xadlmtools-model"
MEM_LIMIT = 4 << 30  # address-space limit of every launched program: a runaway allocation fails, not the machine


def program_path(prog: str) -> str:
    """The installed console script beside this Python (the .venv's bin), else on PATH."""
    here = Path(sys.executable).parent / prog
    if here.exists():
        return str(here)
    found = shutil.which(prog)
    if not found:
        raise SystemExit(f"reliability: {prog} not found beside {sys.executable} nor on PATH")
    return found


# ----------------------------------------------------------------------------------------------
# Cases and results


# Expected exit classes.
OK = "ok"            # 0
USAGE = "usage"      # 2, one error line
DATA = "data"        # 1, one error line
ERROR = "error"      # 1 or 2, one error line
OK_USAGE = "ok|usage"  # a value that may be accepted or refused as a usage error
OK_DATA = "ok|data"
ANY = "any"          # 0, 1 or 2, clean either way
SIGNAL = "signal"    # killed by, or exited 128+, the signal sent
SIGPIPE = "sigpipe"  # 141 / killed by SIGPIPE / 0, and quiet

EXIT_CODES = {OK: {0}, USAGE: {2}, DATA: {1}, ERROR: {1, 2}, OK_USAGE: {0, 2}, OK_DATA: {0, 1}, ANY: {0, 1, 2}}


@dataclass
class Case:
    name: str                      # unique, "category/what"
    prog: str
    argv: list                     # str arguments; bytes for arguments that are not UTF-8
    expect: str
    stdin: object = None           # None (empty), bytes, ("file", name), ("stream", chunks, stall), "closed"
    stdout: object = None          # None (a pipe), ("file", name) opened for writing, "closed"
    output: str | None = None      # the named output: the only entry that may change (on success)
    setup: Callable | None = None  # setup(workdir: Path) before the run: nodes, links, pre-existing output
    check: Callable | None = None  # check(result, workdir) -> list of (failure class, detail)
    head_lines: int | None = None  # read this many stdout lines, then close the pipe (| head -N)
    send: tuple | None = None      # (signal, delay seconds, wait for a *.part first: bool)
    fifo_reader: str | None = None  # a fifo in the work dir read from while the program runs
    timeout: float = 60.0
    max_rss_mb: float | None = None
    env: dict = field(default_factory=dict)
    exit_class: str = "exit-status"  # the failure class of a wrong exit status (e.g. option-ignored)
    nofile: int | None = None      # a lower limit on open files (RLIMIT_NOFILE) for the run

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass
class Result:
    name: str
    category: str
    prog: str
    command: str
    expect: str
    rc: int | None
    seconds: float
    rss_mb: float
    stderr: str
    stdout_bytes: int
    failures: list  # [(class, detail)]
    stdout_head: bytes = b""
    fifo_bytes: bytes = b""

    @property
    def passed(self) -> bool:
        return not self.failures

    def first_stderr_line(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        err = [ln for ln in lines if ": error:" in ln or ln.startswith("Error:")]
        return (err or lines or [""])[0][:300]

    def to_json(self) -> dict:
        return {"name": self.name, "category": self.category, "program": self.prog, "command": self.command,
                "expect": self.expect, "exit": self.rc, "seconds": round(self.seconds, 2),
                "rss_mb": round(self.rss_mb, 1), "passed": self.passed,
                "failures": [{"class": c, "detail": d} for c, d in self.failures],
                "stderr": self.stderr[-2000:]}


# ----------------------------------------------------------------------------------------------
# The work directory: snapshot before, compare after


def snapshot(root: Path) -> dict:
    """path (relative) -> what identifies the entry: type and, for a regular file, bytes and mtime."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha1()
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                snap[rel] = ("file", st.st_size, st.st_mtime_ns, h.hexdigest(), st.st_ino)
            elif stat.S_ISLNK(st.st_mode):
                snap[rel] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                snap[rel] = ("dir",)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                snap[rel] = ("device", st.st_rdev)
            elif stat.S_ISFIFO(st.st_mode):
                snap[rel] = ("fifo",)
            else:
                snap[rel] = ("other", stat.S_IFMT(st.st_mode))
    return snap


def compare(before: dict, after: dict, allowed: set, typed: set) -> list:
    """Failures for entries that changed; ``allowed`` may change freely, ``typed`` may change content
    but must keep their kind (a device stays that device, a fifo a fifo, a link the same link)."""
    out = []
    for rel in sorted(set(before) | set(after)):
        b, a = before.get(rel), after.get(rel)
        if b == a:
            continue
        if rel in typed and b is not None and a is not None and b[0] == a[0] and b[0] != "symlink":
            continue
        if rel in typed and b is not None:
            out.append(("file-damaged", f"{rel}: was a {b[0]}, now {'gone' if a is None else 'a ' + a[0]}"))
            continue
        if rel in allowed:
            continue
        base = os.path.basename(rel)
        if a is not None and b is None:
            kind = "temp-file-left" if base.endswith(".part") or base.startswith(".") or "tmp" in rel.split("/")[0] \
                else "file-left"
            out.append((kind, f"{rel} left behind"))
        elif a is None:
            out.append(("file-damaged", f"{rel} removed"))
        elif b[0] != a[0]:
            out.append(("file-damaged", f"{rel}: a {b[0]} became a {a[0]}"))
        else:
            out.append(("file-damaged", f"{rel} modified"))
    return out


# ----------------------------------------------------------------------------------------------
# Running one case


def _argv_str(argv) -> str:
    def q(a):
        if isinstance(a, bytes):
            return "$'" + "".join(chr(c) if 32 < c < 127 and c not in b"'\\" else f"\\x{c:02x}" for c in a) + "'"
        return a if re.fullmatch(r"[\w./=,:+@%-]+", a) else "'" + a.replace("'", "'\\''") + "'"
    return " ".join(q(a) for a in argv)


def describe(case: Case) -> str:
    argv = [a.replace("{fx}/", "") if isinstance(a, str) else a for a in case.argv]  # shared read-only inputs
    cmd = f"{case.prog} {_argv_str(argv)}".strip()
    if isinstance(case.stdin, tuple) and case.stdin[0] == "file":
        cmd += f" < {case.stdin[1].replace('{fx}/', '')}"
    elif isinstance(case.stdin, tuple) and case.stdin[0] == "stream":
        cmd += " < (a stream" + (" that stalls)" if case.stdin[2] else ")")
    elif isinstance(case.stdin, bytes) and case.stdin:
        cmd += f" < ({len(case.stdin)} bytes)"
    elif case.stdin == "closed":
        cmd += " <&-"
    if case.stdout == "closed":
        cmd += " >&-"
    elif isinstance(case.stdout, tuple):
        cmd += f" > {case.stdout[1]}"
    if case.head_lines:
        cmd += f" | head -{case.head_lines}"
    if case.send:
        cmd += f"  (then {signal.Signals(case.send[0]).name} after {case.send[1]} s)"
    return cmd


def _reader(stream, keep: int, limit_lines: int | None, sink: dict, key: str):
    data, total = bytearray(), 0
    try:
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
            total += len(chunk)
            if len(data) < keep:
                data += chunk[: keep - len(data)]
            if limit_lines is not None and data.count(b"\n") >= limit_lines:
                break
    except (OSError, ValueError):
        pass
    finally:
        sink[key] = bytes(data)
        sink[key + "_total"] = total
        if limit_lines is not None:
            stream.close()  # | head: the reader goes away


def _writer(stream, spec, done: threading.Event):
    try:
        if isinstance(spec, bytes):
            stream.write(spec)
        else:  # ("stream", chunks, stall)
            _, chunks, stall = spec
            for chunk in chunks() if callable(chunks) else chunks:
                if done.is_set():
                    break
                stream.write(chunk)
                stream.flush()
            if stall:
                done.wait()
        stream.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


def _fifo_reader(path: Path, sink: dict, done: threading.Event):
    """Read a fifo while the program runs without ever blocking on it (O_NONBLOCK)."""
    data = bytearray()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                data += chunk
                continue
            if done.is_set():
                try:  # drain what is left once the program has ended
                    while (chunk := os.read(fd, 65536)):
                        data += chunk
                except BlockingIOError:
                    pass
                break
            time.sleep(0.02)
    finally:
        os.close(fd)
        sink["fifo"] = bytes(data)


def _watch_rss(pid: int, done: threading.Event, sink: dict) -> None:
    """Peak resident memory of a running process, from /proc/PID/status (VmHWM, reset at exec; the
    wait4 figure would include the memory of this harness, from which the program was forked)."""
    peak = 0
    path = f"/proc/{pid}/status"
    while not done.is_set():
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
                        break
        except (OSError, ValueError):
            pass
        done.wait(0.03)
    sink["rss_kb"] = peak


def run_case(case: Case, fixtures: "Fixtures", base_tmp: str | None = None) -> Result:
    with tempfile.TemporaryDirectory(prefix="lmrel.", dir=base_tmp) as tmp:
        work = Path(tmp) / "w"
        work.mkdir()
        for name in fixtures.small:
            shutil.copy2(fixtures.dir / name, work / name)
        (work / "tmp").mkdir()  # TMPDIR of the run: whatever is left there is a left-over temp file
        if case.setup:
            case.setup(work)
        try:
            return _run_in(case, fixtures, work)
        finally:
            for p in work.rglob("*"):  # a left fifo or device must not trouble the clean-up
                try:
                    if p.is_fifo() or p.is_char_device():
                        p.unlink()
                except OSError:
                    pass


def _run_in(case: Case, fixtures: "Fixtures", work: Path) -> Result:
    before = snapshot(work)
    env = dict(os.environ)
    env.pop("LMTOOLS_DEBUG", None)
    env["TMPDIR"] = str(work / "tmp")
    env.update({k: str(v).replace("{work}", str(work)) for k, v in case.env.items()})
    argv = [a.replace("{fx}", str(fixtures.dir)) if isinstance(a, str) else a for a in case.argv]
    cmd = [program_path(case.prog), *argv]
    if case.stdin == "closed" or case.stdout == "closed":
        redir = (" <&-" if case.stdin == "closed" else "") + (" >&-" if case.stdout == "closed" else "")
        cmd = ["/bin/sh", "-c", 'exec "$@"' + redir, "sh", *cmd]

    stdin_file = stdout_file = None
    if isinstance(case.stdin, tuple) and case.stdin[0] == "file":
        stdin_file = open(work / str(case.stdin[1]).replace("{fx}", str(fixtures.dir)), "rb")
        stdin_arg = stdin_file
    elif case.stdin is None or case.stdin == "closed":
        stdin_arg = subprocess.DEVNULL
    else:
        stdin_arg = subprocess.PIPE
    if isinstance(case.stdout, tuple):
        stdout_file = open(work / case.stdout[1], "wb")
        stdout_arg = stdout_file
    elif case.stdout == "closed":
        stdout_arg = subprocess.DEVNULL
    else:
        stdout_arg = subprocess.PIPE

    done = threading.Event()
    sink: dict = {}
    threads = []
    if case.fifo_reader:
        t = threading.Thread(target=_fifo_reader, args=(work / case.fifo_reader, sink, done), daemon=True)
        t.start()
        threads.append(t)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=stdin_arg, stdout=stdout_arg, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        resource.prlimit(proc.pid, resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
        if case.nofile:
            resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (case.nofile, case.nofile))
    except (OSError, ValueError):
        pass
    for f in (stdin_file, stdout_file):
        if f:
            f.close()
    if proc.stdin:
        t = threading.Thread(target=_writer, args=(proc.stdin, case.stdin, done), daemon=True)
        t.start()
    if proc.stdout:
        t = threading.Thread(target=_reader, args=(proc.stdout, 1 << 20, case.head_lines, sink, "out"), daemon=True)
        t.start()
        threads.append(t)
    t = threading.Thread(target=_reader, args=(proc.stderr, 1 << 16, None, sink, "err"), daemon=True)
    t.start()
    threads.append(t)

    timed_out = threading.Event()
    signal_note = []
    watcher = threading.Thread(target=_watch_rss, args=(proc.pid, done, sink), daemon=True)
    watcher.start()

    def on_timeout():
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass

    timer = threading.Timer(case.timeout, on_timeout)
    timer.start()
    if case.send:
        sig, delay, wait_part = case.send

        def send_signal():
            deadline = time.monotonic() + delay
            if wait_part:  # until the program has its temporary output open (or the delay is over)
                while time.monotonic() < deadline and not any(work.rglob("*.part")):
                    time.sleep(0.02)
            else:
                time.sleep(max(0.0, deadline - time.monotonic()))
            if proc.poll() is None and not done.is_set():
                try:
                    os.kill(proc.pid, sig)
                    signal_note.append(round(time.monotonic() - t0, 2))
                except OSError:
                    pass
        threading.Thread(target=send_signal, daemon=True).start()
    try:
        # wait without reaping, so that the memory watcher sees the process to its end
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        done.set()
        watcher.join(5)
        _, status = os.waitpid(proc.pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc
    finally:
        timer.cancel()
        elapsed = time.monotonic() - t0
        done.set()
    for t in threads:
        t.join(10)
    rss_mb = sink.get("rss_kb", 0) / 1024.0
    stderr = sink.get("err", b"").decode("utf-8", "replace")
    res = Result(case.name, case.category, case.prog, describe(case), case.expect, rc, elapsed, rss_mb, stderr,
                 sink.get("out_total", 0), [], sink.get("out", b""), sink.get("fifo", b""))

    # --- the checks
    f = res.failures
    if timed_out.is_set():
        f.append(("timeout", f"still running after {case.timeout:.0f} s"))
    else:
        f.extend(_check_exit(case, res, signal_note))
    f.extend(_check_stderr(case, res))
    if case.max_rss_mb is not None and rss_mb > case.max_rss_mb:
        f.append(("memory", f"peak RSS {rss_mb:.0f} MB > {case.max_rss_mb:.0f} MB"))
    after = snapshot(work)
    allowed, typed = set(), set()
    if case.output:
        out = os.path.normpath(case.output)
        b = before.get(out)
        if b is not None and b[0] in ("device", "fifo", "symlink"):
            typed.add(out)
            if b[0] == "symlink" and rc == 0:
                target = os.path.normpath(os.path.join(os.path.dirname(out), b[1]))
                if not target.startswith(".."):
                    allowed.add(target)
        elif rc == 0 or (case.expect == SIGNAL and _complete(work / out)):
            allowed.add(out)  # (a signal that came after the rename finds the output whole: not damage)
    f.extend(compare(before, after, allowed, typed))
    parts = [p for p in after if p.endswith(".part")]
    if parts and not any(c == "temp-file-left" for c, _ in f):
        f.append(("temp-file-left", ", ".join(parts)))
    if case.check and not timed_out.is_set():
        f.extend(case.check(res, work) or [])
    return res


def _complete(path: Path) -> bool:
    """Whether a model or gzip file is whole (its end is there)."""
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            gzip.decompress(data)
            return True
        return data.startswith(MAGIC) and b"\xa3end" in data[-16:]
    except (OSError, EOFError, gzip.BadGzipFile):
        return False


def _check_exit(case: Case, res: Result, signal_note: list) -> list:
    rc = res.rc
    if case.expect == SIGNAL:
        sig = case.send[0]
        if not signal_note:
            return [("case-not-exercised", f"the program ended (exit {rc}) before the signal was sent")]
        if rc in (-sig, 128 + sig):
            return []
        return [("exit-status", f"exit {rc} after {signal.Signals(sig).name}, expected {128 + sig} (or killed by it)")]
    if case.expect == SIGPIPE:
        if rc in (0, 141, -signal.SIGPIPE):
            return []
        return [("exit-status", f"exit {rc} when the reader went away, expected 141 (SIGPIPE) or 0")]
    if rc is not None and rc < 0:
        return [("crash", f"killed by {signal.Signals(-rc).name}")]
    if rc not in EXIT_CODES[case.expect]:
        want = "/".join(str(c) for c in sorted(EXIT_CODES[case.expect]))
        return [(case.exit_class, f"exit {rc}, expected {want} ({case.expect})")]
    return []


def _check_stderr(case: Case, res: Result) -> list:
    out = []
    err = res.stderr
    prog = case.prog
    if "Traceback (most recent call last)" in err:
        out.append(("traceback", _last_line(err)))
    if "Exception ignored" in err:
        out.append(("traceback", "'Exception ignored' on stderr"))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    error_lines = [ln for ln in lines if ln.startswith(f"{prog}: error:")]
    if any("internal error" in ln for ln in error_lines):
        out.append(("internal-error", next(ln for ln in error_lines if "internal error" in ln)[:300]))
    if any(".part" in ln for ln in error_lines):
        out.append(("message", "the error names the temporary file: " + error_lines[0][:200]))
    rc = res.rc
    if case.expect in (SIGPIPE, SIGNAL):  # warnings about the input or options are not about the ending
        lines = [ln for ln in lines if not ln.startswith(f"{prog}: warning:")]
    if case.expect == SIGPIPE:
        if lines:
            out.append(("not-quiet", f"stderr after the reader went away: {lines[0][:200]}"))
        return out
    if case.expect == SIGNAL:
        if len(lines) > 1 or (lines and not lines[0].startswith(f"{prog}:")):
            out.append(("not-quiet", f"{len(lines)} lines on stderr after the signal: {lines[0][:200]}"))
        return out
    if rc in (1, 2):
        if rc == 2 and any(ln.startswith("Usage:") for ln in lines) and any(ln.startswith("Error:") for ln in lines):
            out.append(("usage-block", "click's usage block instead of one line: "
                        + next(ln for ln in lines if ln.startswith("Error:"))[:200]))
        elif len(error_lines) != 1:
            out.append(("stderr-format", f"{len(error_lines)} '{prog}: error:' lines; stderr: "
                        + (" | ".join(lines[-3:])[:300] or "(empty)")))
        elif lines[-1] != error_lines[0]:
            out.append(("stderr-format", f"the error is not the last line: {lines[-1][:200]}"))
    elif rc == 0 and error_lines:
        out.append(("stderr-format", f"exit 0 with an error line: {error_lines[0][:200]}"))
    return out


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


# ----------------------------------------------------------------------------------------------
# Fixtures: small real models built at the start by the programs themselves


class Fixtures:
    def __init__(self, directory: Path):
        self.dir = directory
        self.small: list[str] = []     # copied into every case's directory
        self.renamed: dict = {}        # (program, option in the table) -> the name the program has now
        self.rss: dict[str, float] = {}  # peak RSS (MB) of a plain run of each program

    def build(self, log=print) -> "Fixtures":
        d = self.dir
        lines = SHAKESPEARE.read_bytes().split(b"\n")
        (d / "train.txt").write_bytes(b"\n".join(lines[:700]) + b"\n")
        (d / "other.txt").write_bytes(b"\n".join(lines[2000:2700]) + b"\n")
        (d / "small.txt").write_bytes(b"\n".join(lines[:120]) + b"\n")
        (d / "test.txt").write_bytes(b"\n".join(lines[5000:5060]) + b"\n")
        (d / "empty.txt").write_bytes(b"")
        test = (d / "test.txt").read_bytes().split(b"\n")
        (d / "bad-utf8.txt").write_bytes(b"\n".join(test[:20] + [b"caf\xe9 au lait \xff\xfe"] + test[20:40]))
        (d / "vocab.txt").write_bytes(b"the and of to a I you my\n")
        rng = random.Random(11)
        (d / "garbage.bin").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
        (d / "nul.txt").write_bytes(b"the cat\x00sat\n" * 50)
        (d / "odd-lines.txt").write_bytes(b"\n".join(ODD_LINES) + b"\n")
        big = self.dir / "big.txt"  # not copied: read-only input of the pipe cases
        big.write_bytes(SHAKESPEARE.read_bytes())
        (d / "hugeline.txt").write_bytes(b"abcd " * HUGE_LINE_TOKENS)  # one 20 MB line, no newline
        # The same tokens on lines of 100: what the text costs without the long line (the baseline of the
        # huge-line cases, whose man-page promise is the line's extra cost: about twice its size).
        (d / "manylines.txt").write_bytes((b"abcd " * 100 + b"\n") * (HUGE_LINE_TOKENS // 100))

        def prog(name, *args, stdout=None):
            cmd = [program_path(name), *args]
            t0 = time.monotonic()
            p = subprocess.Popen(cmd, cwd=d, stdout=open(d / stdout, "wb") if stdout else subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            _, err = p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"reliability: building fixtures failed: {' '.join(cmd)}: {err.decode()[-500:]}")
            log(f"  built: {name} {' '.join(args)} ({time.monotonic() - t0:.1f} s)")

        def measured(name, *args, key=None):
            p = subprocess.Popen([program_path(name), *args], cwd=d, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            done, sink = threading.Event(), {}
            w = threading.Thread(target=_watch_rss, args=(p.pid, done, sink), daemon=True)
            w.start()
            os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
            done.set()
            w.join(5)
            p.wait()
            self.rss[key or name] = sink.get("rss_kb", 0) / 1024.0

        for name, old, new in (("lm-gen", "-n", "-s"), ("lm-info", "--vocab", "--list-vocab"),
                               ("lm-train", "-m", "--method")):
            helptext = subprocess.run([program_path(name), "--help"], capture_output=True, text=True).stdout
            if re.search(rf"^\s+{re.escape(new)}\b", helptext, re.M):
                self.renamed[(name, old)] = new
        prog("lm-count", "-n", "3", "train.txt", "-o", "counts.lm")
        prog("lm-count", "-n", "2", "train.txt", "-o", "counts2.lm")
        prog("lm-count", "-n", "3", "other.txt", "-o", "other-counts.lm")
        prog("lm-count", "-n", "3", "--chars", "small.txt", "-o", "chars.lm")
        prog("lm-count", "-n", "3", "--lower", "train.txt", "-o", "lower.lm")
        prog("lm-count", "-n", "3", "--vocab-size", "50", "train.txt", "-o", "vocab50.lm")
        prog("lm-count", "-n", "3", "big.txt", "-o", "big-counts.lm")  # not copied: for a long write
        prog("lm-train", "-q", "counts.lm", "-o", "kn.lm")
        prog("lm-train", "-q", "other-counts.lm", "-o", "kn2.lm")
        prog("lm-train", "-q", "--arpa", "counts.lm", "-o", "kn.arpa")
        prog("lm-train", "-q", "-m", "ffnn", "--epochs", "1", "--dim", "8", "--hidden", "8", "--context", "2",
             "small.txt", "-o", "ffnn.lm")
        # the validation path's kernels compiled before the cases run (a first compile under load is slow)
        prog("lm-train", "-q", "-m", "ffnn", "--epochs", "1", "--dim", "8", "--hidden", "8", "--context", "2",
             "--valid", "test.txt", "small.txt", "-o", "warm.lm")
        (d / "warm.lm").unlink()
        measured("lm-count", "small.txt")
        measured("lm-score", "-m", "kn.lm", "test.txt")
        measured("lm-ppl", "-m", "kn.lm", "test.txt")
        for name, args in (("lm-count", []), ("lm-score", ["-m", "kn.lm"]), ("lm-ppl", ["-m", "kn.lm"])):
            measured(name, *args, "manylines.txt", key=name + " lines")

        kn = (d / "kn.lm").read_bytes()
        (d / "kn.lm.gz").write_bytes(gzip.compress(kn, mtime=0))
        (d / "kn.lm.bz2").write_bytes(bz2.compress(kn))
        (d / "kn.lm.xz").write_bytes(lzma.compress(kn))
        (d / "kn-trunc.lm.gz").write_bytes(gzip.compress(kn, mtime=0)[:-900])
        (d / "kn-trunc.lm.bz2").write_bytes(bz2.compress(kn)[:-900])
        (d / "kn-trunc.lm.xz").write_bytes(lzma.compress(kn)[:-900])
        gz = bytearray(gzip.compress(kn, mtime=0))
        gz[len(gz) // 2] ^= 0x55
        (d / "kn-flip.lm.gz").write_bytes(bytes(gz))
        (d / "kn-trailing.lm").write_bytes(kn + b"trailing garbage\n")
        (d / "kn-twice.lm").write_bytes(kn + kn)
        (d / "kn-newer.lm").write_bytes(kn[:len(MAGIC)] + b"\x63" + kn[len(MAGIC) + 1:])
        (d / "kn-v0.lm").write_bytes(kn[:len(MAGIC)] + b"\x00" + kn[len(MAGIC) + 1:])
        (d / "huge-claim.lm.gz").write_bytes(gzip.compress(_huge_claim(kn), mtime=0))
        (d / "huge-claim.lm").write_bytes(_huge_claim(kn))
        (d / "kn-trunc.lm").write_bytes(kn[: len(kn) // 2])
        (d / "kn-trunc-header.lm").write_bytes(kn[:40])
        (d / "magic-only.lm").write_bytes(MAGIC)
        (d / "train.txt.gz").write_bytes(gzip.compress((d / "train.txt").read_bytes(), mtime=0))
        (d / "train-trunc.txt.gz").write_bytes(gzip.compress((d / "train.txt").read_bytes(), mtime=0)[:-500])

        arpa = (d / "kn.arpa").read_text()
        for name, text in arpa_variants(arpa).items():
            (d / name).write_text(text) if isinstance(text, str) else (d / name).write_bytes(text)
        (d / "kn.arpa.gz").write_bytes(gzip.compress(arpa.encode(), mtime=0))
        (d / "kn-trunc.arpa.gz").write_bytes(gzip.compress(arpa.encode(), mtime=0)[:-300])

        large = ("big.txt", "hugeline.txt", "manylines.txt", "big-counts.lm")
        self.small = sorted(p.name for p in d.iterdir() if p.is_file() and p.name not in large)
        return self


def _layout(model: bytes) -> tuple[int, str]:
    """Where a model file's header ends (the offset of its first array) and that array's name, for any
    format version (the header is whatever comes before the first array: in format 3 its descriptor,
    in formats 1 and 2 its map)."""
    import msgpack

    unp = msgpack.Unpacker(raw=False, max_buffer_size=len(model) + 1)
    unp.feed(model)
    unp.unpack()  # magic
    version = unp.unpack()
    if version >= 3:
        unp.unpack()  # header bin
        unp.unpack()  # its checksum
        pos = unp.tell()
        n = int.from_bytes(model[pos:pos + 4], "little")
        return pos, msgpack.unpackb(model[pos + 4:pos + 4 + n], raw=False)[0]
    while True:
        pos = unp.tell()
        obj = unp.unpack()
        if isinstance(obj, dict) and "name" in obj and "data" in obj:
            return pos, obj["name"]


def _huge_claim(model: bytes) -> bytes:
    """A model whose first array claims 4 GB of data and then ends (format 3: its descriptor, with a
    right checksum, says so; formats 1 and 2: a bin32 of 0xFFFFFFF0 bytes)."""
    import zlib

    import msgpack

    header_end, first = _layout(model)
    if model[len(MAGIC)] >= 3:
        desc = msgpack.packb([first, "<f4", [0x3FFFFFFC], 4 * 0x3FFFFFFC, 0], use_bin_type=True)
        out = model[:header_end] + len(desc).to_bytes(4, "little") + desc + \
            (zlib.crc32(desc) & 0xFFFFFFFF).to_bytes(4, "little")
        return out + bytes(-len(out) % 64) + b"\0" * 1000
    meta = {"name": first, "dtype": "<f4", "shape": [0x3FFFFFFC], "crc32": 0}
    packer = msgpack.Packer(use_bin_type=True)
    body = packer.pack_map_header(len(meta) + 1) + b"".join(packer.pack(k) + packer.pack(v) for k, v in meta.items())
    return model[:header_end] + body + packer.pack("data") + b"\xc6\xff\xff\xff\xf0" + b"\0" * 1000


def arpa_variants(arpa: str) -> dict:
    """Damaged and impossible ARPA files made from a real one."""
    lines = arpa.split("\n")
    first = next(i for i, ln in enumerate(lines) if ln.startswith("\\1-grams:")) + 1
    second = next(i for i, ln in enumerate(lines) if ln.startswith("\\2-grams:")) + 1

    def with_prob(i, value):
        out = list(lines)
        parts = out[i].split("\t")
        parts[0] = value
        out[i] = "\t".join(parts)
        return "\n".join(out)

    def with_backoff(i, value):
        out = list(lines)
        parts = out[i].split("\t")
        if len(parts) == 3:
            parts[2] = value
        else:
            parts.append(value)
        out[i] = "\t".join(parts)
        return "\n".join(out)

    end = lines.index("\\end\\")
    v = {
        "nan-prob.arpa": with_prob(first + 5, "nan"),
        "inf-prob.arpa": with_prob(first + 5, "inf"),
        "neginf-prob.arpa": with_prob(second + 3, "-inf"),
        "pos-prob.arpa": with_prob(second + 3, "0.5"),
        "nan-backoff.arpa": with_backoff(first + 7, "nan"),
        "inf-backoff.arpa": with_backoff(first + 7, "inf"),
        "word-prob.arpa": with_prob(first + 9, "abc"),
        "no-end.arpa": "\n".join(lines[:end]),
        "half.arpa": "\n".join(lines[: len(lines) // 2]),
        "count-mismatch.arpa": arpa.replace("ngram 1=", "ngram 1=9", 1),
        "no-data.arpa": "\n".join(lines[lines.index("\\data\\") + 1:]),
        "empty-data.arpa": "\\data\\\n\\end\\\n",
        "bad-utf8.arpa": "\n".join(lines[:first + 3]).encode() + b"\n-1.5\tcaf\xe9\t-0.2\n"
        + "\n".join(lines[first + 3:]).encode(),
        "dup-ngram.arpa": "\n".join(lines[:first + 4] + [lines[first + 3]] + lines[first + 4:]),
    }
    return v


# ----------------------------------------------------------------------------------------------
# Checks used by several cases


def expect_stdout_model(res: Result, work: Path) -> list:
    if res.rc == 0 and not res.stdout_head.startswith(MAGIC):
        return [("wrong-output", f"exit 0 but stdout holds no model ({res.stdout_bytes} bytes)")]
    return []


def expect_file_model(path: str):
    def check(res: Result, work: Path) -> list:
        if res.rc != 0:
            return []
        p = work / path
        try:
            head = p.read_bytes()[:len(MAGIC)] if p.is_file() else b""
        except OSError:
            head = b""
        if head != MAGIC and not p.name.endswith((".arpa", ".gz")):
            return [("wrong-output", f"exit 0 but {path} holds no model")]
        return []
    return check


def expect_fifo_model(res: Result, work: Path) -> list:
    if res.rc == 0 and not res.fifo_bytes.startswith(MAGIC):
        return [("wrong-output", f"exit 0 but the fifo's reader got {len(res.fifo_bytes)} bytes, no model")]
    return []


def expect_lines(n: int):
    def check(res: Result, work: Path) -> list:
        got = res.stdout_head.count(b"\n")
        if got != n:
            return [("wrong-output", f"{got} lines on stdout, expected {n}")]
        return []
    return check


def expect_few_oovs(res: Result, work: Path) -> list:
    """lm-ppl --json with a model read as characters or lower-cased: exit 0 only if the text was read as
    the model was built (few OOVs)."""
    if res.rc != 0:
        return []
    try:
        obj = json.loads(res.stdout_head.decode())
        tot = obj.get("total", obj)
        if isinstance(tot, list):
            tot = tot[-1]
        words, oovs = tot["words"], tot["oovs"]
    except (ValueError, KeyError, TypeError):
        m = re.search(rb"(\d+) words, (\d+) OOVs", res.stdout_head)
        if not m:
            return [("wrong-output", "no word/OOV figures in the output")]
        words, oovs = int(m.group(1)), int(m.group(2))
    if words and oovs > 0.3 * words:
        return [("silently-wrong", f"exit 0 with {oovs} of {words} words OOV: the text was not read as the model's")]
    return []


def expect_finite_output(res: Result, work: Path) -> list:
    text = res.stdout_head.decode("utf-8", "replace").lower()
    if res.rc == 0 and re.search(r"\bnan\b|\binf\b|perplexity: 0\.0000", text):
        return [("silently-wrong", "exit 0 with nan/inf/0 in the output: " + text.strip().splitlines()[0][:150])]
    return []


def all_checks(*checks):
    def check(res, work):
        out = []
        for c in checks:
            out.extend(c(res, work) or [])
        return out
    return check


# ----------------------------------------------------------------------------------------------
# The case table


def mknod(name: str, major: int, minor: int):
    def setup(work: Path):
        os.mknod(work / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    return setup


def mkfifo(name: str):
    def setup(work: Path):
        os.mkfifo(work / name)
    return setup


def symlink(name: str, target: str):
    def setup(work: Path):
        os.symlink(target, work / name)
    return setup


def mkdir(name: str):
    def setup(work: Path):
        (work / name).mkdir()
    return setup


def existing(name: str, content: bytes = b"the old output, to be left alone\n"):
    def setup(work: Path):
        (work / name).write_bytes(content)
    return setup


def setups(*fns):
    def setup(work):
        for fn in fns:
            fn(work)
    return setup


FFNN_BASE = ["-q", "-m", "ffnn", "--epochs", "1", "--dim", "8", "--hidden", "8", "--context", "2"]
HUGE_INT = "99999999999999999999"
# lines that are each one sentence, whatever they hold
ODD_LINES = [b"", b" ", b"\t\t", b"a\rb", "the\u00a0cat\u3000sat\u0085".encode(), b"<s> </s>",
             b"<s>", b"<unk> <unk>", b"x" * 100000, b"\x1c\x1d\x1e\x1f", b"\x0b\x0c", "\ufeffthe".encode(),
             "\U0001F600 \u0301".encode(), b"the the the the the the the the the the"]
HUGE_LINE_TOKENS = 4 << 20
HUGE_LINE_BYTES = 5 * HUGE_LINE_TOKENS
HUGE_FLOAT = "1e300"


def option_cases() -> list:
    """Each numeric option given 0, -1, nan, inf and a huge value; what each must give."""
    U, O, A, OD, X, E = USAGE, OK, OK_USAGE, OK_DATA, ANY, ERROR
    # (program, base argv, option, is_float, {value: expectation}, output)
    table = [
        ("lm-count", ["small.txt", "-o", "out.lm"], "-n", False, dict(zero=U, neg=U, nan=U, inf=U, huge=E), 30),
        ("lm-count", ["small.txt", "-o", "out.lm"], "--min-count", False, dict(zero=A, neg=U, nan=U, inf=U, huge=A)),
        ("lm-count", ["small.txt", "-o", "out.lm"], "--vocab-size", False, dict(zero=O, neg=U, nan=U, inf=U, huge=A)),
        ("lm-count", ["small.txt", "-o", "out.lm"], "--max-line", False, dict(zero=U, neg=U, nan=U, inf=U, huge=A)),
        ("lm-train", ["-q", "counts.lm", "-o", "out.lm"], "-n", False, dict(zero=U, neg=U, nan=U, inf=U, huge=E)),
        ("lm-train", ["-q", "-m", "kn", "counts.lm", "-o", "out.lm"], "--discount", True,
         dict(zero=A, neg=U, nan=U, inf=U, huge=U, five=U)),
        ("lm-train", ["-q", "counts.lm", "-o", "out.lm"], "--discount", True,
         dict(zero=A, neg=U, nan=U, inf=U, huge=U, five=U)),
        ("lm-train", ["-q", "counts.lm", "-o", "out.lm"], "--prune", False, dict(zero=O, neg=U, nan=U, inf=U, huge=X)),
        ("lm-train", ["-q", "-m", "add-k", "counts.lm", "-o", "out.lm"], "-k", True,
         dict(zero=A, neg=U, nan=U, inf=U, huge=A)),
        ("lm-train", ["-q", "-m", "stupid", "counts.lm", "-o", "out.lm"], "--alpha", True,
         dict(zero=A, neg=U, nan=U, inf=U, huge=A)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--context", False, dict(zero=U, neg=U, nan=U, inf=U, huge=U)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--dim", False, dict(zero=U, neg=U, nan=U, inf=U, huge=E)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--hidden", False, dict(zero=U, neg=U, nan=U, inf=U, huge=E)),
        ("lm-train", FFNN_BASE + ["--time-limit", "3", "small.txt", "-o", "out.lm"], "--epochs", False,
         dict(zero=U, neg=U, nan=U, inf=U, huge=O)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--batch", False, dict(zero=U, neg=U, nan=U, inf=U, huge=X)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--lr", True,
         dict(zero=U, neg=U, nan=U, inf=U, huge=OD, big=OD)),
        ("lm-train", FFNN_BASE + ["--optimizer", "momentum", "small.txt", "-o", "out.lm"], "--momentum", True,
         dict(zero=O, neg=U, nan=U, inf=U, huge=U)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--l2", True, dict(zero=O, neg=U, nan=U, inf=U, huge=X)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--dropout", True, dict(zero=O, neg=U, nan=U, inf=U, huge=U)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--dropout-emb", True,
         dict(zero=O, neg=U, nan=U, inf=U, huge=U)),
        ("lm-train", FFNN_BASE + ["--valid", "test.txt", "small.txt", "-o", "out.lm"], "--lr-decay", True,
         dict(zero=U, neg=U, nan=U, inf=U, huge=U)),
        ("lm-train", FFNN_BASE + ["--valid", "test.txt", "small.txt", "-o", "out.lm"], "--min-improvement", True,
         dict(zero=O, neg=U, nan=U, inf=U, huge=X)),
        ("lm-train", FFNN_BASE + ["--valid", "test.txt", "small.txt", "-o", "out.lm"], "--patience", False,
         dict(zero=U, neg=U, nan=U, inf=U, huge=O)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--time-limit", True,
         dict(zero=O, neg=U, nan=U, inf=A, huge=O)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--vocab-size", False, dict(zero=O, neg=U, nan=U, inf=U, huge=O)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--min-count", False, dict(zero=U, neg=U, nan=U, inf=U, huge=X)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--seed", False, dict(zero=O, neg=A, nan=U, inf=U, huge=A)),
        ("lm-train", FFNN_BASE + ["small.txt", "-o", "out.lm"], "--threads", False, dict(zero=O, neg=U, nan=U, inf=U, huge=A)),
        ("lm-train", FFNN_BASE + ["--output-layer", "class", "small.txt", "-o", "out.lm"], "--classes", False,
         dict(zero=O, neg=U, nan=U, inf=U, huge=X)),
        ("lm-ppl", ["-m", "kn.lm", "test.txt"], "--threads", False, dict(zero=A, neg=U, nan=U, inf=U, huge=A)),
        ("lm-ppl", ["-m", "kn.lm", "-m", "kn2.lm", "test.txt"], "--lambda", True,
         dict(zero=A, neg=U, nan=U, inf=U, huge=U, two=U)),
        ("lm-score", ["-m", "kn.lm", "test.txt"], "--threads", False, dict(zero=A, neg=U, nan=U, inf=U, huge=A)),
        ("lm-score", ["-m", "kn.lm", "-m", "kn2.lm", "test.txt"], "--lambda", True,
         dict(zero=A, neg=U, nan=U, inf=U, huge=U, two=U)),
        ("lm-gen", ["-m", "kn.lm", "-n", "2", "--seed", "1"], "--seed", False, dict(zero=O, neg=A, nan=U, inf=U, huge=A)),
        ("lm-gen", ["-m", "kn.lm", "--seed", "1"], "-n", False, dict(zero=A, neg=U, nan=U, inf=U)),
        ("lm-gen", ["-m", "kn.lm", "-n", "2", "--seed", "1"], "--temperature", True,
         dict(zero=U, neg=U, nan=U, inf=A, huge=A)),
        ("lm-gen", ["-m", "kn.lm", "-n", "2", "--seed", "1"], "--top-k", False, dict(zero=U, neg=U, nan=U, inf=U, huge=A)),
        ("lm-gen", ["-m", "kn.lm", "-n", "2", "--seed", "1"], "--top-p", True, dict(zero=U, neg=U, nan=U, inf=U, huge=U)),
        ("lm-gen", ["-m", "kn.lm", "-n", "2", "--seed", "1"], "--max-len", False, dict(zero=A, neg=U, nan=U, inf=U, huge=A)),
        ("lm-gen", ["-m", "kn.lm", "--next", "the"], "--top", False, dict(zero=O, neg=U, nan=U, inf=U, huge=A)),
        ("lm-gen", ["-m", "kn.lm", "-n", "2", "--seed", "1"], "--threads", False, dict(zero=A, neg=U, nan=U, inf=U, huge=A)),
    ]
    values = {"zero": "0", "neg": "-1", "nan": "nan", "inf": "inf", "five": "5", "two": "2", "big": "1e4"}
    cases = []
    for prog, base, opt, is_float, expects, *timeout in table:
        method = ""
        if "-m" in base and prog == "lm-train":
            method = base[base.index("-m") + 1] + "."
        for key, exp in expects.items():
            value = HUGE_FLOAT if key == "huge" and is_float else HUGE_INT if key == "huge" else values[key]
            out = "out.lm" if "-o" in base else None
            check = None
            if exp in (OK, OK_USAGE, OK_DATA, ANY) and out:
                check = expect_file_model(out)
            elif prog in ("lm-ppl", "lm-score"):
                check = expect_finite_output
            cases.append(Case(f"options/{prog}.{method}{opt.lstrip('-')}={value}", prog, base + [opt, value], exp,
                              output=out, check=check, timeout=timeout[0] if timeout else 90))
    return cases


def wrong_option_cases() -> list:
    """Options of another program (click refuses them) and of another method or mode (an option that
    would be silently ignored is refused: failure class option-ignored when it is not)."""
    U, E, IGN = USAGE, ERROR, "ignored"
    rows = [
        ("lm-count", ["--arpa", "small.txt"], U),
        ("lm-count", ["-m", "kn", "small.txt"], U),
        ("lm-info", ["-o", "out.lm", "kn.lm"], U),
        ("lm-info", ["-n", "3", "kn.lm"], U),
        ("lm-merge", ["-n", "3", "counts.lm", "other-counts.lm"], U),
        ("lm-merge", ["--chars", "counts.lm", "other-counts.lm"], U),
        ("lm-ppl", ["--seed", "1", "-m", "kn.lm", "test.txt"], U),
        ("lm-ppl", ["--format", "jsonl", "-m", "kn.lm", "test.txt"], U),
        ("lm-score", ["--per-sentence", "-m", "kn.lm", "test.txt"], U),
        ("lm-gen", ["--lambda", "0.5", "-m", "kn.lm"], U),
        ("lm-gen", ["-m", "kn.lm", "--top", "5", "-n", "1", "--seed", "1"], IGN),
        ("lm-gen", ["-m", "kn.lm", "--greedy", "--temperature", "0.5"], IGN),
        ("lm-train", ["-m", "kn", "--epochs", "3", "counts.lm"], U),
        ("lm-train", ["-m", "kn", "--hidden", "30", "counts.lm"], U),
        ("lm-train", ["-m", "kn", "--valid", "test.txt", "counts.lm"], U),
        ("lm-train", ["-m", "ffnn", "--discount", "0.5", "small.txt"], U),
        ("lm-train", ["-m", "ffnn", "--prune", "0,1", "small.txt"], U),
        ("lm-train", ["-m", "ffnn", "--arpa", "small.txt"], E),
        ("lm-train", ["-m", "ffnn", "--from-arpa", "kn.arpa", "small.txt"], E),
        ("lm-train", ["-m", "kn", "-k", "0.5", "counts.lm"], IGN),
        ("lm-train", ["-m", "add-k", "--alpha", "0.3", "counts.lm"], IGN),
        ("lm-train", ["-m", "wb", "--kenlm-compat", "counts.lm"], U),
        ("lm-train", ["-m", "kn-modified", "--discount", "0.5,0.6,0.7,0.8", "counts.lm"], U),
        ("lm-train", ["-m", "mle", "--discount", "0.5", "counts.lm"], U),
        ("lm-train", ["-m", "nosuchmethod", "counts.lm"], U),
        ("lm-train", ["-m", "kn", "small.txt"], DATA),  # text where counts are needed
        ("lm-train", ["-m", "ffnn", "counts.lm"], DATA),  # a model where text is needed
        ("lm-train", ["--from-arpa", "kn.arpa", "counts.lm"], E),
        ("lm-train", ["--chars", "counts.lm"], E),
        ("lm-train", ["-m", "ffnn", "--output-layer", "softmax", "--classes", "5", "small.txt"], IGN),
        ("lm-train", ["-m", "ffnn", "--optimizer", "adam", "--momentum", "0.5", "small.txt"], IGN),
        ("lm-ppl", ["-m", "kn.lm", "--lambda", "0.5", "test.txt"], U),  # a weight for a single model
        ("lm-ppl", ["-m", "kn.lm", "-m", "kn2.lm", "--lambda", "0.5,0.6", "test.txt"], U),
        ("lm-ppl", ["-m", "kn.lm", "-m", "kn2.lm", "--lambda", "0.2,0.2,0.6", "test.txt"], U),
        ("lm-ppl", ["--lambda", "abc", "-m", "kn.lm", "-m", "kn2.lm", "test.txt"], U),
        ("lm-score", ["-m", "kn.lm", "--format", "xml", "test.txt"], U),
    ]
    cases = []
    for prog, argv, exp in rows:
        name = "wrong-option/" + prog + " " + " ".join(argv)
        extra = []
        if prog == "lm-train":
            extra = ["-q"] + (["--epochs", "1", "--dim", "8", "--hidden", "8"] if "ffnn" in argv else [])
        cases.append(Case(name, prog, argv + extra, E if exp == IGN else exp, timeout=90,
                          exit_class="option-ignored" if exp == IGN else "exit-status"))
    return cases


def output_cases() -> list:
    cases = []
    writers = [
        ("lm-count", ["-n", "2", "small.txt"]),
        ("lm-train", ["-q", "counts.lm"]),
        ("lm-merge", ["counts.lm", "other-counts.lm"]),
    ]
    for prog, argv in writers:
        p = prog
        cases += [
            Case(f"output/{p} -o null-device", p, argv + ["-o", "null"], ANY, output="null", setup=mknod("null", 1, 3)),
            Case(f"output/{p} -o full-device", p, argv + ["-o", "full"], DATA, output="full", setup=mknod("full", 1, 7)),
            Case(f"output/{p} -o fifo", p, argv + ["-o", "fifo"], ANY, output="fifo", setup=mkfifo("fifo"),
                 fifo_reader="fifo", check=expect_fifo_model, timeout=30),
            Case(f"output/{p} -o symlink-to-file", p, argv + ["-o", "link.lm"], ANY, output="link.lm",
                 setup=setups(existing("target.lm"), symlink("link.lm", "target.lm")),
                 check=expect_file_model("target.lm")),
            Case(f"output/{p} -o dangling-symlink", p, argv + ["-o", "link.lm"], ANY, output="link.lm",
                 setup=symlink("link.lm", "nowhere.lm")),
            Case(f"output/{p} -o symlink-to-stdout", p, argv + ["-o", "out"], ANY, output="out",
                 setup=symlink("out", "/proc/self/fd/1"), check=expect_stdout_model),
            Case(f"output/{p} -o directory", p, argv + ["-o", "adir"], ERROR, output="adir", setup=mkdir("adir")),
            Case(f"output/{p} -o missing-dir", p, argv + ["-o", "no/such/dir/out.lm"], ERROR, output="no/such/dir/out.lm"),
            Case(f"output/{p} -o ''", p, argv + ["-o", ""], ERROR, output=""),
            Case(f"output/{p} -o existing-file", p, argv + ["-o", "out.lm"], OK, output="out.lm",
                 setup=existing("out.lm"), check=expect_file_model("out.lm")),
            Case(f"output/{p} -o .", p, argv + ["-o", "."], ERROR, output="."),
        ]
    cases += [
        Case("output/lm-count -o the input", "lm-count", ["small.txt", "-o", "small.txt"], ERROR, output="small.txt"),
        Case("output/lm-count -o ./the input", "lm-count", ["small.txt", "-o", "./small.txt"], ERROR, output="small.txt"),
        Case("output/lm-count -o a link to the input", "lm-count", ["small.txt", "-o", "in.lnk"], ERROR,
             output="in.lnk", setup=symlink("in.lnk", "small.txt")),
        Case("output/lm-count -o a hard link to the input", "lm-count", ["small.txt", "-o", "hard.txt"], ERROR,
             output="hard.txt", setup=lambda w: os.link(w / "small.txt", w / "hard.txt")),
        Case("output/lm-count -o the --vocab file", "lm-count", ["--vocab", "vocab.txt", "small.txt", "-o", "vocab.txt"],
             ERROR, output="vocab.txt"),
        Case("output/lm-train -o the input", "lm-train", ["-q", "counts.lm", "-o", "counts.lm"], ERROR, output="counts.lm"),
        Case("output/lm-train ffnn -o the --valid file", "lm-train",
             FFNN_BASE + ["--valid", "test.txt", "small.txt", "-o", "test.txt"], ERROR, output="test.txt"),
        Case("output/lm-merge -o an input", "lm-merge", ["counts.lm", "other-counts.lm", "-o", "other-counts.lm"], ERROR,
             output="other-counts.lm"),
        Case("output/lm-train --arpa -o x.arpa.gz", "lm-train", ["-q", "--arpa", "counts.lm", "-o", "x.arpa.gz"], OK,
             output="x.arpa.gz",
             check=lambda r, w: [] if (w / "x.arpa.gz").read_bytes()[:2] == b"\x1f\x8b" else
             [("wrong-output", "x.arpa.gz is not gzip")]),
        # the output is checked before the work: a long training must not end in "cannot write"
        Case("output/lm-train ffnn -o missing-dir, checked first", "lm-train",
             ["-q", "-m", "ffnn", "--epochs", "100000", "--dim", "8", "--hidden", "8", "--context", "2", "small.txt",
              "-o", "no/such/dir/f.lm"], ERROR, output="no/such/dir/f.lm", timeout=25),
        Case("output/lm-count -o missing-dir, checked first", "lm-count", ["-o", "no/dir/c.lm"], ERROR,
             output="no/dir/c.lm", stdin=("stream", lambda: iter([b"the cat sat\n"]), True), timeout=15),
        # standard streams
        Case("output/lm-count > full-device", "lm-count", ["small.txt"], DATA, stdout=("file", "full"),
             setup=mknod("full", 1, 7)),
        Case("output/lm-score > full-device", "lm-score", ["-m", "kn.lm", "test.txt"], DATA, stdout=("file", "full"),
             setup=mknod("full", 1, 7)),
        Case("output/lm-ppl > full-device", "lm-ppl", ["-m", "kn.lm", "test.txt"], DATA, stdout=("file", "full"),
             setup=mknod("full", 1, 7)),
        Case("output/lm-gen > full-device", "lm-gen", ["-m", "kn.lm", "-n", "5", "--seed", "1"], DATA,
             stdout=("file", "full"), setup=mknod("full", 1, 7)),
        Case("output/lm-info > full-device", "lm-info", ["kn.lm"], DATA, stdout=("file", "full"),
             setup=mknod("full", 1, 7)),
        Case("output/lm-count stdout closed", "lm-count", ["small.txt"], DATA, stdout="closed"),
        Case("output/lm-score stdout closed", "lm-score", ["-m", "kn.lm", "test.txt"], DATA, stdout="closed"),
        Case("output/lm-info stdout closed", "lm-info", ["kn.lm"], DATA, stdout="closed"),
        Case("output/lm-ppl stdin closed", "lm-ppl", ["-m", "kn.lm"], ERROR, stdin="closed"),
        Case("output/lm-info stdin closed", "lm-info", [], DATA, stdin="closed"),
        Case("output/lm-count stdin closed", "lm-count", [], ANY, stdin="closed"),
    ]
    return cases


def pipe_cases() -> list:
    return [
        Case("pipe/lm-score | head -1", "lm-score", ["-m", "kn.lm", "{fx}/big.txt"], SIGPIPE, head_lines=1),
        Case("pipe/lm-score --words | head -1 (stdin)", "lm-score", ["-m", "kn.lm", "--words"], SIGPIPE, head_lines=1,
             stdin=("file", "{fx}/big.txt")),
        Case("pipe/lm-ppl --per-sentence | head -1", "lm-ppl", ["-m", "kn.lm", "--per-sentence", "{fx}/big.txt"],
             SIGPIPE, head_lines=1),
        Case("pipe/lm-gen | head -1", "lm-gen", ["-m", "kn.lm", "-n", "200000", "--seed", "1"], SIGPIPE, head_lines=1),
        Case("pipe/lm-gen --next --top 0 | head -1", "lm-gen", ["-m", "kn.lm", "--next", "the", "--top", "0"], SIGPIPE,
             head_lines=1),
        Case("pipe/lm-info --vocab | head -1", "lm-info", ["--vocab", "kn.lm"], SIGPIPE, head_lines=1),
        Case("pipe/lm-count | head -1", "lm-count", ["-n", "4", "{fx}/big.txt"], SIGPIPE, head_lines=1),
        Case("pipe/lm-train --arpa | head -1", "lm-train", ["-q", "--arpa", "counts.lm"], SIGPIPE, head_lines=1),
        Case("pipe/lm-merge | head -1", "lm-merge", ["counts.lm", "other-counts.lm"], SIGPIPE, head_lines=1),
    ]


def _text_stream(seconds_of_lines: int = 50):
    def gen():
        for _ in range(seconds_of_lines):
            yield b"the cat sat on the mat\n" * 100
    return gen


def signal_cases(fx: "Fixtures") -> list:
    cases = []
    counts = (fx.dir / "counts.lm").read_bytes()
    kn = (fx.dir / "kn.lm").read_bytes()
    half_counts = ("stream", [counts[: len(counts) // 2]], True)
    half_kn = ("stream", [kn[: len(kn) // 2]], True)
    text = ("stream", _text_stream(), True)
    ffnn_long = ["-q", "-m", "ffnn", "--epochs", "100000", "--dim", "8", "--hidden", "8", "--context", "2", "small.txt"]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        s = sig.name
        cases += [
            Case(f"signal/lm-count -o, {s} while reading stdin", "lm-count", ["-o", "out.lm"], SIGNAL, stdin=text,
                 output="out.lm", send=(sig, 2.0, False), timeout=30),
            Case(f"signal/lm-train ffnn -o, {s} mid-training", "lm-train", ffnn_long + ["-o", "out.lm"], SIGNAL,
                 output="out.lm", send=(sig, 4.0, False), timeout=40),
            Case(f"signal/lm-train ffnn -o existing, {s} mid-training", "lm-train", ffnn_long + ["-o", "out.lm"],
                 SIGNAL, output="out.lm", setup=existing("out.lm"), send=(sig, 4.0, False), timeout=40),
        ]
    t = signal.SIGTERM
    cases += [
        Case("signal/lm-train -o, SIGTERM while reading counts", "lm-train", ["-q", "-o", "out.lm"], SIGNAL,
             stdin=half_counts, output="out.lm", send=(t, 2.0, False), timeout=30),
        Case("signal/lm-train --arpa -o x.arpa.gz, SIGTERM while reading", "lm-train", ["-q", "--arpa", "-o", "x.arpa.gz"],
             SIGNAL, stdin=half_counts, output="x.arpa.gz", send=(t, 2.0, False), timeout=30),
        # an ARPA file of some MB being written when the signal comes: its temporary file must go
        Case("signal/lm-train --arpa -o x.arpa.gz, SIGTERM while writing", "lm-train",
             ["-q", "--arpa", "{fx}/big-counts.lm", "-o", "x.arpa.gz"], SIGNAL, output="x.arpa.gz",
             send=(t, 30.0, True), timeout=60),
        Case("signal/lm-train --arpa -o x.arpa, SIGINT while writing", "lm-train",
             ["-q", "--arpa", "{fx}/big-counts.lm", "-o", "x.arpa"], SIGNAL, output="x.arpa",
             send=(signal.SIGINT, 30.0, True), timeout=60),
        Case("signal/lm-merge -o, SIGTERM while reading", "lm-merge", ["counts.lm", "-", "-o", "out.lm"], SIGNAL,
             stdin=half_counts, output="out.lm", send=(t, 2.0, False), timeout=30),
        Case("signal/lm-ppl, SIGTERM while reading text", "lm-ppl", ["-m", "kn.lm"], SIGNAL, stdin=text,
             send=(t, 2.0, False), timeout=30),
        Case("signal/lm-score, SIGTERM while reading text", "lm-score", ["-m", "kn.lm"], SIGNAL, stdin=text,
             send=(t, 2.0, False), timeout=30),
        Case("signal/lm-gen, SIGTERM while reading the model", "lm-gen", ["-n", "3"], SIGNAL, stdin=half_kn,
             send=(t, 2.0, False), timeout=30),
        Case("signal/lm-info, SIGTERM while reading the model", "lm-info", [], SIGNAL, stdin=half_kn,
             send=(t, 2.0, False), timeout=30),
        Case("signal/lm-gen, SIGINT while reading the model", "lm-gen", ["-n", "3"], SIGNAL, stdin=half_kn,
             send=(signal.SIGINT, 2.0, False), timeout=30),
        # Ctrl-C during the first run's kernel compile (an empty numba cache)
        Case("signal/lm-ppl cold kernel cache, SIGINT while compiling", "lm-ppl", ["-m", "kn.lm", "{fx}/big.txt"], SIGNAL,
             send=(signal.SIGINT, 2.5, False), env={"NUMBA_CACHE_DIR": "{work}/tmp/numba"}, timeout=120),
        Case("signal/lm-count cold kernel cache, SIGTERM while compiling", "lm-count", ["{fx}/big.txt", "-o", "out.lm"],
             SIGNAL, output="out.lm", send=(signal.SIGTERM, 2.5, False), env={"NUMBA_CACHE_DIR": "{work}/tmp/numba"},
             timeout=120),
    ]
    # the numba cache the cold runs create under tmp/ is theirs, not a left-over: those cases remove it
    for c in cases:
        if "NUMBA_CACHE_DIR" in c.env:
            c.check = _drop_numba_cache
    return cases


def _drop_numba_cache(res: Result, work: Path) -> list:
    res.failures[:] = [(c, d) for c, d in res.failures if not d.startswith("tmp/numba")]
    return []


def input_cases(fx: "Fixtures") -> list:
    D, O, E, X = DATA, OK, ERROR, ANY
    # the man page: a line is held whole, about twice its size, plus 4 bytes a token; twice that, and 64 MB
    line_mb = (2 * HUGE_LINE_BYTES + 8 * HUGE_LINE_TOKENS) / 2**20 + 64
    model_readers = [("lm-ppl", ["-m", "{m}", "test.txt"]), ("lm-score", ["-m", "{m}", "test.txt"]),
                     ("lm-gen", ["-m", "{m}", "-n", "2", "--seed", "1"]), ("lm-info", ["{m}"]),
                     ("lm-train", ["-q", "{m}"]), ("lm-merge", ["{m}", "counts.lm"])]
    cases = []

    def sub(argv, m):
        return [a.replace("{m}", m) for a in argv]

    bad_models = {
        "garbage.bin": D, "empty.txt": D, "test.txt": D, "bad-utf8.txt": D, "missing.lm": D, "nul.txt": D,
        ".": E, "kn-trunc.lm": D, "kn-trunc-header.lm": D, "magic-only.lm": D, "kn-trailing.lm": D,
        "kn-twice.lm": D, "kn-newer.lm": D, "kn-v0.lm": D, "kn-trunc.lm.gz": D, "kn-trunc.lm.bz2": D,
        "kn-trunc.lm.xz": D, "kn-flip.lm.gz": D, "huge-claim.lm": D, "huge-claim.lm.gz": D,
        "nan-prob.arpa": D, "inf-prob.arpa": D, "neginf-prob.arpa": X, "pos-prob.arpa": D, "nan-backoff.arpa": D,
        "inf-backoff.arpa": D, "word-prob.arpa": D, "no-end.arpa": D, "half.arpa": D, "count-mismatch.arpa": D,
        "no-data.arpa": D, "empty-data.arpa": D, "bad-utf8.arpa": D, "dup-ngram.arpa": X, "kn-trunc.arpa.gz": D,
    }
    every_reader = {"garbage.bin", "empty.txt", "missing.lm", ".", "kn-trunc.lm", "kn-trailing.lm", "kn-trunc.lm.gz",
                    "huge-claim.lm.gz", "nan-prob.arpa", "kn-newer.lm"}
    for model, exp in bad_models.items():
        readers = model_readers if model in every_reader else [model_readers[0], model_readers[3]]
        for prog, argv in readers:
            if prog in ("lm-train", "lm-merge") and model.endswith(".arpa"):
                continue
            check = expect_finite_output if prog in ("lm-ppl", "lm-score", "lm-gen") else None
            cases.append(Case(f"model-input/{prog} {model}", prog, sub(argv, model), exp, check=check,
                              max_rss_mb=fx.rss.get(prog, fx.rss["lm-ppl"]) + 200 if "huge" in model else None,
                              timeout=60))
    # good compressed and ARPA models are read
    for model in ("kn.lm.gz", "kn.lm.bz2", "kn.lm.xz", "kn.arpa", "kn.arpa.gz", "ffnn.lm", "counts.lm"):
        cases.append(Case(f"model-input/lm-ppl {model} (good)", "lm-ppl", ["-m", model, "test.txt"], O,
                          check=expect_finite_output))
    cases.append(Case("model-input/lm-ppl model on stdin, garbage", "lm-ppl", ["test.txt"], D,
                      stdin=("file", "garbage.bin")))
    cases.append(Case("model-input/lm-ppl model on stdin, empty", "lm-ppl", ["test.txt"], D))
    cases.append(Case("model-input/lm-ppl -m - and text on stdin", "lm-ppl", ["-m", "-", "-"], E,
                      stdin=("file", "kn.lm")))

    # text inputs
    text_readers = [("lm-count", ["{t}"]), ("lm-ppl", ["-m", "kn.lm", "{t}"]), ("lm-score", ["-m", "kn.lm", "{t}"]),
                    ("lm-train", FFNN_BASE + ["{t}"])]
    bad_texts = {"garbage.bin": D, "bad-utf8.txt": D, "missing.txt": D, ".": E, "train-trunc.txt.gz": D,
                 "kn.lm": D, "nul.txt": X}
    for t, exp in bad_texts.items():
        for prog, argv in text_readers:
            if prog == "lm-train" and t in ("nul.txt",):
                continue
            cases.append(Case(f"text-input/{prog} {t}", prog, [a.replace("{t}", t) for a in argv], exp))
    for prog, argv in text_readers:
        cases.append(Case(f"text-input/{prog} empty file", prog, [a.replace("{t}", "empty.txt") for a in argv],
                          DATA if prog == "lm-train" else O))
        cases.append(Case(f"text-input/{prog} --encoding-errors replace", prog,
                          [a.replace("{t}", "bad-utf8.txt") for a in argv] + ["--encoding-errors", "replace"], O))
        cases.append(Case(f"text-input/{prog} gz text", prog, [a.replace("{t}", "train.txt.gz") for a in argv], O))
    cases += [
        Case("text-input/lm-count empty stdin", "lm-count", [], X, check=expect_stdout_model),
        Case("text-input/lm-train empty stdin", "lm-train", ["-q"], D),
        Case("text-input/lm-info empty stdin", "lm-info", [], D),
        Case("text-input/lm-gen empty stdin", "lm-gen", [], D),
        Case("text-input/lm-merge empty stdin", "lm-merge", ["-", "counts.lm"], D),
        Case("text-input/lm-merge no files", "lm-merge", [], USAGE),
        Case("text-input/lm-merge a single file", "lm-merge", ["counts.lm"], X),
        Case("text-input/lm-score stops at invalid UTF-8 after the lines before", "lm-score", ["-m", "kn.lm",
             "bad-utf8.txt"], D, check=expect_lines(20)),
        Case("text-input/lm-score odd lines, one output line each", "lm-score", ["-m", "kn.lm", "odd-lines.txt"], O,
             check=expect_lines(len(ODD_LINES))),
        Case("text-input/lm-score --words odd lines, one output line each", "lm-score",
             ["-m", "ffnn.lm", "--words", "odd-lines.txt"], O, check=expect_lines(len(ODD_LINES))),
        Case("text-input/lm-ppl odd lines", "lm-ppl", ["-m", "kn.lm", "--json", "odd-lines.txt"], O,
             check=expect_finite_output),
        Case("text-input/lm-count --chars odd lines", "lm-count", ["--chars", "odd-lines.txt"], O,
             check=expect_stdout_model),
        Case("text-input/lm-gen --prefix invalid UTF-8", "lm-gen", ["-m", "kn.lm", "--prefix", b"caf\xe9", "-n", "1",
             "--seed", "1"], E),
        Case("text-input/lm-gen --next invalid UTF-8", "lm-gen", ["-m", "kn.lm", "--next", b"\xff\xfe"], E),
        Case("text-input/lm-ppl invalid UTF-8 file name", "lm-ppl", ["-m", "kn.lm", b"caf\xe9.txt"], D),
        Case("text-input/lm-count --vocab missing", "lm-count", ["--vocab", "missing.txt", "small.txt"], E),
        Case("text-input/lm-count --vocab directory", "lm-count", ["--vocab", ".", "small.txt"], E),
        Case("text-input/lm-count --vocab garbage", "lm-count", ["--vocab", "garbage.bin", "small.txt"], D),
        Case("text-input/lm-train --valid missing", "lm-train", FFNN_BASE + ["--valid", "missing.txt", "small.txt"], E),
        Case("text-input/lm-train --valid garbage", "lm-train", FFNN_BASE + ["--valid", "garbage.bin", "small.txt"], D),
        Case("text-input/lm-train --from-arpa directory", "lm-train", ["-q", "--from-arpa", "."], E),
        Case("text-input/lm-train --from-arpa a model file", "lm-train", ["-q", "--from-arpa", "kn.lm"], X),
        # lines too long, endless lines
        Case("text-input/lm-count a 20 MB line", "lm-count", ["{fx}/hugeline.txt"], OK_DATA,
             max_rss_mb=fx.rss["lm-count lines"] + line_mb, timeout=120),
        Case("text-input/lm-score a 20 MB line", "lm-score", ["-m", "kn.lm", "{fx}/hugeline.txt"], OK_DATA,
             max_rss_mb=fx.rss["lm-score lines"] + line_mb, timeout=120),
        Case("text-input/lm-ppl a 20 MB line", "lm-ppl", ["-m", "kn.lm", "{fx}/hugeline.txt"], OK_DATA,
             max_rss_mb=fx.rss["lm-ppl lines"] + line_mb, timeout=120),
        Case("text-input/lm-count --max-line 1M, a 20 MB line", "lm-count", ["--max-line", "1M", "{fx}/hugeline.txt"],
             D, max_rss_mb=fx.rss["lm-count"] + 64, timeout=60),
        Case("text-input/lm-count endless line on stdin (no newline)", "lm-count", [], D,
             stdin=("stream", lambda: (b"a" * (1 << 20) for _ in range(400)), False),
             max_rss_mb=fx.rss["lm-count"] + 2 * 64 + 64, timeout=90),
    ]
    return cases


def mixing_cases() -> list:
    E, X = ERROR, ANY
    ppl_json = ["--json"]
    return [
        Case("mixing/lm-ppl --chars model, word text", "lm-ppl", ["-m", "chars.lm"] + ppl_json + ["test.txt"], X,
             check=expect_few_oovs),
        Case("mixing/lm-score --chars model, word text", "lm-score", ["-m", "chars.lm", "test.txt"], X,
             check=lambda r, w: _score_oovs(r)),
        Case("mixing/lm-ppl word model read --chars", "lm-ppl", ["-m", "kn.lm", "--chars"] + ppl_json + ["test.txt"], X,
             check=expect_few_oovs),
        Case("mixing/lm-ppl --lower counts, cased text", "lm-ppl", ["-m", "lower.lm"] + ppl_json + ["test.txt"], X,
             check=expect_few_oovs),
        Case("mixing/lm-ppl mixture of a char and a word model", "lm-ppl", ["-m", "chars.lm", "-m", "kn.lm", "test.txt"], E),
        Case("mixing/lm-score mixture of a char and a word model", "lm-score", ["-m", "kn.lm", "-m", "chars.lm",
             "test.txt"], E),
        Case("mixing/lm-ppl mixture of word models (kn, ffnn, arpa)", "lm-ppl", ["-m", "kn.lm", "-m", "ffnn.lm", "-m",
             "kn.arpa", "test.txt"], OK, check=expect_finite_output),
        Case("mixing/lm-ppl mixture of word models of different vocabularies", "lm-ppl", ["-m", "kn.lm", "-m", "kn2.lm",
             "test.txt"], OK, check=expect_finite_output),
        Case("mixing/lm-merge --chars with word counts", "lm-merge", ["chars.lm", "counts.lm"], E),
        Case("mixing/lm-merge --lower with cased counts", "lm-merge", ["lower.lm", "counts.lm"], E),
        Case("mixing/lm-merge --vocab-size 50 with full counts", "lm-merge", ["vocab50.lm", "counts.lm"], E),
        Case("mixing/lm-merge orders 2 and 3", "lm-merge", ["counts2.lm", "counts.lm"], E),
        Case("mixing/lm-merge an n-gram model", "lm-merge", ["kn.lm", "counts.lm"], E),
        Case("mixing/lm-merge an ffnn model", "lm-merge", ["ffnn.lm", "counts.lm"], E),
        Case("mixing/lm-merge an ARPA file", "lm-merge", ["kn.arpa", "counts.lm"], E),
        Case("mixing/lm-train counts of an ffnn model", "lm-train", ["-q", "ffnn.lm"], E),
        Case("mixing/lm-train an n-gram model as counts", "lm-train", ["-q", "kn.lm"], X),
        Case("mixing/lm-train -n 4 from 3-gram counts", "lm-train", ["-q", "-n", "4", "counts.lm"], E),
        Case("mixing/lm-gen --chars model printed as --words", "lm-gen", ["-m", "chars.lm", "--words", "-n", "1",
             "--seed", "1"], OK_USAGE),
    ]


def _score_oovs(res: Result) -> list:
    if res.rc != 0:
        return []
    rows = [ln.split(b"\t") for ln in res.stdout_head.splitlines() if ln]
    try:
        tokens = sum(int(r[1]) for r in rows)
        oovs = sum(int(r[2]) for r in rows)
    except (IndexError, ValueError):
        return [("wrong-output", "unexpected lm-score output")]
    if tokens and oovs > 0.3 * tokens:
        return [("silently-wrong", f"exit 0 with {oovs} of {tokens} tokens OOV: the text was not read as the model's")]
    return []


def misc_cases() -> list:
    return [
        Case("misc/lm-ppl good run", "lm-ppl", ["-m", "kn.lm", "test.txt"], OK, check=expect_finite_output),
        Case("misc/lm-info good run", "lm-info", ["kn.lm"], OK),
        Case("misc/lm-info --json ffnn", "lm-info", ["--json", "ffnn.lm"], OK),
        Case("misc/lm-gen ffnn", "lm-gen", ["-m", "ffnn.lm", "-n", "2", "--seed", "1"], OK),
        Case("misc/lm-count unknown option", "lm-count", ["--no-such-option"], USAGE),
        Case("misc/lm-train no input at all", "lm-train", ["-q"], DATA),
        Case("misc/lm-count a directory as input", "lm-count", ["."], ERROR),
        Case("misc/lm-count /proc file as input", "lm-count", ["/proc/self/status"], OK),
        Case("misc/lm-merge 300 shards with 64 open files allowed", "lm-merge", [f"s{i}.lm" for i in range(300)], OK_DATA,
             setup=lambda w: [os.symlink("counts.lm", w / f"s{i}.lm") for i in range(300)], nofile=64,
             check=expect_stdout_model, timeout=120),
        Case("misc/lm-count 300 files with 64 open files allowed", "lm-count", [f"t{i}.txt" for i in range(300)], OK,
             setup=lambda w: [os.symlink("small.txt", w / f"t{i}.txt") for i in range(300)], nofile=64,
             check=expect_stdout_model, timeout=120),
        Case("misc/lm-train --device cuda (on a machine without one: one line)", "lm-train",
             FFNN_BASE + ["--device", "cuda", "small.txt", "-o", "out.lm"], OK_DATA, output="out.lm", timeout=120),
        Case("misc/lm-ppl NUMBA_CACHE_DIR not a directory", "lm-ppl", ["-m", "kn.lm", "{fx}/big.txt"], OK,
             env={"NUMBA_CACHE_DIR": "{work}/small.txt/cache"}, timeout=120),
    ]


def model_sample_cases(fx: "Fixtures", mutations: list) -> list:
    """A few mutated model files through the programs (the bulk is checked in one process)."""
    cases = []
    for m in mutations:
        name = f"mutant-{m['id']}.lm"

        def setup(work, data=m["data"], name=name):
            (work / name).write_bytes(data)
        for prog, argv in (("lm-ppl", ["-m", name, "test.txt"]), ("lm-info", [name])):
            cases.append(Case(f"mutation/{prog} {m['id']}", prog, argv, DATA if m["policy"] == "refuse" else ANY,
                              setup=setup, check=expect_finite_output, timeout=60))
    return cases


def all_cases(fx: "Fixtures", mutation_sample: list | None = None) -> list:
    cases = (option_cases() + wrong_option_cases() + output_cases() + pipe_cases() + signal_cases(fx)
             + input_cases(fx) + mixing_cases() + misc_cases())
    if mutation_sample:
        cases += model_sample_cases(fx, mutation_sample)
    for c in cases:  # the table keeps the names it was written with; a program may have renamed one
        c.argv = [fx.renamed.get((c.prog, a), a) if isinstance(a, str) else a for a in c.argv]
    names = [c.name for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"duplicate case names: {dup}"
    return cases


# ----------------------------------------------------------------------------------------------
# Model mutations, checked in bulk in one worker process


def mutations(fx: "Fixtures", per_kind: int = 80, seed: int = 7) -> list:
    """Deterministic damaged copies of the fixtures' models: truncations and byte flips, in the header
    (where most of the meaning is) and in the arrays; compressed copies; ARPA damage."""
    rng = random.Random(seed)
    out = []
    for kind, fname in (("counts", "counts.lm"), ("ngram", "kn.lm"), ("ffnn", "ffnn.lm")):
        data = (fx.dir / fname).read_bytes()
        header_end, _ = _layout(data)
        n = per_kind
        for i in range(n):
            mid = f"{kind}-{i:03d}"
            r = rng.random()
            if i < n * 0.25:  # truncations: in the header, then anywhere
                cut = rng.randrange(1, header_end) if i % 2 == 0 else rng.randrange(header_end, len(data))
                out.append({"id": mid + "-trunc", "kind": kind, "base": fname, "data": data[:cut],
                            "what": f"truncated at {cut}/{len(data)}", "policy": "refuse"})
            elif i < n * 0.85:  # single-byte changes, mostly in the header
                pos = rng.randrange(0, header_end) if r < 0.75 else rng.randrange(header_end, len(data))
                b = bytearray(data)
                how = rng.choice(("bit", "byte", "inc"))
                if how == "bit":
                    b[pos] ^= 1 << rng.randrange(8)
                elif how == "inc":
                    b[pos] = (b[pos] + 1) % 256
                else:
                    b[pos] = (b[pos] + rng.randrange(1, 256)) % 256
                out.append({"id": f"{mid}-{how}", "kind": kind, "base": fname, "data": bytes(b),
                            "what": f"{how} change at {pos} ({'header' if pos < header_end else 'arrays'})",
                            "policy": "same"})
            else:  # compressed, then damaged
                comp = rng.choice((("gz", lambda x: gzip.compress(x, mtime=0)), ("xz", lzma.compress),
                                   ("bz2", bz2.compress)))
                c = bytearray(comp[1](data))
                if rng.random() < 0.5:
                    cut = rng.randrange(1, len(c))
                    c = c[:cut]
                    what = f"{comp[0]}, truncated at {cut}/{len(c)}"
                else:
                    pos = rng.randrange(len(c))
                    c[pos] ^= 1 << rng.randrange(8)
                    what = f"{comp[0]}, bit flip at {pos}"
                out.append({"id": f"{mid}-{comp[0]}", "kind": kind, "base": fname, "data": bytes(c), "suffix": "." + comp[0],
                            "what": what, "policy": "same"})
    arpa = (fx.dir / "kn.arpa").read_bytes()
    lines = arpa.split(b"\n")
    for i in range(per_kind // 2):
        mid = f"arpa-{i:03d}"
        r = rng.random()
        if r < 0.3:
            cut = rng.randrange(1, len(arpa))
            out.append({"id": mid + "-trunc", "kind": "arpa", "base": "kn.arpa", "data": arpa[:cut],
                        "what": f"truncated at {cut}", "policy": "refuse" if cut < len(arpa) - 8 else "any"})
        elif r < 0.7:
            b = bytearray(arpa)
            pos = rng.randrange(len(b))
            b[pos] = rng.choice(b"0123456789-.eE \t\nabc\xff")
            out.append({"id": mid + "-byte", "kind": "arpa", "base": "kn.arpa", "data": bytes(b),
                        "what": f"byte {pos} replaced", "policy": "any"})
        else:
            j = rng.randrange(len(lines))
            new = list(lines)
            new[j] = rng.choice([b"", b"-1.0\tfoo", b"nan\tthe", b"\\3-grams:", b"-0.5\tthe the the the the", b"junk"])
            out.append({"id": mid + "-line", "kind": "arpa", "base": "kn.arpa", "data": b"\n".join(new),
                        "what": f"line {j + 1} replaced", "policy": "any"})
    return out


def semantic_mutations(fx: "Fixtures") -> list:
    """Models whose checksums are right but whose contents are impossible: ids out of range, rows out of
    order or repeated, nan/inf/positive log-probabilities, wrong dtypes and shapes, a header that does
    not fit the arrays. Written by lmtools' own writer, so only the reader's validation can catch them.
    Policy: refuse (must be refused), same (refused, or exactly the intact model's scores), any (no
    crash, hang or runaway memory)."""
    import io

    import numpy as np

    from lmtools.io.modelfile import read_model
    from lmtools.io.modelwrite import write_model

    out = []
    for kind, fname in (("counts", "counts.lm"), ("ngram", "kn.lm"), ("ffnn", "ffnn.lm")):
        with open(fx.dir / fname, "rb") as f:
            h, arrays = read_model(f, fname)
        header = {k: v for k, v in h.items() if k not in ("kind", "arrays")}
        V = len(h["vocab"])

        def emit(tag, policy, what, hdr=None, arrs=None, kind=kind, fname=fname, header=header, arrays=arrays):
            buf = io.BytesIO()
            try:
                write_model(buf, kind, hdr if hdr is not None else header,
                            arrs if arrs is not None else dict(arrays))
            except Exception:  # noqa: BLE001 - the writer refuses it: nothing to read back
                return
            out.append({"id": f"{kind}-sem-{tag}", "kind": kind, "base": fname, "data": buf.getvalue(),
                        "what": what, "policy": policy})

        for name, arr in arrays.items():
            arr = np.array(arr)
            mid = arr.size // 2
            is_id = name.startswith(("prefix_", "word_", "ngrams_"))
            if arr.dtype.kind in "iu" and arr.size:
                for val, tag in ((V, "V"), (-1, "neg"), (2**31 - 1, "max")):
                    if not np.iinfo(arr.dtype).min <= val <= np.iinfo(arr.dtype).max:  # (uint8 bytes of words)
                        continue
                    m = arr.copy()
                    m.flat[mid] = val
                    emit(f"{name}-{tag}", "refuse" if is_id else "any", f"{name}[{mid}] = {val}",
                         arrs={**arrays, name: m})
                emit(f"{name}-float", "same", f"{name} stored as float64",
                     arrs={**arrays, name: arr.astype(np.float64)})
            if arr.dtype.kind == "f" and arr.size:
                for val, tag in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf"), (5.0, "+5")):
                    m = arr.copy()
                    m.flat[mid] = val
                    if name.startswith("logprob_"):
                        policy = "any" if tag == "-inf" else "refuse"
                    elif name.startswith("backoff_"):
                        policy = "any" if tag in ("+5", "-inf") else "refuse"
                    else:  # FFNN weights: any finite value is a model
                        policy = "any" if tag == "+5" else "refuse"
                    emit(f"{name}-{tag}", policy, f"{name}[{mid}] = {val}", arrs={**arrays, name: m})
            if arr.size > 1:
                emit(f"{name}-short", "refuse", f"{name} one element short", arrs={**arrays, name: arr.ravel()[:-1]})
            if name.startswith("ngrams_") and len(arr) > 4:
                m = arr.copy()
                m[[1, 2]] = m[[2, 1]]
                emit(f"{name}-unsorted", "same", f"{name}: rows 1 and 2 swapped", arrs={**arrays, name: m})
                m = arr.copy()
                m[2] = m[1]
                emit(f"{name}-duplicate", "same", f"{name}: row 1 repeated", arrs={**arrays, name: m})
        # a header that does not fit the arrays
        emit("vocab-short", "refuse", "one word less in the vocabulary", hdr={**header, "vocab": header["vocab"][:-1]})
        vocab = list(header["vocab"])
        vocab[6] = vocab[5]
        emit("vocab-duplicate", "same", "a word twice in the vocabulary", hdr={**header, "vocab": vocab})
        # (an FFNN's order is its context + 1: the reader may take it from there)
        emit("order-up", "same" if kind == "ffnn" else "refuse", "order + 1", hdr={**header, "order": header["order"] + 1})
        emit("order-down", "same", "order - 1", hdr={**header, "order": header["order"] - 1})
        if "sizes" in header:
            emit("sizes", "same", "sizes[1] + 1", hdr={**header, "sizes": [header["sizes"][0], header["sizes"][1] + 1]
                                                       + list(header["sizes"][2:])})
        for key in ("context", "dim", "hidden"):
            if key in header:
                emit(f"{key}-up", "refuse", f"{key} + 1", hdr={**header, key: header[key] + 1})
    return out


def _fingerprint(obj, test_lines: list[str]):
    """What a model says: its vocabulary and the scores of some test lines."""
    import numpy as np

    from lmtools.api import Model

    vocab = list(getattr(obj, "vocab", []) or [])
    m = Model(obj)
    scores = np.asarray(m.score_lines(test_lines), dtype=np.float64)
    return vocab, scores


def mutation_worker(directory: str, start: int) -> None:
    """Child process: check the mutations stored in DIR from index START on; one JSON line each."""
    import numpy as np

    from lmtools.errors import LmError
    from lmtools.io.models import load_model

    d = Path(directory)
    index = json.loads((d / "index.json").read_text())
    test_lines = (d / "test.txt").read_text().splitlines()
    originals = {}

    def alarm(signum, frame):
        raise TimeoutError("mutation check ran past 20 s")

    signal.signal(signal.SIGALRM, alarm)
    try:
        for base in sorted({m["base"] for m in index}):
            originals[base] = _fingerprint(load_model(str(d / base)), test_lines)
    except Exception as e:  # noqa: BLE001 - the intact models must load and score, or nothing can be judged
        print(json.dumps({"fatal": f"the intact models do not load and score: {type(e).__name__}: {e}"[:400]}),
              flush=True)
        return
    for i in range(start, len(index)):
        m = index[i]
        print(json.dumps({"start": i}), flush=True)
        t0 = time.monotonic()
        res = {"i": i}
        try:
            signal.alarm(20)
            if m["base"] not in originals:
                base = load_model(str(d / m["base"]))
                originals[m["base"]] = _fingerprint(base, test_lines)
            try:
                obj = load_model(str(d / m["file"]))
            except LmError as e:
                res["outcome"], res["detail"] = "refused", str(e)[:200]
            else:
                vocab, scores = _fingerprint(obj, test_lines)
                ovocab, oscores = originals[m["base"]]
                if vocab == ovocab and scores.shape == oscores.shape and np.array_equal(scores, oscores):
                    res["outcome"] = "accepted-same"
                elif not np.all(np.isfinite(scores)):
                    res["outcome"], res["detail"] = "accepted-nonfinite", f"non-finite scores: {scores[:3]}"
                else:
                    diff = "vocabulary differs" if vocab != ovocab else \
                        f"total log10 p {oscores.sum():.4f} -> {scores.sum():.4f}"
                    res["outcome"], res["detail"] = "accepted-different", diff
        except LmError as e:
            res["outcome"], res["detail"] = "refused-late", str(e)[:200]
        except TimeoutError as e:
            res["outcome"], res["detail"] = "hang", str(e)
        except MemoryError:
            res["outcome"], res["detail"] = "memory", "MemoryError (address space limited to 3 GB)"
        except Exception as e:  # noqa: BLE001 - what the campaign is looking for
            res["outcome"], res["detail"] = "crash", f"{type(e).__name__}: {str(e)[:200]}"
        finally:
            signal.alarm(0)
        res["seconds"] = round(time.monotonic() - t0, 3)
        print(json.dumps(res), flush=True)


def check_mutations(fx: "Fixtures", muts: list, work: Path, log=print) -> list:
    """Run the worker (restarted after a hard crash) over all mutations; one result dict per mutation."""
    d = work / "mutations"
    d.mkdir(exist_ok=True)
    index = []
    for m in muts:
        fname = m["id"] + ".lm" + m.get("suffix", "")
        (d / fname).write_bytes(m["data"])
        index.append({"id": m["id"], "file": fname, "base": m["base"]})
    for name in ("counts.lm", "kn.lm", "ffnn.lm", "kn.arpa", "test.txt"):
        shutil.copy2(fx.dir / name, d / name)
    (d / "index.json").write_text(json.dumps(index))
    results: dict[int, dict] = {}
    start = 0
    while start < len(muts):
        p = subprocess.Popen([sys.executable, __file__, "--mutation-worker", str(d), str(start)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            resource.prlimit(p.pid, resource.RLIMIT_AS, (3 << 30, 3 << 30))
        except (OSError, ValueError):
            pass
        current = None
        killer = None

        fatal = None
        for line in p.stdout:
            obj = json.loads(line)
            if "fatal" in obj:
                fatal = obj["fatal"]
            elif "start" in obj:
                current = obj["start"]
                if killer:
                    killer.cancel()
                killer = threading.Timer(60, lambda: os.killpg(p.pid, signal.SIGKILL))
                killer.start()
            else:
                results[obj["i"]] = obj
                current = None
        if killer:
            killer.cancel()
        err = p.stderr.read().decode("utf-8", "replace")
        rc = p.wait()
        if fatal or (rc != 0 and current is None and not results):
            log(f"reliability: mutation check not run: {fatal or _last_line(err)}")
            return [{"id": "intact-models", "kind": "-", "what": "the intact models through load_model",
                     "outcome": "harness", "detail": fatal or _last_line(err), "failure": "harness"}]
        if current is None:
            if rc != 0 and len(results) < len(muts):
                raise SystemExit(f"reliability: the mutation worker failed (exit {rc}): {err[-800:]}")
            break
        results[current] = {"i": current, "outcome": "crash",
                            "detail": f"the process died ({'signal ' + signal.Signals(-rc).name if rc < 0 else f'exit {rc}'}) "
                                      + _last_line(err)[:150]}
        start = current + 1
    out = []
    for i, m in enumerate(muts):
        r = results.get(i, {"outcome": "missing"})
        outcome = r["outcome"]
        fail = None
        policy = m["policy"]
        if outcome in ("crash", "hang", "memory", "missing"):
            fail = {"crash": "model-reader-crash", "hang": "timeout", "memory": "memory", "missing": "harness"}[outcome]
        elif outcome == "accepted-nonfinite" and policy != "any":
            fail = "silently-wrong"
        elif outcome.startswith("accepted") and policy == "refuse":
            fail = "silently-wrong"
        elif outcome == "accepted-different" and policy == "same":
            fail = "silently-wrong"
        out.append({"id": m["id"], "kind": m["kind"], "what": m["what"], "outcome": outcome,
                    "detail": r.get("detail", ""), "failure": fail})
    return out


# ----------------------------------------------------------------------------------------------
# Running the table


def run_all(cases: list, fx: Fixtures, workers: int = 2, base_tmp: str | None = None, log=None) -> list:
    results = [None] * len(cases)

    def one(i):
        try:
            results[i] = run_case(cases[i], fx, base_tmp)
        except Exception as e:  # noqa: BLE001 - a harness error is reported as such, not hidden
            c = cases[i]
            results[i] = Result(c.name, c.category, c.prog, describe(c), c.expect, None, 0.0, 0.0, "", 0,
                                [("harness", f"{type(e).__name__}: {e}")])
        if log:
            r = results[i]
            log(f"  {'ok  ' if r.passed else 'FAIL'} {r.seconds:5.1f}s  {r.name}"
                + ("" if r.passed else f"  [{', '.join(sorted({c for c, _ in r.failures}))}]"))

    # the slow ones first, so that two workers end together
    order = sorted(range(len(cases)), key=lambda i: -cases[i].timeout)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, order))
    return results


def summarize(results: list, mutation_results: list) -> dict:
    by_cat: dict[str, list] = {}
    for r in results:
        c = by_cat.setdefault(r.category, [0, 0])
        c[0] += 1
        c[1] += r.passed
    fail_classes: dict[str, list] = {}
    for r in results:
        for cls, detail in r.failures:
            fail_classes.setdefault(cls, []).append((r.name, detail))
    mut_outcomes: dict[str, int] = {}
    for m in mutation_results:
        mut_outcomes[m["outcome"]] = mut_outcomes.get(m["outcome"], 0) + 1
        if m["failure"]:
            fail_classes.setdefault(m["failure"], []).append((f"model-file/{m['id']} ({m['what']})", m["detail"]))
    return {"cases": len(results), "passed": sum(r.passed for r in results),
            "categories": by_cat, "failure_classes": fail_classes,
            "mutations": len(mutation_results), "mutations_passed": sum(not m["failure"] for m in mutation_results),
            "mutation_outcomes": mut_outcomes}


def report_text(results: list, mutation_results: list, summary: dict) -> str:
    out = []
    out.append(f"{'category':<14} {'cases':>6} {'passed':>7} {'failed':>7}")
    for cat, (n, ok) in sorted(summary["categories"].items()):
        out.append(f"{cat:<14} {n:>6} {ok:>7} {n - ok:>7}")
    out.append(f"{'model-file':<14} {summary['mutations']:>6} {summary['mutations_passed']:>7} "
               f"{summary['mutations'] - summary['mutations_passed']:>7}   (in-process: "
               + ", ".join(f"{k} {v}" for k, v in sorted(summary["mutation_outcomes"].items())) + ")")
    total = summary["cases"] + summary["mutations"]
    passed = summary["passed"] + summary["mutations_passed"]
    out.append(f"{'total':<14} {total:>6} {passed:>7} {total - passed:>7}")
    if summary["failure_classes"]:
        out.append("")
        out.append("failures by class (a case may fail in several):")
        for cls, items in sorted(summary["failure_classes"].items(), key=lambda kv: -len(kv[1])):
            out.append(f"  {cls}: {len(items)}")
    failed = [r for r in results if not r.passed]
    if failed:
        out.append("")
        out.append("failed cases:")
        for r in failed:
            classes = ", ".join(sorted({c for c, _ in r.failures}))
            out.append(f"- [{classes}] {r.name}: exit {r.rc}")
            out.append(f"    $ {r.command}")
            for c, d in r.failures:
                out.append(f"    {c}: {d}")
            first = r.first_stderr_line()
            if first:
                out.append(f"    stderr: {first}")
    bad_m = [m for m in mutation_results if m["failure"]]
    if bad_m:
        out.append("")
        out.append("failed model-file mutations (load_model in one process):")
        for m in bad_m:
            out.append(f"- [{m['failure']}] {m['id']}: {m['what']}: {m['outcome']} {m['detail']}")
    return "\n".join(out)


def write_record(path: Path, summary: dict, text: str, command: str, seconds: float) -> None:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "lmtools"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        where = f"commit {head}" + (" with uncommitted changes under lmtools/" if dirty else "")
    except OSError:
        where = "this checkout"
    total = summary["cases"] + summary["mutations"]
    passed = summary["passed"] + summary["mutations_passed"]
    body = [
        "# Reliability: the bad-input campaign",
        "",
        f"Run {date} on {where}, {seconds:.0f} s wall on 2 workers:",
        "",
        f"    {command}",
        "",
        "Every lm-* program given bad input (garbage, empty, invalid UTF-8, huge and endless lines, damaged",
        "and impossible model and ARPA files, impossible option values, options of another program or",
        "method, -o onto devices, fifos, symlinks, directories, missing directories and the input itself,",
        "| head, SIGTERM/SIGINT/SIGHUP mid-run, full and closed standard streams, character/word and",
        "mismatched models mixed). Each case runs in its own directory and is checked for its exit status,",
        "exactly one `lm-x: error:` line, no traceback, no temporary file left, no file but the output",
        "touched (bytes, mtime and type of every entry), time and, where stated, peak memory.",
        "Model files are also mutated in bulk (truncations, byte flips in header and arrays, damaged",
        "gzip/xz/bzip2 copies, ARPA damage; and, written with correct checksums, impossible contents: ids",
        "out of range, rows out of order or repeated, nan/inf/positive log-probabilities, wrong dtypes and",
        "shapes, a header that disagrees with the arrays) and loaded in one process: each must be refused",
        "with one error, or give exactly the intact model's scores (a changed FFNN weight or count is a",
        "valid model: only no crash is asked there).",
        "",
        f"Cases tried: {total} ({summary['cases']} program runs, {summary['mutations']} mutated model files); "
        f"passed: {passed}; failed: {total - passed}.",
        "",
        "```",
        text,
        "```",
        "",
    ]
    # Sections kept by hand below the campaign's (the fuzzing record) survive a new --record.
    record = "\n".join(body)
    if path.exists():
        _, heading, rest = path.read_text().partition("\n## Fuzzing")
        if heading:
            record += heading.lstrip("\n") + rest
    path.write_text(record)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")
    ap.add_argument("-k", action="append", default=[], metavar="WORD",
                    help="only the cases whose name contains WORD (repeatable; 'model-file' for the mutations)")
    ap.add_argument("-j", "--workers", type=int, default=2)
    ap.add_argument("--mutations", type=int, default=150, metavar="N", help="mutations per model kind (default 150)")
    ap.add_argument("--record", action="store_true", help="write RELIABILITY.md at the repository root")
    ap.add_argument("--list", action="store_true", help="list the case names and exit")
    ap.add_argument("--mutation-worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.mutation_worker:
        mutation_worker(args.mutation_worker[0], int(args.mutation_worker[1]))
        return 0
    t0 = time.monotonic()

    def log(s):
        print(s, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="lmreliability.") as tmp:
        fx = Fixtures(Path(tmp) / "fixtures")
        fx.dir.mkdir()
        log("reliability: building fixtures")
        fx.build(log)
        fixtures_before = snapshot(fx.dir)
        muts = mutations(fx, per_kind=args.mutations) + semantic_mutations(fx) if args.mutations > 0 else []
        sample = [m for m in muts if m["id"].endswith(("000-trunc", "001-trunc"))] + \
            [m for m in muts if m["kind"] != "arpa" and "-bit" in m["id"]][:6]
        cases = all_cases(fx, sample)
        if args.k:
            cases = [c for c in cases if any(w in c.name for w in args.k)]
        if args.list:
            for c in cases:
                print(f"{c.name}\t{describe(c)}\texpect {c.expect}")
            return 0
        mutation_results = []
        if muts and (not args.k or any(w in "model-file" for w in args.k)):
            log(f"reliability: {len(muts)} mutated model files through load_model")
            mutation_results = check_mutations(fx, muts, Path(tmp), log)
        log(f"reliability: {len(cases)} cases, {args.workers} at a time")
        results = run_all(cases, fx, args.workers, tmp, log)
        for problem in compare(fixtures_before, snapshot(fx.dir), set(), set()):
            results.append(Result("fixtures/shared inputs unchanged", "fixtures", "-", "-", OK, 0, 0, 0, "", 0,
                                  [problem]))
    summary = summarize(results, mutation_results)
    text = report_text(results, mutation_results, summary)
    seconds = time.monotonic() - t0
    if args.json:
        json.dump({"summary": {k: v for k, v in summary.items() if k != "failure_classes"},
                   "failure_classes": {k: len(v) for k, v in summary["failure_classes"].items()},
                   "results": [r.to_json() for r in results], "mutations": mutation_results and
                   [{k: v for k, v in m.items()} for m in mutation_results],
                   "seconds": round(seconds, 1)}, sys.stdout, indent=1)
        print()
    else:
        print(text)
    if args.record:
        cmd = "python bench/reliability.py" + "".join(f" -k {w!r}" for w in args.k) + \
            (f" --mutations {args.mutations}" if args.mutations != 150 else "") + " --record"
        write_record(ROOT / "RELIABILITY.md", summary, text, cmd, seconds)
        log(f"reliability: wrote {ROOT / 'RELIABILITY.md'}")
    failed = summary["cases"] - summary["passed"] + summary["mutations"] - summary["mutations_passed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
