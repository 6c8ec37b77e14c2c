#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the whole test suite: unit
# tests (GoogleTest) and tool tests (lit + FileCheck) in one lit run. Ends with
# one line "N passed, N failed".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
build="${FORGE_BUILD_DIR:-build}"
report="$build/test-results.xml"
rm -f "$report"
set +e
/usr/lib/llvm-22/bin/lit -sv --show-skipped --show-unsupported --xunit-xml-output "$report" "$build/test" "$build/test/Unit"
status=$?
set -e
# The visible notice of what a machine without a GPU could not run: lit's
# --show-skipped/--show-unsupported lines above list the tests themselves.
backends="$("$build/bin/forge-run" --backends 2>/dev/null | head -1 || true)"
case "$backends" in
*" 0 device(s) visible"*)
  reason="${backends#*visible: }"
  echo "test.sh: notice: no usable CUDA GPU here (${reason%)}): the CUDA conformance"
  echo "  suite (ForgeCudaTests, ForgeNcclTests) and the GPU training tests (cuda-*.test)"
  echo "  were skipped; on a GPU machine they run (docs/cuda.md)" ;;
*"cuda (built"*) ;;
*) echo "test.sh: notice: the CUDA backend was not built; its tests were skipped" ;;
esac
python3 - "$report" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError) as e:
    print(f"test.sh: no test report ({e})", file=sys.stderr)
    print("0 passed, 1 failed")
    sys.exit(0)
passed = failed = skipped = 0
for case in root.iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    elif case.find("skipped") is not None:
        skipped += 1
    else:
        passed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
