#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the platform needs when they are missing:
#   redis-server  quota counters (`llmops up` starts a private one when none is running)
#   postgresql    only the test suite needs it (it starts a private cluster from these binaries)
#   pythonX.Y-venv  only when .venv must still be created and `python -m venv` cannot work
#   prometheus    only the test suite needs it: prometheus and promtool check the dashboards and alert rules
#                 (the tests start their own server; the package's own service is not used)
#   chromium      only the test suite needs it: the console's end-to-end tests drive it headless through
#                 Playwright for Python (Playwright's own browser download is not used)
# It never fails set-up: without root/passwordless sudo or apt-get it says what is missing and goes on,
# because an operator may provide these another way (LLMOPS_REDIS_URL, LLMOPS_POSTGRES_URL).
set -uo pipefail

PYTHON="${PYTHON:-python3}"
NEED_VENV="${NEED_VENV:-0}"
missing=()

have_postgres_binaries() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
have_postgres_binaries || missing+=(postgresql)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "$NEED_VENV" = 1 ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  pyver="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  missing+=("python${pyver}-venv")
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: missing system packages: ${missing[*]} (no apt-get here; install them with your package manager)" >&2
  exit 0
fi

if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
  sudo=(sudo -n)
else
  echo "note: missing system packages: ${missing[*]}" >&2
  echo "      install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 0
fi

echo "Installing system packages: ${missing[*]}"
if ! { "${sudo[@]}" apt-get update -qq &&
       "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
  echo "warning: could not install ${missing[*]}; continuing without them" >&2
fi
exit 0
