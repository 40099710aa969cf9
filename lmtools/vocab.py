"""Vocabulary conventions shared by every model kind.

Ids 0, 1, 2 are always ``<unk>``, ``<s>`` and ``</s>``; words follow from id 3.
``<s>`` only starts n-grams and ``</s>`` only ends them (KenLM/SRILM convention).
"""

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIALS = (UNK, BOS, EOS)


def index_of(words: list[str]) -> dict[str, int]:
    """Word -> id map for a vocabulary list (id = position)."""
    return {w: i for i, w in enumerate(words)}


def check_vocab(words: list[str]) -> None:
    """Raise ValueError unless the first three entries are the specials in their fixed order."""
    if list(words[:3]) != list(SPECIALS):
        raise ValueError(f"vocabulary must start with {SPECIALS}, got {list(words[:3])}")
