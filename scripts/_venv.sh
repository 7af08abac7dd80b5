# Shared by scripts/demo and scripts/test: a virtual environment with the project installed.
# Usage: source scripts/_venv.sh [EXTRAS]   (e.g. "test"); sets PY to its python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PCO_WRITER_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
SPEC="$ROOT"
if [ -n "${1:-}" ]; then SPEC="$ROOT[$1]"; fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$SPEC"
PY="$VENV/bin/python"
