# lit configuration for forge's tool tests (forgec, forge-run, forge-opt, and
# the shipped configs). Unit tests live in test/Unit with their own config.
import os
import subprocess

import lit.formats

config.name = "forge"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".test", ".mlir", ".toml"]
config.excludes = ["Inputs", "Unit", "CMakeLists.txt", "lit.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.forge_obj_root, "test")

# Tools first on PATH: ours, then LLVM's FileCheck/not/split-file.
path = os.pathsep.join([config.forge_tools_dir, config.llvm_tools_dir,
                        config.environment.get("PATH", os.environ["PATH"])])
config.environment["PATH"] = path

# forge-run resumes from and writes checkpoints under checkpoint.dir
# (default "checkpoints", relative to the working directory) like
# KempnerForge; tests that share a directory must not resume each other's
# runs, so checkpointing is off unless a test turns it on
# (`env FORGE_NO_CHECKPOINT=0 forge-run ...`, test/forge-run/checkpoint.test).
config.environment["FORGE_NO_CHECKPOINT"] = "1"

config.substitutions.append(("%forge_src", config.forge_src_root))
config.substitutions.append(("%forge_obj", config.forge_obj_root))
config.substitutions.append(("%forge_lib", config.forge_lib_dir))
config.substitutions.append(("%forge_tools", config.forge_tools_dir))

if config.forge_build_compiler:
    config.available_features.add("compiler")
if config.forge_have_cuda:
    config.available_features.add("cuda")
    # 'cuda-gpu': forge-run sees a GPU, so the CUDA training tests run;
    # without one they report UNSUPPORTED (the visible skip) and the tests
    # of the no-GPU behaviour run instead.
    import re
    probe = subprocess.run(
        [os.path.join(config.forge_tools_dir, "forge-run"), "--backends"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = re.search(r"(\d+) device\(s\) visible", probe.stdout)
    if seen and int(seen.group(1)) > 0:
        config.available_features.add("cuda-gpu")
    if seen and int(seen.group(1)) > 1:
        config.available_features.add("cuda-gpus-2")

# The test-only Python tools (TensorBoard, the independent reader of forge's
# event files; jsonschema, the validator of the profiler's traces) live in the
# venv scripts/setup.sh creates; tests that need them REQUIRE 'tensorboard' or
# 'jsonschema' and run them through %forge_python.
forge_python = os.path.join(config.forge_src_root, ".cache", "venv", "bin", "python")
config.substitutions.append(("%forge_python", forge_python))
if os.access(forge_python, os.X_OK):
    probe = subprocess.run(
        [forge_python, "-c",
         "import tensorboard.backend.event_processing.event_accumulator"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if probe.returncode == 0:
        config.available_features.add("tensorboard")
    probe = subprocess.run([forge_python, "-c", "import jsonschema"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if probe.returncode == 0:
        config.available_features.add("jsonschema")
