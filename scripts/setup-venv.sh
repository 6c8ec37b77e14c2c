#!/usr/bin/env bash
# Creates .cache/venv (Debian's python3 + python3-venv) and installs the
# test-only Python tools of scripts/requirements-test.txt into it. Idempotent:
# a stamp holding the hash of the requirements file (and the interpreter's
# version) skips pip entirely when nothing changed, so a second run neither
# downloads nor reinstalls. Called by scripts/setup.sh.
#
#   FORGE_VENV  the venv directory (default: .cache/venv)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${FORGE_VENV:-.cache/venv}"
reqs=scripts/requirements-test.txt
stamp="$venv/.forge-requirements.stamp"

# Debian's interpreter, not whatever python3 is first on PATH (pyenv shims):
# python3-venv is installed for it, and the venv must not depend on a user's
# setup.
python=/usr/bin/python3
version() { "$1" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null; }
want="$(sha256sum "$reqs" | cut -d' ' -f1) $(version "$python")"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "setup: installing the test Python tools into $venv ($reqs)"
# A venv left by another interpreter (or a broken one) is rebuilt from
# scratch; otherwise pip only adds what changed.
if [ "$(version "$venv/bin/python")" != "$(version "$python")" ]; then
  "$python" -m venv --clear "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs"
# Written last: an interrupted install leaves no stamp and is redone next time.
echo "$want" > "$stamp"
