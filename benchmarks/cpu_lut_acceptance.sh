#!/usr/bin/env bash
# Issue 3's LUT acceptance on this machine's CPU, target cpu-ort-int8, with the default commands:
# for mobilenet 1x28x28, mobilenet 3x224x224 and spaceevo 1x28x28, profile every block of the space
# (`nas profile --space ...`) and validate 100 random networks (`nas lut validate --n 100 --json`);
# then the FP32 blocks of spaceevo's 100 validation archs and DESIGN.md's table blocks
# (design_blocks.yaml) for `nas lut show`'s INT8-vs-FP32 speed-up tables.
#   bash benchmarks/cpu_lut_acceptance.sh runs/lut      (about 35 minutes on two cores)
# Every measuring process is pinned to CPU ${CPU:-1}; leave the machine idle meanwhile (other work
# on the same machine slows the measurements down in spells). Rerunning continues where it stopped.
# Results in the folder: <cfg>.db, <cfg>_profile.json, <cfg>_validate.json, se28_show.txt,
# design_show.txt, log.txt.
set -u
cd "$(dirname "$0")/.."
R=${1:?usage: cpu_lut_acceptance.sh OUT_FOLDER}; mkdir -p "$R"
NAS=".venv/bin/nas"; [ -x "$NAS" ] || NAS="nas"
if command -v taskset > /dev/null; then NAS="taskset -c ${CPU:-1} $NAS"; fi
say() { echo "[$(date +%T)] $*" | tee -a "$R/log.txt"; }
M28="--space mobilenet --in-chans 1 --num-classes 10 --resolution 28"
M224="--space mobilenet --in-chans 3 --num-classes 1000 --resolution 224"
SE="--space spaceevo --in-chans 1 --num-classes 10 --resolution 28"
for cfg in "mob28:$M28" "mob224:$M224" "se28:$SE"; do
  name=${cfg%%:*}; flags=${cfg#*:}
  say "profile $name"
  $NAS profile $flags --target cpu-ort-int8 --out "$R/$name.db" --no-progress --json > "$R/${name}_profile.json" \
    2>> "$R/log.txt" || { say "profile $name failed"; exit 1; }
  if [ ! -s "$R/${name}_validate.json" ]; then
    say "validate $name"
    $NAS lut validate --lut "$R/$name.db" $flags --target cpu-ort-int8 --n 100 --json --no-progress \
      > "$R/${name}_validate.json.tmp" 2>> "$R/log.txt" && mv "$R/${name}_validate.json.tmp" "$R/${name}_validate.json"
  fi
  python3 - "$R/${name}_validate.json" "$name" <<'PY' | tee -a "$R/log.txt"
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}: n {d['n']}, within 5% {d['within_5pct']:.2f}, within 10% {d['within_10pct']:.2f}, "
      f"Kendall tau {d['kendall_tau']:.3f}, RMSE {d['rmse_ms']:.4f} ms, bias {d['bias']:+.3f}, correction {d['correction']}")
PY
done
say "FP32 blocks of spaceevo's validation archs"
$NAS profile $SE --archs 100 --seed 0 --networks 0 --target cpu-ort-fp32 --out "$R/se28.db" --no-progress 2>> "$R/log.txt"
$NAS lut show "$R/se28.db" > "$R/se28_show.txt"
for t in cpu-ort-int8 cpu-ort-fp32; do
  $NAS profile --space benchmarks/design_blocks.yaml --target $t --networks 0 --out "$R/design.db" --no-progress 2>> "$R/log.txt"
done
$NAS lut show "$R/design.db" > "$R/design_show.txt"
tail -n 12 "$R/se28_show.txt" "$R/design_show.txt"
say "all done"
