#!/usr/bin/env bash
# Lint kit: ruff (style, imports, bug patterns) on the code and tests, mypy on the code, and the
# architecture's import contracts (import-linter, declared in pyproject.toml).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${KIT_VENV:-$ROOT/.venv}"

"$VENV/bin/ruff" check kit ui tests benchmarks
"$VENV/bin/mypy" kit ui benchmarks
"$VENV/bin/lint-imports" --no-cache
