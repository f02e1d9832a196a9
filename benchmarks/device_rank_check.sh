#!/usr/bin/env bash
# Issue 5's ranking figure for an existing supernet checkpoint, on a CUDA machine (the `device`
# tool): Spearman's rho between the supernet-inherited accuracy of N random subnets and the same
# architectures trained from scratch for the supernet's number of epochs (FP32 + QAT), one
# process per subnet sharing the GPU. The checkpoint can come from anywhere (carry it):
#   bash benchmarks/device_rank_check.sh runs/cpu_sn
# Knobs: N (10), EPOCHS (default: the checkpoint's), SCRATCH_TIMEOUT (480 s), DEVICE (cuda), OUT.
# Results, packed as $OUT/rank.tar.gz (the device tool brings back only a few files):
# rank.json (rho, per-arch accuracies), the per-arch cache and log.txt.
set -u
cd "$(dirname "$0")/.."
CKPT=${1:?usage: device_rank_check.sh CHECKPOINT_DIR}
OUT=${OUT:-/tmp/hwnas_device_out}; W=${W_RANK:-/tmp/hwnas_rank_work}; mkdir -p "$W/rank" "$OUT"
trap 'cp "$W/log.txt" "$OUT/log.txt" 2>/dev/null; tar czf "$OUT/rank.tar.gz" -C "$W" .' EXIT
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python3}; N=${N:-10}; DEVICE=${DEVICE:-cuda}
EP=(); [ -n "${EPOCHS:-}" ] && EP=(--epochs "$EPOCHS")
T0=$(date +%s); say() { echo "[$(( $(date +%s) - T0 ))s] $*" >> "$W/log.txt"; }
{ nvidia-smi -L; nproc; } >> "$W/log.txt" 2>&1

say "scratch training of $N subnets of $CKPT"
PIDS=()
for k in $(seq 0 $((N - 1))); do
  timeout "${SCRATCH_TIMEOUT:-480}" $PY benchmarks/bench_supernet.py rank --checkpoint "$CKPT" --n "$N" --work "$W/rank" \
    --shard "$k/$N" --phase scratch --device "$DEVICE" "${EP[@]}" > /dev/null 2>> "$W/log.txt" &
  PIDS+=($!)
done
# the supernet side (BN-recalibrated inherited accuracy) while the scratch runs train
$PY benchmarks/bench_supernet.py rank --checkpoint "$CKPT" --n "$N" --work "$W/rank" --phase supernet \
  --device "$DEVICE" "${EP[@]}" > /dev/null 2>> "$W/log.txt"
say "supernet side done"
wait "${PIDS[@]}"
say "scratch runs ended"
$PY benchmarks/bench_supernet.py rank --checkpoint "$CKPT" --n "$N" --work "$W/rank" --phase supernet \
  --device "$DEVICE" "${EP[@]}" --out "$W/rank.json" > /dev/null 2>> "$W/log.txt"
say "rank.json: $(tr -d '\n' < "$W/rank.json" 2>/dev/null | cut -c1-300)"
