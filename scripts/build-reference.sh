#!/usr/bin/env bash
# Build llama.cpp's own llama-server and llama-perplexity from the llama.cpp that the installed
# llama-cpp-python vendors (same commit as kit's engine), for the reference benchmarks:
#   kit bench serving --llama-server      (llama.cpp's C++ server beside kit)
#   tests/test_bench.py                   (kit's perplexity checked against llama-perplexity)
#
# Usage: scripts/build-reference.sh [--cuda] [--python PATH] [--jobs N] [--sdist FILE.tar.gz]
#
# The source is llama-cpp-python's source distribution from the package index (pip download
# --no-binary), or the tarball given with --sdist (offline). The binaries land in
# ~/.cache/kit/llama.cpp-<version>-<cpu|cuda>/bin/ (XDG_CACHE_HOME is honoured). Idempotent: when both
# binaries are there, it only prints their paths. Needs cmake and a C++ compiler (apt-get install
# cmake g++); --cuda needs the CUDA toolkit (nvcc).
set -euo pipefail

flavour=cpu
python="${PYTHON:-}"
sdist=""
jobs="$(nproc 2>/dev/null || echo 2)"
while [ $# -gt 0 ]; do
    case "$1" in
        --cuda) flavour=cuda ;;
        --python) python="$2"; shift ;;
        --jobs|-j) jobs="$2"; shift ;;
        --sdist) sdist="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "$python" ]; then
    if [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"; else python="$(command -v python3)"; fi
fi
version="$("$python" -c 'from importlib.metadata import version; print(version("llama_cpp_python"))' 2>/dev/null)" || {
    echo "llama-cpp-python is not installed for $python: install kit first (scripts/install.sh)." >&2
    exit 1
}

cache="${XDG_CACHE_HOME:-$HOME/.cache}/kit/llama.cpp-${version}-${flavour}"
bin="$cache/bin"
# The same compiler flags as kit's own llama.cpp (scripts/llama-cflags.sh: Intel AMX left out), recorded
# next to the binaries: binaries built with other flags are built again.
cflags="$(bash "$here/scripts/llama-cflags.sh")"
if [ -x "$bin/llama-server" ] && [ -x "$bin/llama-perplexity" ] && [ "$(cat "$bin/cflags" 2>/dev/null)" = "$cflags" ]; then
    echo "llama-server: $bin/llama-server"
    echo "llama-perplexity: $bin/llama-perplexity"
    exit 0
fi

for tool in cmake c++; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install cmake g++" >&2; exit 1; }
done
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF)
if [ -n "$cflags" ]; then
    cmake_args+=("-DCMAKE_C_FLAGS=$cflags" "-DCMAKE_CXX_FLAGS=$cflags")
fi
if [ "$flavour" = cuda ]; then
    command -v nvcc >/dev/null || { echo "--cuda needs the CUDA toolkit (nvcc on PATH)" >&2; exit 1; }
    cmake_args+=(-DGGML_CUDA=ON)
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/kit-llama-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
if [ -z "$sdist" ]; then
    echo "downloading the source of llama-cpp-python $version..." >&2
    "$python" -m pip download --quiet --no-binary :all: --no-deps \
        "llama-cpp-python==$version" -d "$work/sdist" >&2
    sdist="$(find "$work/sdist" -maxdepth 1 -name '*.tar.gz' | head -n 1)"
    [ -n "$sdist" ] || { echo "pip did not download a source distribution of llama-cpp-python $version" >&2; exit 1; }
fi
case "$(basename "$sdist")" in
    llama_cpp_python-"$version".tar.gz|llama-cpp-python-"$version".tar.gz) ;;
    *) echo "$sdist is not the source of llama-cpp-python $version (the installed version)" >&2; exit 1 ;;
esac
tar -xzf "$sdist" -C "$work"
src="$(find "$work" -maxdepth 3 -type d -path '*/vendor/llama.cpp' | head -n 1)"
[ -n "$src" ] && [ -f "$src/CMakeLists.txt" ] || { echo "no vendor/llama.cpp in $sdist" >&2; exit 1; }

echo "building llama-server and llama-perplexity ($flavour, $jobs jobs; 10 to 40 minutes on 2 cores)..." >&2
cmake -S "$src" -B "$work/build" "${cmake_args[@]}" >"$work/cmake.log" 2>&1 || {
    tail -n 30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" --config Release --target llama-server llama-perplexity -j "$jobs" \
    >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; exit 1; }

mkdir -p "$cache"
staging="$(mktemp -d "$cache/.bin.XXXXXX")"
cp "$work/build/bin/llama-server" "$work/build/bin/llama-perplexity" "$staging/"
printf '%s' "$cflags" > "$staging/cflags"
rm -rf "$bin"
mv "$staging" "$bin"
chmod 755 "$bin" "$bin/llama-server" "$bin/llama-perplexity"
echo "llama-server: $bin/llama-server"
echo "llama-perplexity: $bin/llama-perplexity"
