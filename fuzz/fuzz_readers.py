"""Fuzz target for the model-file and ARPA readers.

Every input must either load or be refused with LmError (one line for the user); any other
exception is a crash. Seeds are small real models (counts, n-gram, ffnn; plain and gzip/bzip2/xz)
and an ARPA file, made at start from a slice of Tiny Shakespeare.

    python fuzz/fuzz_readers.py --iterations 20000            # atheris when installed, else a plain loop
    python fuzz/fuzz_readers.py --plain --iterations 20000    # the plain random-mutation loop
    python fuzz/fuzz_readers.py --replay FILE...              # run saved inputs (crash files) once

With atheris (coverage-guided, libFuzzer) the first byte of an input picks the reader; the plain
loop mutates the seeds (byte flips, truncation, splices, repeats, numbers) with a fixed seed, so a
run is reproducible. Crashing inputs are written to fuzz/crashes/ (plain loop) or where libFuzzer
says; each one found becomes a regression test (tests/test_readers_property.py).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import io
import lzma
import os
import random
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("model", "arpa", "auto", "file")  # the reader an input goes to (first byte, modulo)


def _imports():
    global LmError, load_model, read_arpa
    from lmtools import messages
    from lmtools.errors import LmError
    from lmtools.io.arpa import read_arpa
    from lmtools.io.models import load_model

    messages.warn = lambda message: None  # format-1 warnings and the like: not what is fuzzed


def seeds() -> list[tuple[str, bytes]]:
    """(mode, bytes) of small real inputs."""
    from tests.model_seeds import small_models

    models = small_models((ROOT / "lmtools" / "data" / "tinyshakespeare.txt").read_bytes()[:400], seed=0, dim=3,
                          hidden=4)
    out = [("model", models[kind]) for kind in ("counts", "ngram", "ffnn")]
    out.append(("arpa", models["arpa"]))
    out.append(("auto", models["arpa"]))
    for comp in (gzip.compress, bz2.compress, lzma.compress):
        out.append(("file", comp(models["ngram"])))
        out.append(("file", comp(models["arpa"])))
    return out


_TMP = None


def run_one(mode: str, data: bytes) -> None:
    """Feed one input to a reader; LmError is a refusal, anything else propagates (a crash), a
    Python warning included (it would be a stray line on stderr)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run_one(mode, data)


def _run_one(mode: str, data: bytes) -> None:
    try:
        if mode == "model":  # as stored (counts not sorted: lm-info, lm-merge)
            load_model(io.BufferedReader(io.BytesIO(data)), sort_counts=False)
        elif mode == "arpa":
            read_arpa(io.BytesIO(data), warn=lambda s: None, name="fuzz")
        elif mode == "auto":
            load_model(io.BufferedReader(io.BytesIO(data)))
        else:
            global _TMP
            if _TMP is None:
                _TMP = tempfile.mkdtemp(prefix="lmtools-fuzz-")
            path = os.path.join(_TMP, "input")
            with open(path, "wb") as f:
                f.write(data)
            load_model(path)
    except LmError as e:
        if "\n" in str(e):
            raise AssertionError(f"a refusal of more than one line: {e!r}") from None


# ----------------------------------------------------------------------------------------------
# The plain loop

INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xc0", b"\xc1", b"\xc4\xff", b"\xc6\xff\xff\xff\xff",
               b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"nan", b"inf", b"-inf", b"1e400", b"-99", b"0.5",
               b"\n", b"\t", b" ", b"\\", b"\\data\\", b"\\end\\", b"ngram 1=", b"-grams:", b"<s>", b"</s>", b"<unk>"]


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        op = rng.randrange(8)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:  # flip bits of one byte
            b[min(i, len(b) - 1)] ^= rng.randrange(1, 256)
        elif op == 1:  # truncate
            del b[i:]
        elif op == 2:  # insert an interesting token
            b[i:i] = rng.choice(INTERESTING)
        elif op == 3 and b:  # overwrite with an interesting token
            tok = rng.choice(INTERESTING)
            b[i:i + len(tok)] = tok
        elif op == 4 and b:  # delete a span
            del b[i:i + rng.randrange(1, 16)]
        elif op == 5 and b:  # repeat a span
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randrange(1, 64)]
        elif op == 6:  # splice in a piece of another seed
            other = rng.choice(pool)
            j = rng.randrange(len(other) + 1)
            b[i:] = other[j:]
        elif op == 7 and b:  # a random byte
            b[min(i, len(b) - 1)] = rng.randrange(256)
        if not b and rng.random() < 0.5:
            break
    return bytes(b)


def plain(iterations: int, seed: int, crash_dir: Path) -> int:
    _imports()
    corpus = seeds()
    pool = [d for _, d in corpus]
    for mode, data in corpus:  # the seeds themselves must load
        run_one(mode, data)
    rng = random.Random(seed)
    crashes = 0
    t0 = time.time()
    for it in range(1, iterations + 1):
        mode, data = rng.choice(corpus)
        if rng.random() < 0.1:
            mode = rng.choice(MODES)
        data = mutate(rng, data, pool)
        try:
            run_one(mode, data)
        except Exception:  # a crash: keep the input, go on
            crashes += 1
            crash_dir.mkdir(parents=True, exist_ok=True)
            name = crash_dir / f"crash-{mode}-{hashlib.sha1(data).hexdigest()[:16]}"
            name.write_bytes(bytes([MODES.index(mode)]) + data)
            print(f"crash {crashes} at iteration {it} ({mode}), input saved as {name}", file=sys.stderr)
            traceback.print_exc()
        if it % 5000 == 0:
            print(f"{it} iterations, {crashes} crashes, {time.time() - t0:.0f} s", file=sys.stderr)
    print(f"plain loop: {iterations} iterations (seed {seed}), {crashes} crashes, {time.time() - t0:.0f} s",
          file=sys.stderr)
    return 1 if crashes else 0


# ----------------------------------------------------------------------------------------------
# atheris


def fuzz_with_atheris(iterations: int, extra: list[str]) -> int:
    import atheris

    with atheris.instrument_imports():
        _imports()
    corpus = Path(tempfile.mkdtemp(prefix="lmtools-fuzz-corpus-"))
    for k, (mode, data) in enumerate(seeds()):
        (corpus / f"seed-{k}").write_bytes(bytes([MODES.index(mode)]) + data)

    def test_one_input(raw: bytes) -> None:
        if not raw:
            return
        run_one(MODES[raw[0] % len(MODES)], raw[1:])

    atheris.Setup([sys.argv[0], f"-runs={iterations}", "-seed=1", "-max_len=65536", *extra, str(corpus)],
                  test_one_input)
    atheris.Fuzz()  # exits the process: 0 when the runs end without a crash
    return 0


def replay(paths: list[str]) -> int:
    _imports()
    bad = 0
    for p in paths:
        raw = Path(p).read_bytes()
        try:
            run_one(MODES[raw[0] % len(MODES)], raw[1:]) if raw else None
            print(f"{p}: ok")
        except Exception:
            bad += 1
            print(f"{p}: crash", file=sys.stderr)
            traceback.print_exc()
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--plain", action="store_true", help="the plain random-mutation loop even if atheris is installed")
    ap.add_argument("--crash-dir", default=str(ROOT / "fuzz" / "crashes"))
    ap.add_argument("--replay", nargs="+", metavar="FILE", help="run saved inputs once")
    args, extra = ap.parse_known_args()
    if args.replay:
        return replay(args.replay)
    if not args.plain:
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("atheris is not installed: the plain random-mutation loop", file=sys.stderr)
        else:
            return fuzz_with_atheris(args.iterations, extra)
    return plain(args.iterations, args.seed, Path(args.crash_dir))


if __name__ == "__main__":
    sys.exit(main())
