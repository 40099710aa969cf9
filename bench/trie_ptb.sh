#!/bin/sh
# The compact trie form against the full model on the PTB 5-gram (bench/RESULTS.md, "Compact trie form").
# Usage: sh bench/trie_ptb.sh WORKDIR [KENLM_BIN]   (lm-* on PATH; KENLM_BIN: where build_binary/query are)
set -e
W=$1; K=${2:-/work/peers/kenlm-build/bin}; D=${PTB:-/work/shared/data/ptb}
mkdir -p "$W" && cd "$W"
[ -f kn5.lm ] || { lm-count -n 5 $D/train.txt | lm-train -q -o kn5.lm; }
lm-train -q kn5.lm --no-query-tables -o kn5_notab.lm
lm-train -q kn5.lm --trie -o kn5_trie88.lm
lm-train -q kn5.lm --trie --quantize 32,32 -o kn5_trie32.lm
if [ -x "$K/build_binary" ]; then
  lm-train -q kn5.lm --arpa -o kn5.arpa
  "$K/build_binary" trie -q 8 -b 8 kn5.arpa kn5_kenlm_trie88.bin >/dev/null 2>&1
  "$K/build_binary" trie kn5.arpa kn5_kenlm_trie.bin >/dev/null 2>&1
  "$K/build_binary" probing kn5.arpa kn5_kenlm_probing.bin >/dev/null 2>&1
fi
ls -l kn5*.lm kn5*.bin 2>/dev/null | awk '{print $5, $9}'
for m in kn5.lm kn5_trie88.lm kn5_trie32.lm; do lm-ppl -m $m $D/test.txt | sed -n 3p | sed "s|^|$m: |"; done
[ -x "$K/query" ] && for b in kn5_kenlm_trie88.bin kn5_kenlm_trie.bin; do
  "$K/query" -v summary $b < $D/test.txt 2>/dev/null | grep -i "perplexity including" | sed "s|^|$b: |"; done
# whole-process time, alternating, 3 rounds
for i in 1 2 3; do for m in kn5.lm kn5_notab.lm kn5_trie88.lm kn5_trie32.lm; do
  /usr/bin/time -f "$m %e s wall %U s user %M KB" lm-ppl -m $m $D/test.txt > /dev/null; done; done
