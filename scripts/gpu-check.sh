#!/usr/bin/env bash
# The CUDA backend's checks on a lent GPU machine, prepared here and run
# there in one call (docs/cuda.md, "Checking on a lent GPU"). Such a machine
# has the CUDA toolkit, NCCL (PyTorch's) and Python, but none of forge's own
# libraries and no LLVM, so no forgec: this build machine bundles what runs
# there, plans included.
#
#   scripts/gpu-check.sh bundle   here, after a build: .gpu/bundle.tar.xz
#   scripts/gpu-check.sh run      there (device run, carry [".gpu"])
#
# `run` unpacks the bundle and runs each part under a time limit, writing
# two files under $OUT (or .gpu/out): summary.txt (a verdict per part, the
# bundle's commit) and logs.txt (every part's log); it exits 1 when a part
# failed, timed out, was not run for lack of time or, on the GPU, skipped
# tests:
#   - the conformance suite (ForgeCudaTests) and the NCCL tests;
#   - the golden fixtures on the GPU against PyTorch's values (dense, MoE,
#     Lion, Muon, schedule-free; golden-cuda.test's tolerances) and the
#     logits;
#   - fp32, bf16 and fp8 against the CPU backend (cuda-train.test's);
#   - [profiling] and FORGE_PROFILE;
#   - a timed bf16 and fp8 training run of a 0.9B model (head dim 128,
#     sequence 2048): the log's tokens/s, MFU and memory.
# FORGE_GPU_CHECK_DEVICE=cpu runs `run` on the CPU, which checks the bundle
# itself on a machine without a GPU (test/forge-run/gpu-check.test);
# FORGE_GPU_CHECK_DIR replaces .gpu and FORGE_BUILD the build folder.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
gpu="${FORGE_GPU_CHECK_DIR:-$here/.gpu}"

bundle() {
  local build="${FORGE_BUILD:-$here/build}" stage
  [[ -x "$build/bin/forgec" && -f "$build/lib/libforge-cuda.so" ]] || {
    echo "gpu-check: no forgec or libforge-cuda.so in $build (build first)" >&2
    exit 1
  }
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib" "$stage/plans"
  cp "$build/bin/forge-run" "$build/bin/ForgeCudaTests" \
    "$build/bin/ForgeNcclTests" "$stage/bin/"
  cp "$build/lib/libforge-cuda.so" "$stage/lib/"
  # Their shared libraries, but glibc's and the CUDA ones, which the GPU
  # machine has in its own (matching) versions.
  local f lib
  for f in "$stage"/bin/* "$stage/lib/libforge-cuda.so"; do
    ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
  done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
    libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | \
      ld-linux* | libcuda.so* | libcublas*.so* | libnccl.so* | libcudart*.so*) ;;
    *) cp -L "$lib" "$stage/lib/" ;;
    esac
  done
  local g="$here/test/golden" c="$build/bin/forgec"
  "$c" "$g/dense/job.toml" -o "$stage/plans/dense.plan"
  "$c" "$g/dense/job.toml" --logits-program -o "$stage/plans/dlogits.plan"
  "$c" "$g/dense/job.toml" --train.mixed_precision=bf16 -o "$stage/plans/bf16.plan"
  "$c" "$g/dense/job.toml" --train.mixed_precision=fp8 -o "$stage/plans/fp8.plan"
  for j in moe lion muon schedule_free; do
    "$c" "$g/$j/job.toml" -o "$stage/plans/$j.plan"
  done
  "$c" "$g/dense/job.toml" --train.max_steps=4 --metrics.log_interval=1 \
    --profiling.enable=true --profiling.start_step=2 --profiling.end_step=3 \
    --profiling.trace_dir=traces -o "$stage/plans/profile.plan"
  local big=(--model.dim=2048 --model.n_layers=16 --model.n_heads=16
    --model.n_kv_heads=8 --model.vocab_size=32000 --model.max_seq_len=2048
    --train.seq_len=2048 --train.batch_size=8 --train.max_steps=30
    --metrics.log_interval=5)
  "$c" "$here/configs/train/debug.toml" "${big[@]}" \
    --train.mixed_precision=bf16 -o "$stage/plans/big-bf16.plan"
  "$c" "$here/configs/train/debug.toml" "${big[@]}" \
    --train.mixed_precision=fp8 -o "$stage/plans/big-fp8.plan"
  # Which build this is, for the summary (a stale bundle is the easy
  # mistake: bundle again after every build).
  {
    echo "commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"       "($(git -C "$here" status --short 2>/dev/null | grep -c . || true) files changed)"
    echo "forge-run sha1 $(sha1sum <"$stage/bin/forge-run" | cut -c1-12),"       "bundled $(date -u +%Y-%m-%dT%H:%MZ)"
  } >"$stage/MANIFEST"
  mkdir -p "$gpu"
  tar -C "$stage" -cJf "$gpu/bundle.tar.xz" .
  rm -rf "$stage"
  echo "gpu-check: $gpu/bundle.tar.xz ($(du -h "$gpu/bundle.tar.xz" | cut -f1))"
  echo "gpu-check: run it with the device tool: carry [\".gpu\"], command" \
    "\"bash scripts/gpu-check.sh run\""
}

run() {
  local out="${OUT:-$gpu/out}" dev="${FORGE_GPU_CHECK_DEVICE:-cuda}" b
  mkdir -p "$out"
  # Two files come back (the device tool returns at most eight): the
  # verdicts, and every part's log appended as it ends (a killed run keeps
  # what it had).
  local summary="$out/summary.txt" logs="$out/logs.txt" failed=0
  : >"$summary"
  : >"$logs"
  say() { echo "$*" | tee -a "$summary"; }
  b=$(mktemp -d)
  if ! tar -C "$b" -xJf "$gpu/bundle.tar.xz" 2>>"$logs"; then
    say "gpu-check: FAILED: cannot unpack $gpu/bundle.tar.xz (see logs.txt)"
    exit 1
  fi
  [[ -f $b/MANIFEST ]] && sed 's/^/bundle: /' "$b/MANIFEST" | tee -a "$summary"
  # NCCL and cuBLAS from the machine (PyTorch's wheels, the toolkit).
  local extra="" d
  for d in $(timeout 60 find / \( -path /proc -o -path /sys -o -path /dev \) \
    -prune -o \( -name 'libnccl.so.2' -o -name 'libcublasLt.so.13' \) \
    -printf '%h\n' 2>/dev/null | sort -u); do
    extra="$extra:$d"
  done
  if [[ -n $extra ]]; then
    say "CUDA libraries from the machine: ${extra#:}"
  else
    say "CUDA libraries from the machine: none found"
  fi
  export LD_LIBRARY_PATH="$b/lib$extra${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PATH="$b/bin:$PATH" FORGE_NO_CHECKPOINT=1
  local missing
  missing=$(ldd "$b/lib/libforge-cuda.so" "$b/bin/forge-run" 2>&1 |
    grep 'not found' | sort -u)
  [[ -n $missing ]] && say "not found by ldd: $missing"
  local g="$here/test/golden" p="$b/plans" w
  w=$(mktemp -d)
  # The whole call may take 10 minutes: parts that would start after
  # `budget` seconds are skipped (and reported), so the summary comes back.
  local budget="${FORGE_GPU_CHECK_BUDGET:-500}" t0=$SECONDS
  # One part: its name, a time limit in seconds, then the command; the
  # verdict and the last lines. On the GPU a GoogleTest skip is a failure
  # (the device was not usable).
  part() {
    local name=$1 limit=$2 rc=0
    shift 2
    if ((SECONDS - t0 + limit > budget)); then
      say "== $name"
      say "   NOT RUN: it could take ${limit} s and $((budget - SECONDS + t0)) s are left"
      failed=1
      return
    fi
    say "== $name"
    local started=$SECONDS
    (cd "$w" && timeout -k 10 "$limit" bash -c '"$@"' part "$@") \
      >"$w/$name.log" 2>&1 || rc=$?
    if ((rc == 0)) && [[ $dev == cuda ]] && grep -q '^\[  SKIPPED \]' "$w/$name.log"; then
      rc=skipped
    fi
    {
      echo "===== $name ($((SECONDS - started)) s, exit $rc)"
      cat "$w/$name.log"
    } >>"$logs"
    if [[ $rc == 0 ]]; then
      say "   ok ($((SECONDS - started)) s)"
    else
      failed=1
      case "$rc" in
      124 | 137) say "   FAILED: timed out after ${limit} s; the end of its log:" ;;
      skipped) say "   FAILED: tests skipped on the GPU; the end of its log:" ;;
      *) say "   FAILED (exit $rc); the end of its log:" ;;
      esac
      tail -n 8 "$w/$name.log" | sed 's/^/     /' | tee -a "$summary"
    fi
  }
  backends() {
    forge-run --backends &&
      ! grep -q "unavailable\|cannot load" <(forge-run --backends 2>&1)
  }
  golden() { # fixture plan
    forge-run --device "$dev" "$p/$2.plan" --init-from "$g/$1/init.safetensors" \
      --batch-from "$g/$1/batch.safetensors" --steps 3 --dump-state "$w/$2" &&
      python3 "$g/compare.py" "$w/$2" "$g/$1" 3 1e-4 1e-3
  }
  versusCpu() { # plan step1-tolerance later-tolerance
    local a=(--init-from "$g/dense/init.safetensors" --batch-from
      "$g/dense/batch.safetensors" --steps 3)
    forge-run --device "$dev" "$p/$1.plan" "${a[@]}" --dump-state "$w/$1-dev" &&
      forge-run --device cpu "$p/$1.plan" "${a[@]}" --dump-state "$w/$1-cpu" &&
      python3 "$g/compare.py" "$w/$1-dev" "$w/$1-cpu" 3 "$2" "$3"
  }
  logits() {
    forge-run --device "$dev" "$p/dlogits.plan" --init-from \
      "$g/dense/init.safetensors" --batch-from "$g/dense/batch.safetensors" \
      --steps 0 --dump-logits "$w/dense.logits" &&
      python3 "$g/compare.py" --files "$w/dense.logits" \
        "$g/dense/logits.safetensors" 1e-5
  }
  profile() {
    FORGE_PROFILE=1 forge-run --device "$dev" "$p/profile.plan" &&
      cat traces/summary.md
  }
  timed() { forge-run --device "$dev" "$p/$1.plan" --steps 30; }

  # timeout runs programs, not this shell's functions: export them.
  export -f backends golden versusCpu logits profile timed
  export dev g p w
  part backends 30 backends
  [[ $dev == cuda ]] && part nvidia-smi 30 nvidia-smi
  part conformance 180 ForgeCudaTests
  # Its two-channel test needs two GPUs; the lent machine has one.
  part nccl 90 ForgeNcclTests --gtest_filter=-*PipelineChannelsAreIndependent*
  for f in dense moe lion muon schedule_free; do
    part "golden-$f" 60 golden "$f" "$f"
  done
  part logits 30 logits
  part fp32-vs-cpu 60 versusCpu dense 1e-4 1e-3
  part bf16-vs-cpu 60 versusCpu bf16 3e-2 5e-2
  part fp8-vs-cpu 60 versusCpu fp8 0.25 0.25
  part profile 60 profile
  if [[ $dev == cuda ]]; then
    part big-bf16 120 timed big-bf16
    part big-fp8 120 timed big-fp8
    grep -h "fp8 matmuls\|arena\|step 30\]" "$w/big-bf16.log" \
      "$w/big-fp8.log" 2>/dev/null | tee -a "$summary"
  fi
  rm -rf "$b" "$w"
  if ((failed)); then
    say "gpu-check: some parts FAILED; summary.txt and logs.txt in $out"
    exit 1
  fi
  say "gpu-check: every part passed; summary.txt and logs.txt in $out"
}

case "${1:-}" in
bundle) bundle ;;
run) run ;;
*)
  echo "usage: scripts/gpu-check.sh bundle|run (see the comment at its top)" >&2
  exit 2
  ;;
esac
