#!/usr/bin/env bash
# The GPU measurements of issues 5 and 6 in one call of the `device` tool (about 9 minutes on one
# H100/H200 with 16 CPU cores). Every step has its own time limit so that the results of the
# finished steps always come back, packed as $OUT/results.tar.gz:
#   1. benchmarks/gpu_supernet_check.py: CUDA throughput of the acceptance supernet;
#   2. nas train-supernet on CUDA: FP32 sandwich epochs, then quantized-for-all epochs with the
#      scheme of the CPU the INT8 models are deployed on (ort_cpu_avx2 by default);
#   3. ranking: the supernet-inherited accuracy of 10 random subnets against the same
#      architectures trained from scratch (on CUDA) for the same number of epochs;
#   4. DARTS on the nb201 cell: 3 variants x 3 seeds, one process each.
# The INT8 acceptance figures (exported ONNX run by onnxruntime on the target CPU) are then taken
# on the target with `python benchmarks/bench_supernet.py accept --checkpoint sn`.
# Data: set HWNAS_FASHION_MNIST_DIR and HWNAS_NB201_CSV when the machine has no Debian packages.
# Knobs: DARTS=0 and RANK=0 leave the GPU to the supernet alone; GPU_CHECK=0 skips step 1 (then set
# EPOCHS); TRAIN_CPUS="0-5" pins the training process (taskset) so that a CPU measurement can run
# beside it on other cores (benchmarks/device_lut_check.sh).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/hwnas_device_out}; W=${W:-/tmp/hwnas_device_work}
mkdir -p "$OUT" "$W/rank" "$W/darts"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python3}
L=$W/log.txt
SPACE_ARGS=${SPACE_ARGS:-'{"stages": 3, "depths": [1, 2, 3], "kernels": [3, 5], "expands": [2.0, 3.0, 4.0], "scale": 1.0}'}
QAT_EPOCHS=${QAT_EPOCHS:-3}; SCHEME=${SCHEME:-ort_cpu_avx2}; DEVICE=${DEVICE:-cuda}
LIMITS=${LIMITS:-}  # e.g. "--train-limit 512 --test-limit 256" for a smoke run
T0=$(date +%s); say() { echo "[$(( $(date +%s) - T0 ))s] $*" >> "$L"; }
{ nvidia-smi -L; nproc; $PY -c "import torch, onnxruntime, timm; print(torch.__version__, onnxruntime.__version__, timm.__version__)"; } >> "$L" 2>&1

[ "${DARTS:-1}" = 1 ] && say "DARTS: 9 processes" && for v in 0 1 2; do for s in 0 1 2; do
  timeout "${DARTS_TIMEOUT:-400}" $PY benchmarks/bench_search.py --parts darts --darts-device "$DEVICE" --darts-variants $v \
    --darts-seeds 1 --darts-first-seed $s --darts-train-size "${DARTS_TRAIN:-10000}" --darts-epochs "${DARTS_EPOCHS:-10}" \
    --machine "device" --out "$W/darts" > /dev/null 2>> "$W/darts.log" &
done; done

PIN=""; [ -n "${TRAIN_CPUS:-}" ] && command -v taskset > /dev/null && PIN="taskset -c $TRAIN_CPUS"
# the device tool brings back only a few files from $OUT: keep W elsewhere and pack it
finish() { tar czf "$OUT/results.tar.gz" -C "$W" . 2>/dev/null; cp "$L" "$OUT/log.txt"; }
trap finish EXIT

[ "${GPU_CHECK:-1}" = 1 ] && say "GPU check" && timeout 100 $PY benchmarks/gpu_supernet_check.py --prewarm "${PREWARM:-16}" --device "$DEVICE" --budget-s 40 ${CHECK_ARGS:-} > "$W/gpu_check.json" 2>> "$L"
[ "${GPU_CHECK:-1}" = 1 ] && say "GPU check done: $(cat "$W/gpu_check.json")"
# FP32 epochs that fit the training budget at the measured throughput (scaled by CONTENTION when
# the ranking's scratch runs and DARTS share the GPU), after the QAT epochs; at most 30
EPOCHS=${EPOCHS:-$($PY -c "
import json, sys
try:
    r = json.load(open('$W/gpu_check.json'))
    fp32, qat = ${CONTENTION:-0.5} * r['fp32_images_per_s'], ${CONTENTION:-0.5} * r['qat_images_per_s']
except Exception:
    print(12); sys.exit()
budget = ${TRAIN_BUDGET:-290} - $QAT_EPOCHS * (60000 / qat + 4)
print(max(4, min(30, int(budget / (60000 / fp32 + 3)))))")}

say "supernet training: $EPOCHS + $QAT_EPOCHS epochs"
timeout "${TRAIN_TIMEOUT:-330}" $PIN $PY -m nas.cli train-supernet --space mobilenet --space-args "$SPACE_ARGS" \
  --data fashion-mnist --epochs "$EPOCHS" --qat-epochs "$QAT_EPOCHS" --scheme "$SCHEME" --batch-size 256 --lr 0.2 --num-random "${NUM_RANDOM:-2}" \
  --device "$DEVICE" --checkpoint-every 0 --no-progress $LIMITS --out "$W/sn" > "$W/train.log" 2>&1 &
TRAIN=$!
if [ "${RANK:-1}" != 1 ]; then wait $TRAIN; say "training ended ($?)"; wait; say "all done"; exit 0; fi
# the scratch runs of the ranking need only the run's configuration: start them with the first checkpoint
while kill -0 $TRAIN 2>/dev/null && [ ! -f "$W/sn/checkpoint.safetensors" ]; do sleep 2; done
say "scratch training of 10 subnets"
RANKS=()
for k in $(seq 0 9); do
  timeout "${SCRATCH_TIMEOUT:-420}" $PY benchmarks/bench_supernet.py rank --checkpoint "$W/sn" --n 10 --work "$W/rank" \
    --shard $k/10 --phase scratch --device "$DEVICE" > /dev/null 2>> "$W/rank.log" &
  RANKS+=($!)
done
wait $TRAIN; say "training ended ($?)"
timeout 60 $PY benchmarks/bench_supernet.py rank --checkpoint "$W/sn" --n 10 --work "$W/rank" --phase supernet \
  --device "$DEVICE" > /dev/null 2>> "$W/rank.log"
wait "${RANKS[@]}"
$PY benchmarks/bench_supernet.py rank --checkpoint "$W/sn" --n 10 --work "$W/rank" --phase supernet --device "$DEVICE" \
  --out "$W/rank.json" > /dev/null 2>> "$W/rank.log"
say "ranking done"
wait
[ "${DARTS:-1}" = 1 ] && $PY benchmarks/bench_search.py --report-only --out "$W/darts" > /dev/null 2>> "$L"
say "all done"
