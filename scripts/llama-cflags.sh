#!/usr/bin/env bash
# Extra C/C++ compiler flags for building llama.cpp on this machine (printed on one line; empty when none).
#
# Intel AMX is left out. A native build (-march=native) on a CPU that has AMX (Xeon Sapphire Rapids
# and later) compiles llama.cpp's AMX matrix kernels, and those crash this llama.cpp version with a
# segmentation fault at the first batch of several tokens on such machines (the weights are repacked
# for AMX, then ggml_backend_amx_mul_mat faults). Without AMX, llama.cpp uses its AVX-512 kernels.
# KIT_LLAMA_AMX=on keeps AMX, for a llama.cpp version where it works.
set -euo pipefail
[ "${KIT_LLAMA_AMX:-off}" = "on" ] && exit 0
cc="${CC:-$(command -v cc || command -v gcc || true)}"
[ -n "$cc" ] || exit 0
# Only where the compiler would turn AMX on by itself, and knows how to turn it off.
macros="$("$cc" -march=native -dM -E - </dev/null 2>/dev/null || true)"
if [[ "$macros" == *__AMX_INT8__* ]]; then
    flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    if "$cc" $flags -march=native -dM -E - </dev/null >/dev/null 2>&1; then
        echo "$flags"
    fi
fi
