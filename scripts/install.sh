#!/usr/bin/env bash
# Install hwnas into ./.venv with everything it needs on this machine.
#   ./scripts/install.sh          the package (and the offline Fashion-MNIST data set)
#   ./scripts/install.sh --dev    plus the test tools and PostgreSQL (for the shared-study tests)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

apt_packages=(dataset-fashion-mnist)
[[ $dev == 1 ]] && apt_packages+=(postgresql)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) == 0 ]]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else sudo="none"; fi
  if [[ $sudo == none ]]; then
    echo "install.sh: cannot install ${missing[*]} (not root, no sudo); tests that need them will skip" >&2
  else
    echo "install.sh: installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch 2.14.1 + torchvision 0.29.1 (timm needs torchvision); pinned so that every machine runs the same build.
.venv/bin/python -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1')" 2>/dev/null \
  || "${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
if [[ $dev == 1 ]]; then "${pip[@]}" -e ".[dev]"; else "${pip[@]}" -e .; fi
echo "install.sh: ready (.venv/bin/nas)"
