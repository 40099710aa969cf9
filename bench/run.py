"""`make bench`: run every benchmark in bench/ (bench_*.py), one after another, printing their tables.

Each benchmark runs lmtools and its peers side by side in one run and reports ratios; peers that are
not installed are skipped by the benchmark itself. Paste the output into bench/RESULTS.md with the date.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name}\n", flush=True)
        if subprocess.run([sys.executable, str(script), *sys.argv[1:]]).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
