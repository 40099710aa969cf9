"""The corpus that ships inside the package: Tiny Shakespeare (public domain, 40,000 lines).

The conventional split (as in the KenLM reference outputs lmtools is checked against):
train = lines 1-36000, test = lines 36001-40000.
"""

from importlib import resources
from pathlib import Path

TRAIN_LINES = 36000


def shakespeare_path() -> Path:
    """Path of the embedded Tiny Shakespeare text."""
    return Path(str(resources.files("lmtools") / "data" / "tinyshakespeare.txt"))


def shakespeare_split(directory: Path) -> tuple[Path, Path]:
    """Write train.txt and test.txt (the conventional split) into ``directory``; return their paths."""
    lines = shakespeare_path().read_text(encoding="utf-8").splitlines(keepends=True)
    train, test = directory / "train.txt", directory / "test.txt"
    train.write_text("".join(lines[:TRAIN_LINES]), encoding="utf-8")
    test.write_text("".join(lines[TRAIN_LINES:]), encoding="utf-8")
    return train, test
