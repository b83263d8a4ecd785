#!/usr/bin/env bash
# Create .venv when missing and install the project into it (again only when requirements change).
# With --browser, also make sure Debian's chromium is present for the browser tests; with --scale, install
# the optional Ray extra (requirements-scale.txt: --engine ray, docs/scale.md) so its tests run.
set -euo pipefail
cd "$(dirname "$0")/.."

browser=0
scale=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    --scale) scale=1 ;;
    *) echo "usage: $0 [--browser] [--scale]" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY=$candidate; break; fi
  done
fi
[ -n "$PY" ] || { echo "error: Python 3.11 is required (python3.11 not found)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $PY"
  "$PY" -m venv .venv
fi

stamp=.venv/.installed
want=$(cat requirements.txt pyproject.toml | sha1sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing requirements into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

scale_stamp=.venv/.installed-scale
want_scale=$(cat requirements-scale.txt | sha1sum | cut -d' ' -f1)
if [ "$scale" = 1 ] && [ "$(cat "$scale_stamp" 2>/dev/null)" != "$want_scale" ]; then
  echo "installing the optional Ray extra (requirements-scale.txt)"
  .venv/bin/python -m pip install -q -r requirements-scale.txt
  echo "$want_scale" > "$scale_stamp"
fi

if [ "$browser" = 1 ]; then
  if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's chromium for the browser tests"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
    else
      echo "note: chromium not found and cannot be installed (not root / no apt): browser tests will skip" >&2
    fi
  fi
  if ! command -v ip >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
  fi
fi
