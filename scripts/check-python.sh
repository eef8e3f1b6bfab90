#!/usr/bin/env bash
# Usage: scripts/check-python.sh PYTHON VENV_DIR
# Fails with a clear message unless set-up can use Python >= 3.11: the existing venv's, or PYTHON to create it.
set -uo pipefail
python="${1:-}"
venv="${2:-.venv}"

version_of() { "$1" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo "not a working Python"; }
new_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

if [ -x "$venv/bin/python" ]; then
  new_enough "$venv/bin/python" && exit 0
  echo "error: $venv uses Python $(version_of "$venv/bin/python"); 3.11 or newer is required. Run: make distclean" >&2
  exit 1
fi
if [ -n "$python" ] && new_enough "$python"; then
  exit 0
fi
if [ -n "$python" ]; then
  found="$python: $(version_of "$python")"
else
  found="no python3.11+ on PATH (python3: $(command -v python3 >/dev/null && version_of python3 || echo missing))"
fi
echo "error: Python 3.11 or newer is required; found $found." >&2
echo "       Install it (Debian/Ubuntu: apt-get install python3 python3-venv, on a release with 3.11+)" >&2
echo "       or point make at one: make PYTHON=/path/to/python3.11 <target>" >&2
exit 1
