"""NLTK's n-gram counting (nltk.lm's NgramCounter over padded everygrams), the peer Python users know.

usage: python bench/nltk_count.py N FILE
"""

import sys

from nltk.lm import NgramCounter
from nltk.lm.preprocessing import padded_everygram_pipeline


def main() -> None:
    order, path = int(sys.argv[1]), sys.argv[2]
    with open(path, encoding="utf-8") as f:
        sents = [line.split() for line in f]
    train, _vocab = padded_everygram_pipeline(order, sents)
    counter = NgramCounter(train)
    print(counter.N())


if __name__ == "__main__":
    main()
