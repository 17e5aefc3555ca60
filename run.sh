#!/usr/bin/env bash
# MedSynth on a fresh machine. Creates and reuses .venv at the repository root.
#   ./run.sh studio [ARGS] the main job: MedSynth Studio (the modules in a browser) on the sample data
#   ./run.sh demo [ARGS]   every module on the sample data -> output/demo (outputs + PNG overviews)
#   ./run.sh test [ARGS]   the test suite (pytest ARGS)
#   ./run.sh setup         only install
#   ./run.sh medsynth ...  any medsynth command inside the environment
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${MEDSYNTH_PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

setup() {
  # Debian packages the tests and the headless rendering need (only what is missing).
  local pkgs=() p
  for p in libgl1 libegl1 libxkbcommon0 libfontconfig1 libglib2.0-0 libdbus-1-3 libosmesa6 chromium; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || pkgs+=("$p")
  done
  if [ ${#pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing Debian packages: ${pkgs[*]}"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null) ||
        echo "warning: could not install ${pkgs[*]}" >&2
    else
      echo "warning: missing Debian packages (install them as root): ${pkgs[*]}" >&2
    fi
  fi
  local stamp="$VENV/.medsynth-installed"
  local want
  want=$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first: the CPU wheel on disk; any other torch spec would pull a multi-GB CUDA build
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  "$VENV/bin/python" -m pip install -q -r requirements.txt -c constraints.txt
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" >"$stamp"
}

cmd=${1:-studio}
shift || true
case "$cmd" in
  setup) setup ;;
  studio) setup; exec "$VENV/bin/medsynth" studio "$@" ;;
  demo) setup; exec "$VENV/bin/medsynth" demo "$@" ;;
  test)
    setup
    export QT_QPA_PLATFORM=offscreen
    exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
    ;;
  medsynth) setup; exec "$VENV/bin/medsynth" "$@" ;;
  *) echo "usage: ./run.sh studio|demo|test|setup|medsynth ..." >&2; exit 2 ;;
esac
