"""Loading the compiled kernels before the input arrives.

In a pipe (`lm-count | lm-train`) the downstream program starts at the same time as the upstream
one and would sit idle until its input is complete, then pay numba's start-up (initialising the
compiler target and loading each cached kernel: about 0.3-0.5 s here) on top. Running the same
code path on a tiny input first moves that cost into the time spent waiting for upstream.
The dry run goes through the model file too, so that every kernel is loaded for exactly the array
types (read-only buffers from the file included) that the real run uses.
"""

from __future__ import annotations

import io
import os

from lmtools.messages import debug_enabled

# A few short sentences are enough for every order to have n-grams of counts 1, 2 and 3+.
_TEXT = "\n".join(" ".join(f"w{(i * 7 + j * 3) % 11}" for j in range(i % 6 + 2)) for i in range(60)) + "\n"


def warm_counts_path(order: int, smooth_kwargs: dict | None = None, waiting=lambda: True) -> None:
    """Count, store, load and (with ``smooth_kwargs``) smooth and store a tiny model. Best effort:
    a failure here only costs time, so it is ignored (shown with --debug).

    With ``smooth_kwargs`` it also loads the numba kernels that a real input takes and a tiny one
    skips (the sort of the counts, the query tables), one step after another while ``waiting()``
    (the input has not begun to arrive: see stdin_waiting). Loading them costs about 0.3 s, which a
    large input would pay after it arrives and a small one, estimated without numba, never pays."""
    try:
        from lmtools.io.models import load_model, save_model
        from lmtools.ngram.counting import count_small
        from lmtools.io.text import Chunk

        levels = count_small([Chunk(_TEXT.encode(), 1, "warm-up")], max(order, 1), None, None)
        buf = io.BytesIO()
        save_model(levels, buf)
        counts = load_model(io.BufferedReader(io.BytesIO(buf.getvalue())))
        if smooth_kwargs is not None:
            from lmtools.io.modelfile import read_model
            from lmtools.io.models import levels_from_parts
            from lmtools.ngram.model import PendingTables
            from lmtools.ngram.smoothing import smooth

            model = smooth(counts, **dict(smooth_kwargs, warn=lambda msg: None))
            save_model(model, io.BytesIO())
            # the kernels a real input takes, which a tiny one would skip (plain numpy and Python there):
            # the numba sort of the counts and the query tables laid out beside the estimation
            if not waiting():
                return
            counts = levels_from_parts(*read_model(io.BytesIO(buf.getvalue()), "warm-up"), "warm-up").to_counts(
                numba=True)
            if counts.order >= 2 and waiting():
                pending = PendingTables(counts.ngrams, counts.vocab)
                pending.result(smooth(counts, **dict(smooth_kwargs, warn=lambda msg: None)))
    except Exception:
        if debug_enabled():
            raise


def warm_scoring_path() -> None:
    """Load the kernels of scoring a counts model (smoothed on the fly) on the numba path, as
    ``lm-count | lm-ppl text`` will once its counts arrive. Best effort, like warm_counts_path."""
    try:
        from lmtools.io.models import load_model, save_model
        from lmtools.ngram.counting import count_small
        from lmtools.io.text import Chunk
        from lmtools.kinds import scorer_for

        levels = count_small([Chunk(_TEXT.encode(), 1, "warm-up")], 3, None, None)
        buf = io.BytesIO()
        save_model(levels, buf)
        counts = load_model(io.BufferedReader(io.BytesIO(buf.getvalue())))
        scorer_for(counts, "warm-up", warn=lambda msg: None).line_scores(_TEXT.encode(), 1, fast=True)
    except Exception:
        if debug_enabled():
            raise


# How long the first look at stdin waits for the input (it comes after the warm-up's first part, about
# 0.2 s into the run): lm-count on a few sentences, started with this program, has written its counts
# by then; one still at work after it is counting more than a few sentences. (`echo ... | lm-count -n 5
# | lm-train`: 0.20-0.21 s with 0.3 here, 0.25-0.31 s with 0.1, where the look came too early.)
FIRST_LOOK_S = 0.3


def stdin_waiting(_looked: list = []) -> bool:  # noqa: B006 (the list remembers the first look)
    """True while nothing can be read from stdin yet (no data, no end of input): upstream is still
    at work. Upstream programs write their output at the end, so a small input has arrived (and a
    warm-up for a large one would only delay it) by the time this is False. The first call waits up
    to FIRST_LOOK_S for the input; later ones do not wait."""
    import select
    import sys

    timeout = 0.0 if _looked else FIRST_LOOK_S
    _looked.append(True)
    try:
        ready, _, _ = select.select([sys.stdin.fileno()], [], [], timeout)
    except (OSError, ValueError, AttributeError):
        return False
    return not ready


def input_is_pipe(path: str) -> bool:
    """True when ``path`` is stdin or a FIFO (its data may still be on its way)."""
    import stat
    import sys

    try:
        fd_stat = os.fstat(sys.stdin.fileno()) if path == "-" else os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(fd_stat.st_mode)
