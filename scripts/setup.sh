#!/usr/bin/env bash
# Installs forge's dependencies from Debian's packages (scripts/deps.txt),
# configures with CMake + Ninja into build/ and builds. Idempotent: a second
# run installs nothing and rebuilds only what changed.
#
#   FORGE_BUILD_DIR   build directory (default: build)
#   FORGE_CMAKE_ARGS  extra CMake arguments, e.g. -DFORGE_BUILD_COMPILER=OFF
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${FORGE_BUILD_DIR:-build}"

mapfile -t pkgs < <(grep -v '^\s*#' scripts/deps.txt | sed 's/\s.*//' | grep -v '^$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

# The test-only Python tools (TensorBoard reads back forge's event files) go
# into .cache/venv from PyPI; skipped when already installed. A failure stops
# setup: the tests that need them must not silently turn unsupported.
bash scripts/setup-venv.sh

# nvcc is not a Debian package here: the CUDA toolkit lives in /usr/local/cuda
# when present, and the CUDA backend is built only then.
if [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

export CCACHE_DIR="${CCACHE_DIR:-$root/.cache/ccache}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${FORGE_CMAKE_ARGS:-}
fi
cmake --build "$build"

# The main job's corpus (configs/train/default.toml), tokenized by the
# forge-data just built; skipped when it is current.
FORGE_BUILD_DIR="$build" bash scripts/prepare-data.sh
