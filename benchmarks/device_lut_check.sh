#!/usr/bin/env bash
# Issue 3's LUT accuracy on a dedicated CPU (the `device` machine's), to separate the method's
# error from a shared host's noise: profile an exported block folder on one pinned core with
# cpu-ort-int8, then validate random networks on pinned cores (SHARDS processes of N/SHARDS
# networks each, with disjoint seeds) and pool them into one agreement report.
#   bash benchmarks/device_lut_check.sh runs/mob28_blocks   (made by `nas lut export-blocks`)
# Knobs: SPACE_FLAGS (must match the folder's space), N (100), SHARDS (2), CPUS ("10 12 14"),
# TARGET (cpu-ort-int8), RETRY (1), OUT, W_LUT (work folder). Results, packed as $OUT/lut.tar.gz (the device tool
# brings back only a few files): lut.db, profile.json, validate_*.json, validate.json, log.txt.
set -u
cd "$(dirname "$0")/.."
BLOCKS=${1:?usage: device_lut_check.sh BLOCK_FOLDER}
OUT=${OUT:-/tmp/hwnas_device_out}; D=${W_LUT:-/tmp/hwnas_lut_work}; mkdir -p "$D" "$OUT"
trap 'tar czf "$OUT/lut.tar.gz" -C "$D" .' EXIT
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python3}
SPACE_FLAGS=${SPACE_FLAGS:-"--space mobilenet --in-chans 1 --num-classes 10 --resolution 28"}
TARGET=${TARGET:-cpu-ort-int8}; N=${N:-100}; SHARDS=${SHARDS:-2}
read -r -a CPUS <<< "${CPUS:-10 12 14}"
pin() { if command -v taskset > /dev/null; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }
T0=$(date +%s); say() { echo "[$(( $(date +%s) - T0 ))s] $*" >> "$D/log.txt"; }
{ lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Flags' | cut -c1-200; } >> "$D/log.txt" 2>&1

say "profile $BLOCKS on CPU ${CPUS[0]}"
pin "${CPUS[0]}" $PY -m nas.cli profile "$BLOCKS" --target "$TARGET" --out "$D/lut.db" --retry-passes "${RETRY:-1}" \
  --no-progress --json > "$D/profile.json" 2>> "$D/log.txt"
say "profile ended ($?)"
for k in $(seq 0 $((SHARDS - 1))); do
  pin "${CPUS[$((k % ${#CPUS[@]}))]}" $PY -m nas.cli lut validate --lut "$D/lut.db" $SPACE_FLAGS --target "$TARGET" \
    --n $((N / SHARDS)) --seed $((100000 * k)) --json --no-progress > "$D/validate_$k.json" 2>> "$D/log.txt" &
done
wait
say "validation ended"
$PY - "$D" >> "$D/log.txt" 2>&1 <<'PY'
import glob, json, sys
from latency_lut.validation import pool
results, shards = [], []
for f in sorted(glob.glob(f"{sys.argv[1]}/validate_*.json")):
    try:
        doc = json.load(open(f))
        doc["networks"]
    except (ValueError, KeyError):
        print(f"{f}: no result, left out")
        continue
    results.append(doc)
    shards.append(f)
report = pool(results) | {"shards": shards}
json.dump(report, open(f"{sys.argv[1]}/validate.json", "w"), indent=1)
print("pooled:", json.dumps(report))
PY
say "all done"
