"""The scoring kernels compiled ahead of time: lm-ppl and lm-score without numba at run time.

Importing numba and loading its cached kernels costs a scoring process ~0.3 s and ~90 MB (numba's
own modules and LLVM's library), more than scoring a few MB of text. ``build()`` compiles
kernels.query.score_lines_from (per-line sums: the body of the run-time kernel ``score_lines``),
score_tokens_from (per-token results, as ``score_ids`` after tokenizing) and line_sums, from the
same source as the run-time kernels (so the same numbers), with numba's ahead-of-time compiler
(numba.pycc) into an extension module beside this file; ``load()`` imports it, numba unimported. ``make install`` builds it (``python -m
lmtools.kernels.aot``); where it is absent or stale the run-time kernels serve as before.

Built without numba's runtime (NRT): the kernel allocates nothing (the caller passes its
``records.BlockArrays``), so no reference counts are kept per token. Freshness: the module carries a
hash of the kernels' sources and of numba's and numpy's versions; a module built from other sources
or for other versions is not used. The compiled wrapper checks nothing it is given: ``score_lines``
below checks every argument first.
"""

import importlib
import importlib.util
import os
import sys
import zlib
from pathlib import Path

MODULE = "_scoring_aot"
HERE = Path(__file__).resolve().parent
# the sources the compiled kernel is made from: a change to any makes the module stale
SOURCES = ("aot.py", "query.py", "records.py", "tokenize.py", "../constants.py")  # constants: LOG_ZERO


def source_key(versions: bytes | None = None) -> int:
    """A 63-bit checksum (CRC-32 and Adler-32) of the kernels' sources and of the version files of
    numba (the compiler) and numpy (whose C interface the module's argument handling uses); versions:
    those files' bytes. A staleness check, not a defence: zlib's checksums, not hashlib (whose
    OpenSSL library costs every scoring process 3.5 MB of memory and 4 ms)."""
    data = b"".join((HERE / name).read_bytes() for name in SOURCES)
    data += _version_file("numba", "_version.py") + _version_file("numpy", "version.py") if versions is None else versions
    data += len(data).to_bytes(8, "little")
    return ((zlib.crc32(data) << 32) | zlib.adler32(data)) >> 1


def _version_file(package: str, name: str) -> bytes:
    """A package's version file as it is on disk, found without importing the package
    (importlib.metadata took 14 ms, most of a one-line lm-ppl's added time)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return b"?"
    try:
        return (Path(spec.origin).parent / name).read_bytes()
    except OSError:
        return b"?"


_loaded = None


def load():
    """The compiled module, or None: not built, built from other sources, or disabled
    (LMTOOLS_AOT=0). Never imports numba."""
    global _loaded
    if _loaded is None:
        _loaded = False
        if os.environ.get("LMTOOLS_AOT", "1") != "0":
            try:
                mod = importlib.import_module(f"lmtools.kernels.{MODULE}")
                if mod.source_key() == source_key():
                    _loaded = mod
            except (ImportError, OSError):
                pass
    return _loaded or None


# The compiled kernels' arguments, in groups: (name, dtype, ndim (0: a scalar), read-only or written).
# The compiled module's wrapper does not check what it is given (a wrong dtype reads the wrong memory):
# ``_call`` checks every argument against these first.
TEXT = (("buf", "uint8", 1, "ro"), ("i", "int64", 0, ""), ("end", "int64", 0, ""))
WORDS = (("hashes", "uint64", 1, "ro"), ("slots", "int32", 1, "ro"), ("pool", "uint8", 1, "ro"),
         ("offsets", "int64", 1, "ro"), ("remap", "int32", 1, "ro"))  # the WordTable, and remap
MODEL = (("order", "int64", 0, ""), ("uni_lp", "float32", 1, "ro"), ("uni_bo", "float32", 1, "ro"),
         ("tab", "uint64", 1, "ro"), ("ftab", "float32", 1, "ro"), ("utab", "uint32", 1, "ro"),
         ("base", "int64", 1, "ro"),
         ("table_slots", "int64", 1, "ro"), ("seed", "uint64", 0, ""), ("closed", "bool", 0, ""))  # HashedModel
LINE_SUMS = (("lp", "float64", 1, "rw"), ("lp_nz", "float64", 1, "rw"), ("lp_iv", "float64", 1, "rw"),
             ("tokens", "int64", 1, "rw"), ("oovs", "int64", 1, "rw"), ("zeros", "int64", 1, "rw"))
BLOCK = (("ids", "int32", 1, "rw"), ("oov", "bool", 1, "rw"), ("block_lp", "float64", 1, "rw"),
         ("block_order", "int32", 1, "rw"), ("zero", "bool", 1, "rw"), ("bo", "float64", 2, "rw"),
         ("keys", "uint64", 2, "rw"), ("tops", "int64", 1, "rw"))  # BlockArrays
STATE = (("state", "int64", 1, "rw"),)  # out: three numbers, as each kernel says
# score_lines: li (the first line's index in the LineSums) after the text
SCORE_LINES = TEXT + (("li", "int64", 0, ""),) + WORDS + MODEL + LINE_SUMS + BLOCK + STATE
SCORE_TOKENS = TEXT + WORDS + MODEL + BLOCK + STATE
# line_sums: a scored stream (ids, oov, log10 p, zero) into the LineSums from entry ``first``
LINE_SUMS_OF = ((("ids", "int32", 1, "ro"), ("oov", "bool", 1, "ro"), ("logp", "float64", 1, "ro"),
                 ("zero", "bool", 1, "ro")) + LINE_SUMS + (("first", "int64", 0, ""),))


def _call(kernel, spec, values):
    """``kernel(*values)`` (scalars as the module takes them) once every array has been checked
    against ``spec``."""
    import numpy as np

    for (arg, dtype, ndim, access), v in zip(spec, values, strict=True):
        if ndim == 0:
            continue
        if (not isinstance(v, np.ndarray) or v.dtype != np.dtype(dtype) or v.ndim != ndim
                or not v.flags.c_contiguous or (access == "rw" and not v.flags.writeable)):
            raise TypeError(f"{kernel.__name__}: {arg} must be a C-contiguous {ndim}-d {dtype} array")
    # the module's arrays are compiled as not aliasing (build): an array it writes shares no memory
    # with any other argument (read-only ones may: tab, ftab and utab are one array)
    spans = [(arg, access, v.ctypes.data, v.ctypes.data + v.nbytes)
             for (arg, _, ndim, access), v in zip(spec, values) if ndim and v.nbytes]
    for k, (arg, access, lo, hi) in enumerate(spans):
        if access == "rw" and any(lo < b and a < hi for j, (_, _, a, b) in enumerate(spans) if j != k):
            raise ValueError(f"{kernel.__name__}: {arg} shares memory with another argument")
    scalars = {"int64": int, "uint64": np.uint64, "bool": bool}
    return kernel(*(scalars[dtype](v) if ndim == 0 else v for (_, dtype, ndim, _), v in zip(spec, values)))


def _check_text(name, buf, i, end, M, A, state) -> None:
    """The text's bounds, and the BlockArrays A against the model M (their sizes are not checked
    inside the kernels)."""
    from lmtools.kernels.records import RING

    if (not 0 <= i <= end <= buf.size or state.size < 3 or any(a.size != A.ids.size for a in A[:5])
            or A.bo.shape != (2, M.order + 1) or A.keys.shape != (RING, M.order + 1) or A.tops.size != RING):
        raise ValueError(f"{name}: arguments out of range")


def score_lines(mod, buf, i, end, li, words, remap, M, out, A, state) -> int:
    """``mod.score_lines``: kernels.query.score_lines_from over buf[i:end] (whole lines, into the
    ``LineSums`` out from line li, in blocks of the ``BlockArrays`` A), with state[:2] = (next line's
    index, literal <s>/</s> dropped); returns where it stopped (before a line too long for A). Every
    argument is checked first. The records are those of kernels/records.py."""
    _check_text("score_lines", buf, i, end, M, A, state)
    if not 0 <= li <= out.lp.size or any(a.size != out.lp.size for a in out):
        raise ValueError("score_lines: arguments out of range")
    return _call(mod.score_lines, SCORE_LINES, (buf, i, end, li, *words, remap, *M, *out, *A, state))


def score_tokens(mod, buf, i, end, words, remap, M, A, state) -> int:
    """``mod.score_tokens``: kernels.query.score_tokens_from over buf[i:end] (whole lines): every
    token's id, OOV flag, log10 p, matched order and zero flag into A's first arrays, with state[:3] =
    (lines, literal <s>/</s> dropped, where it stopped: before a line that would not fit in A);
    returns the number of tokens (<s> and </s> included). Every argument is checked first."""
    _check_text("score_tokens", buf, i, end, M, A, state)
    return _call(mod.score_tokens, SCORE_TOKENS, (buf, i, end, *words, remap, *M, *A, state))


def line_sums(mod, ids, oov, logp, zero, out, first) -> int:
    """``mod.line_sums``: kernels.query.line_sums of a scored stream into the ``LineSums`` out from
    entry ``first``; returns the number of lines. Every argument is checked first: the stream must
    start a line, and out hold its lines."""
    import numpy as np

    from lmtools.kernels.records import BOS, NO_CONTEXT

    n = ids.size
    if (any(a.size != n for a in (oov, logp, zero)) or any(a.size != out.lp.size for a in out)
            or (n and ids[0] != BOS and ids[0] != NO_CONTEXT)):
        raise ValueError("line_sums: arguments out of range")
    lines = int(np.count_nonzero((ids == BOS) | (ids == NO_CONTEXT)))
    if not 0 <= first <= out.lp.size - lines:
        raise ValueError("line_sums: arguments out of range")
    return _call(mod.line_sums, LINE_SUMS_OF, (ids, oov, logp, zero, *out, first))


def build(output_dir: Path = HERE, verbose: bool = False) -> Path:
    """Compile the module into output_dir; returns its path. Needs numba and a C compiler."""
    import shutil
    import tempfile

    import numba
    import numpy as np
    from numba import types
    from numba.pycc import CC
    import numba.pycc.compiler as pycc_compiler

    from lmtools.kernels.query import line_sums, score_lines_from, score_tokens_from
    from lmtools.kernels.records import BlockArrays, HashedModel, LineSums, WordTable

    key = source_key()
    cc = CC(MODULE)
    # built beside its place and renamed there: a process importing the module meanwhile sees the old
    # file or the new one, never a part of one
    staging = Path(tempfile.mkdtemp(prefix=".aot-", dir=output_dir))
    cc.output_dir = str(staging)
    cc.use_nrt = False
    cc.verbose = verbose

    scalar = {"int64": types.int64, "uint64": types.uint64, "bool": types.boolean}

    def signature(spec):
        return types.int64(*(scalar[dtype] if ndim == 0 else
                             types.Array(numba.from_dtype(np.dtype(dtype)), ndim, "C", readonly=(access == "ro"))
                             for _, dtype, ndim, access in spec))

    @cc.export("score_lines", signature(SCORE_LINES))
    def score_lines(buf, i, end, li, vh, vs, vp, vo, remap, N, uni_lp, uni_bo, tab, ftab, utab, base, slots, seed,
                    closed, o_lp, o_nz, o_iv, o_tok, o_oov, o_zero, ids, oov, lp, order, zero, bo, keys, tops, state):
        M = HashedModel(N, uni_lp, uni_bo, tab, ftab, utab, base, slots, seed, closed)
        out = LineSums(o_lp, o_nz, o_iv, o_tok, o_oov, o_zero)
        A = BlockArrays(ids, oov, lp, order, zero, bo, keys, tops)
        stop, li, dropped = score_lines_from(buf, i, end, WordTable(vh, vs, vp, vo), remap, M, out, li, A)
        state[0] = li
        state[1] = dropped
        return stop

    @cc.export("score_tokens", signature(SCORE_TOKENS))
    def score_tokens(buf, i, end, vh, vs, vp, vo, remap, N, uni_lp, uni_bo, tab, ftab, utab, base, slots, seed,
                     closed, ids, oov, lp, order, zero, bo, keys, tops, state):
        M = HashedModel(N, uni_lp, uni_bo, tab, ftab, utab, base, slots, seed, closed)
        A = BlockArrays(ids, oov, lp, order, zero, bo, keys, tops)
        k, stop, lines, dropped = score_tokens_from(buf, i, end, WordTable(vh, vs, vp, vo), remap, M, A)
        state[0] = lines
        state[1] = dropped
        state[2] = stop
        return k

    @cc.export("line_sums", signature(LINE_SUMS_OF))
    def _line_sums(ids, oov, logp, zero, o_lp, o_nz, o_iv, o_tok, o_oov, o_zero, first):
        return line_sums(ids, oov, logp, zero, LineSums(o_lp, o_nz, o_iv, o_tok, o_oov, o_zero), first)

    @cc.export("source_key", types.int64())
    def _source_key():
        return key

    # The array arguments are distinct arrays (_call checks that no written one shares memory): marked
    # so (noalias), as numba marks those of its parallel loops, LLVM keeps values in registers across
    # the kernel's stores
    class _Flags(pycc_compiler.Flags):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.noalias = True

    saved = pycc_compiler.Flags
    pycc_compiler.Flags = _Flags
    try:
        cc.compile()
        built = next(staging.glob(f"{MODULE}.*"))
        target = Path(output_dir) / built.name
        os.replace(built, target)
    finally:
        pycc_compiler.Flags = saved
        shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv=None) -> int:
    """``python -m lmtools.kernels.aot [--if-stale] [-v]``: build the module (--if-stale: only where
    the one present was built from other sources, or none is)."""
    import time

    argv = sys.argv[1:] if argv is None else argv
    if "--if-stale" in argv and load() is not None:
        return 0
    t = time.perf_counter()
    try:
        path = build(verbose="-v" in argv)
    except Exception as e:  # no compiler, no numba.pycc: the run-time kernels serve
        print(f"lmtools: the ahead-of-time scoring kernel was not built ({type(e).__name__}: {e}); "
              "lm-ppl and lm-score use numba's run-time kernels", file=sys.stderr)
        return 1
    print(f"lmtools: built {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
