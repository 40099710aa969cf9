"""Plain-Python n-gram counting baseline: str.split and collections.Counter over tuples.

usage: python bench/counter_baseline.py N FILE
"""

import sys
from collections import Counter


def main() -> None:
    order, path = int(sys.argv[1]), sys.argv[2]
    tables = [Counter() for _ in range(order)]
    with open(path, encoding="utf-8") as f:
        for line in f:
            toks = ["<s>"] + line.split() + ["</s>"]
            for n in range(1, order + 1):
                tables[n - 1].update(zip(*(toks[i:] for i in range(n))))
    print(" ".join(str(len(t)) for t in tables))


if __name__ == "__main__":
    main()
