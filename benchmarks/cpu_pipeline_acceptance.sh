#!/usr/bin/env bash
# Issue 16's acceptance on this CPU, by commands only (resumable: rerun it and finished steps are kept):
#   1. nas profile: the INT8 latency LUT of the supernet's space on target cpu-ort-int8;
#   2. nas train-supernet: the quantized-for-all supernet on Fashion-MNIST (10 % of the training
#      images held out as the searchers' validation set);
#   3. nas search --supernet --lut: one search per latency budget (evolution, BUDGET distinct archs,
#      accuracy in INT8 fake-quant on the held-out validation images), budgets picked between the
#      space's fastest and its largest subnet by the LUT, or given as BUDGETS="0.1 0.15 0.2" (ms);
#   4. nas export: each best arch to INT8 QDQ ONNX (the trained scales) + FP32 ONNX, verified:
#      test accuracy, ORT vs fake-quant agreement, measured latency vs the prediction and budget;
#   5. benchmarks/bench_pipeline.py: plain CNN, timm resnet18 and mobilenetv3_large_100 trained
#      with the reference recipe, PTQ'd by onnxruntime, timed in one interleaved run with the exports.
#   bash benchmarks/cpu_pipeline_acceptance.sh [OUT_DIR]            (default runs/pipeline)
# Knobs: SPACE_ARGS, EPOCHS (5), QAT_EPOCHS (1), NUM_RANDOM (2), BUDGETS, BUDGET (50 archs per
# search), SEARCHER (evolution), BASELINE_EPOCHS (5), SKIP_BASELINES=1, LIMITS (smoke run:
# LIMITS="--train-limit 2048 --test-limit 512" EPOCHS=1 QAT_EPOCHS=1 BUDGET=8 BASELINE_EPOCHS=1).
# Latency is measured with one pinned thread (target cpu-ort-int8): leave the host idle.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/pipeline}; mkdir -p "$OUT"
PY=${PYTHON:-.venv/bin/python}; [ -x "$PY" ] || PY=python3
NAS=("$PY" -m nas.cli)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
SPACE_ARGS=${SPACE_ARGS:-'{"stages": 3, "depths": [1, 2, 3], "kernels": [3, 5], "expands": [2.0, 3.0, 4.0], "scale": 1.0}'}
TARGET=cpu-ort-int8; LIMITS=${LIMITS:-}
T0=$(date +%s); say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/log.txt"; }
say "host: $(lscpu | sed -n 's/^Model name: *//p'), flags: $(grep -o -w 'avx512_vnni\|amx_int8\|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"

# 1. LUT (resumable: measured blocks are kept)
say "profile"
"${NAS[@]}" profile --space mobilenet --space-args "$SPACE_ARGS" --in-chans 1 --num-classes 10 --resolution 28 \
  --target $TARGET --out "$OUT/lut.db" >> "$OUT/profile.log" 2>&1

# 2. supernet (resumable)
RESUME=(); [ -f "$OUT/sn/checkpoint.safetensors" ] && RESUME=(--resume)
say "train-supernet ${RESUME[*]:-from scratch}"
"${NAS[@]}" train-supernet --space mobilenet --space-args "$SPACE_ARGS" --data fashion-mnist \
  --epochs "${EPOCHS:-5}" --qat-epochs "${QAT_EPOCHS:-1}" --scheme ort_cpu --batch-size 256 --lr 0.2 \
  --num-random "${NUM_RANDOM:-2}" --no-progress $LIMITS --out "$OUT/sn" "${RESUME[@]}" >> "$OUT/train.log" 2>&1

# 3. budgets: a quarter, a half and four fifths of the way from the fastest arch to the largest subnet
if [ -z "${BUDGETS:-}" ]; then
  BUDGETS=$("$PY" - "$OUT" "$TARGET" <<'EOF'
import sys
from nas.search.evaluators import LutLatencyEvaluator
from supernet.train import load_supernet
out, target = sys.argv[1], sys.argv[2]
net, _ = load_supernet(f"{out}/sn")
lat = LutLatencyEvaluator.from_lut(f"{out}/lut.db", target, net.space)
_, lo, _ = lat.fastest(candidates=[net.smallest()])
hi = lat.evaluate(net.largest())["latency_ms"]
print(" ".join(f"{lo + f * (hi - lo):.4f}" for f in (0.25, 0.5, 0.8)))
EOF
)
fi
say "budgets (ms): $BUDGETS"

EXPORTS=()
for b in $BUDGETS; do
  dir="$OUT/search_$b"
  if [ ! -f "$dir/best.json" ]; then
    say "search under latency_ms<=$b"
    "${NAS[@]}" search --supernet "$OUT/sn" --lut "$OUT/lut.db" --target $TARGET --searcher "${SEARCHER:-evolution}" \
      --objective accuracy --constraint "latency_ms<=$b" --budget "${BUDGET:-50}" --seed 0 \
      --cache "$OUT/supernet_evals.jsonl" --out "$dir" --quiet >> "$OUT/search.log" 2>&1
  fi
  exp="$OUT/export_$b"
  if [ ! -f "$exp/model.json" ]; then
    say "export the best arch under $b ms"
    "${NAS[@]}" export --checkpoint "$OUT/sn" --arch "$dir/best.json" --out "$exp" --format onnx-int8,onnx-fp32 \
      --target $TARGET --lut "$OUT/lut.db" --max-latency "$b" >> "$OUT/export.log" 2>&1
  fi
  EXPORTS+=("$exp")
  "$PY" - "$exp" "$b" <<'EOF' | tee -a "$OUT/log.txt"
import json, sys
m = json.load(open(f"{sys.argv[1]}/model.json"))
a, l = m["accuracy"], m["latency_ms"]
print(f"  budget {sys.argv[2]} ms: arch {m['arch_id']}: INT8 test {a.get('int8_test')} %, FP32 {a.get('fp32_test')} %, "
      f"ORT vs fake-quant agreement {a.get('int8_vs_fakequant_agreement')} %; latency measured {l.get('measured')} ms, "
      f"predicted {l.get('predicted')} ms (ratio {l.get('ratio')})")
EOF
done

# 5. baselines, timed with the exports in one run
if [ "${SKIP_BASELINES:-0}" != 1 ]; then
  say "bench_pipeline"
  "$PY" benchmarks/bench_pipeline.py --epochs "${BASELINE_EPOCHS:-5}" --work "$OUT/baselines" --exported "${EXPORTS[@]}" \
    --json "$OUT/pipeline.json" $LIMITS 2>> "$OUT/bench_pipeline.log" | tee "$OUT/pipeline.txt"
fi
say "done: $OUT/log.txt, $OUT/pipeline.txt"
