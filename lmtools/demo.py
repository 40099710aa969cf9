"""`make demo`: the main job on the embedded Tiny Shakespeare corpus, shown as the shell commands it runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lmtools.corpus import shakespeare_split


def sh(cmd: str, cwd: Path, show: bool = True) -> str:
    if show:
        print(f"$ {cmd}", flush=True)
    r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"demo: command failed: {cmd}")
    return r.stdout


def have(prog: str) -> bool:
    return shutil.which(prog) is not None


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lmtools-demo-") as tmp:
        d = Path(tmp)
        shakespeare_split(d)
        print("Tiny Shakespeare (shipped in the package): train = lines 1-36000, test = lines 36001-40000\n")
        sh("lm-count -n 5 train.txt -o counts5.lm", d)
        print(sh("lm-info counts5.lm", d))
        if have("lm-train") and have("lm-ppl"):
            print("Perplexity of the test text by order (interpolated modified Kneser-Ney); it falls with the")
            print("order as the model sees more context (OOVs are the test words never seen in training):")
            print(f"{'order':>5}  {'ppl':>9}  {'ppl (OOVs left out)':>19}")
            for n in range(1, 6):
                out = sh(f"lm-count -n {n} train.txt | lm-train | lm-ppl --json -m - test.txt", d, show=n == 1)
                import json

                total = json.loads(out.strip().splitlines()[-1])
                total = total.get("total", total)
                print(f"{n:>5}  {total['ppl']:>9.2f}  {total['ppl_excl_oov']:>19.2f}", flush=True)
            print()
        if have("lm-gen"):
            print("The Shannon game: the next-word distribution after a history, most likely first:")
            sh("lm-train -o kn5.lm counts5.lm", d)
            print(sh('lm-gen -m kn5.lm --next "I pray you" --top 10', d))
            print("Sentences sampled from the word 5-gram model:")
            print(sh("lm-gen -m kn5.lm -s 5 --seed 7", d))
            print("A character-level 7-gram model, sampled:")
            print(sh("lm-count -n 7 --chars train.txt | lm-train | lm-gen -s 8 --seed 7", d))


if __name__ == "__main__":
    main()
