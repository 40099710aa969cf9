"""Running our programs and peer tools side by side: whole-process wall time and peak memory.

Peers are found on PATH or through environment variables (KenLM: LMPLZ, KENLM_QUERY,
KENLM_BUILD_BINARY or KENLM_BIN, a directory holding lmplz/query/build_binary). They are never
part of lmtools; a missing peer is reported as such and skipped.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PTB = SHARED / "data" / "ptb"
VENV_BIN = Path(sys.executable).parent


def peer(name: str, env_var: str | None = None) -> str | None:
    """Path of a peer program: $ENV_VAR, $KENLM_BIN/name, or PATH; None when absent."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    kb = os.environ.get("KENLM_BIN")
    if kb and (Path(kb) / name).exists():
        return str(Path(kb) / name)
    return shutil.which(name)


def ours(name: str) -> str:
    p = VENV_BIN / name
    return str(p) if p.exists() else shutil.which(name) or name


def timed(cmd: str, repeat: int = 3, env: dict | None = None) -> dict:
    """Median wall time over ``repeat`` runs and peak memory in MB (GNU time's maximum resident set:
    the largest single process of a pipeline, as wait4 reports it)."""
    walls, peaks = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "bash", "-o", "pipefail", "-c", cmd],
                           capture_output=True, env=dict(os.environ, **(env or {})))
        walls.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stderr.decode(errors='replace')[-2000:]}")
        peaks.append(int(r.stderr.decode().strip().splitlines()[-1]) / 1024)
    return {"cmd": cmd, "wall": statistics.median(walls), "walls": walls, "peak_mb": max(peaks)}


def table(rows: list[list], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
