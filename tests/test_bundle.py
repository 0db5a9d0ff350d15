"""`kit bundle`: the manifest and SBOM list every file; `kit bundle verify` and `install.sh --bundle`
refuse a changed, missing or added file by name, and a signature that does not hold. A small bundle
made of real files (the kit's own wheel, a model file) keeps these fast; test_bundle_offline.py builds
and installs the real one."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT, run_kit

from kit.bundle.create import seal, write_tar
from kit.bundle.manifest import Component

SCRIPT = str(ROOT / "scripts" / "install.sh")


def _kit_wheel(dest: Path) -> Path:
    """A zip of the kit package: enough for install.sh's check, which imports kit.bundle.verify from it."""
    wheel = dest / "kit-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path in sorted((ROOT / "kit").rglob("*.py")):
            zf.write(path, path.relative_to(ROOT).as_posix())
    return wheel


def _small_bundle(tmp_path: Path, key: object = None, name: str = "small",
                  with_crypto: bool = False) -> tuple[Path, dict]:
    stage = tmp_path / f"{name}-stage"
    (stage / "wheels").mkdir(parents=True)
    (stage / "models" / "tiny").mkdir(parents=True)
    wheel = _kit_wheel(stage / "wheels")
    if with_crypto:  # what install.sh installs first to check a signature
        from kit.bundle.wheels import closure, repack

        for dist in closure(["cryptography"]).values():
            repack(dist, stage / "wheels")
    (stage / "models" / "tiny" / "tiny.gguf").write_bytes(os.urandom(4096))
    (stage / "models.lock").write_text('{"version": 1, "models": {}}\n')
    comps = [Component("kit", "0.1.0", "kit", "Apache-2.0", "built here", [f"wheels/{wheel.name}"]),
             Component("tiny", "abc", "model", "MIT", "https://example.org/tiny", ["models/tiny/tiny.gguf"]),
             Component("models.lock", "1", "lock", "Apache-2.0", "kit", ["models.lock"])]
    meta = {"created_at": "2026-01-01T00:00:00Z", "kit_version": "0.1.0", "python": "3.11", "backend": "cpu",
            "models": ["tiny"], "system_packages": "apt-get install python3.11 python3.11-venv libgomp1"}
    manifest = seal(stage, comps, meta, key)
    out = tmp_path / f"{name}.tar"
    write_tar(stage, out)
    return out, manifest


def _rewrite(src: Path, dest: Path, change: str | None = None, drop: str | None = None,
             add: tuple[str, bytes] | None = None) -> Path:
    """A copy of the archive with one member's bytes changed (same size), dropped, or one added."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for member in tin:
            if member.name == drop:
                continue
            data = tin.extractfile(member).read() if member.isfile() else None
            if member.name == change and data is not None:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            tout.addfile(member, io.BytesIO(data) if data is not None else None)
        if add:
            info = tarfile.TarInfo(add[0])
            info.size = len(add[1])
            tout.addfile(info, io.BytesIO(add[1]))
    return dest


def test_manifest_and_sbom_list_every_file(tmp_path: Path) -> None:
    out, manifest = _small_bundle(tmp_path)
    with tarfile.open(out) as tar:
        names = {m.name for m in tar if m.isfile()}
        sbom = json.load(tar.extractfile("sbom.cdx.json"))
        stored = json.load(tar.extractfile("bundle.json"))
    assert stored == manifest
    assert names - {"bundle.json"} == set(manifest["files"])
    for comp in manifest["components"]:
        assert {"name", "version", "sha256", "licence", "source"} <= set(comp)
        assert comp["sha256"] == manifest["files"][comp["files"][0]]["sha256"]
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    by_name = {c["name"]: c for c in sbom["components"]}
    assert by_name["tiny"]["type"] == "machine-learning-model"
    assert by_name["tiny"]["hashes"] == [{"alg": "SHA-256",
                                          "content": manifest["files"]["models/tiny/tiny.gguf"]["sha256"]}]
    assert by_name["kit"]["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert by_name["kit"]["purl"] == "pkg:pypi/kit@0.1.0"


def test_verify_accepts_the_bundle_and_names_a_changed_missing_or_added_file(tmp_path: Path) -> None:
    out, _ = _small_bundle(tmp_path)
    r = run_kit("bundle", "verify", str(out))
    assert r.returncode == 0, r.stderr
    assert "files match bundle.json" in r.stdout and "signature: none" in r.stdout
    changed = _rewrite(out, tmp_path / "changed.tar", change="models/tiny/tiny.gguf")
    r = run_kit("bundle", "verify", str(changed))
    assert r.returncode == 1
    assert "REFUSED models/tiny/tiny.gguf: sha256 differs" in r.stderr
    assert "models.lock" not in r.stderr  # only the changed file is named
    r = run_kit("bundle", "verify", str(_rewrite(out, tmp_path / "missing.tar", drop="models.lock")))
    assert r.returncode == 1 and "REFUSED models.lock: missing" in r.stderr
    r = run_kit("bundle", "verify", str(_rewrite(out, tmp_path / "added.tar", add=("wheels/evil.whl", b"x"))))
    assert r.returncode == 1 and "REFUSED wheels/evil.whl: not listed in bundle.json" in r.stderr
    r = run_kit("bundle", "verify", "--json", str(changed))
    data = json.loads(r.stdout)
    assert data["ok"] is False and data["problems"][0].startswith("models/tiny/tiny.gguf")


def test_verify_refuses_a_link_or_a_path_out_of_the_archive(tmp_path: Path) -> None:
    out, _ = _small_bundle(tmp_path)
    bad = tmp_path / "escape.tar"
    with tarfile.open(out) as tin, tarfile.open(bad, "w") as tout:
        for member in tin:
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
        link = tarfile.TarInfo("models/tiny/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tout.addfile(link)
        up = tarfile.TarInfo("../outside")
        up.size = 1
        tout.addfile(up, io.BytesIO(b"x"))
    r = run_kit("bundle", "verify", str(bad))
    assert r.returncode == 1
    assert "REFUSED models/tiny/link: a link or special file" in r.stderr
    assert "REFUSED ../outside: path outside the archive" in r.stderr


def test_signature_holds_for_its_key_only(tmp_path: Path) -> None:
    key = tmp_path / "site.key"
    r = run_kit("bundle", "keygen", str(key))
    assert r.returncode == 0, r.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600" and Path(f"{key}.pub").exists()
    other = tmp_path / "other.key"
    assert run_kit("bundle", "keygen", str(other)).returncode == 0
    from kit.bundle.manifest import load_private_key

    out, _ = _small_bundle(tmp_path, key=load_private_key(key))
    r = run_kit("bundle", "verify", "--key", f"{key}.pub", str(out))
    assert r.returncode == 0, r.stderr
    assert "signature: valid" in r.stdout and "the key given" in r.stdout
    r = run_kit("bundle", "verify", "--key", f"{other}.pub", str(out))
    assert r.returncode == 1 and "REFUSED bundle.json.sig: the signature of bundle.json does not hold" in r.stderr
    # bundle.json changed (a file's hash replaced to match a swapped file): the signature no longer holds
    forged = _rewrite(out, tmp_path / "forged.tar", change="bundle.json")
    r = run_kit("bundle", "verify", "--key", f"{key}.pub", str(forged))
    assert r.returncode == 1 and "bundle.json" in r.stderr
    unsigned, _ = _small_bundle(tmp_path, name="unsigned")
    r = run_kit("bundle", "verify", "--require-signature", str(unsigned))
    assert r.returncode == 1 and "REFUSED bundle.json.sig: missing" in r.stderr
    r = run_kit("bundle", "verify", "--key", f"{key}.pub", str(unsigned))
    assert r.returncode == 1


def test_install_refuses_a_changed_file_by_name_before_installing(tmp_path: Path) -> None:
    out, _ = _small_bundle(tmp_path)
    changed = _rewrite(out, tmp_path / "changed.tar", change="models/tiny/tiny.gguf")
    prefix = tmp_path / "venv"
    r = subprocess.run(["/bin/bash", SCRIPT, "--bundle", str(changed), "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "KIT_HOME": str(tmp_path / "home")})
    assert r.returncode == 1
    assert "REFUSED models/tiny/tiny.gguf: sha256 differs" in r.stderr
    assert "nothing was installed" in r.stderr
    assert not (prefix / "bin" / "python").exists()
    assert not (tmp_path / "home").exists()


def test_doctor_reports_the_bundle(tmp_path: Path, kit_env: Path) -> None:
    out, manifest = _small_bundle(tmp_path)
    folder = tmp_path / "unpacked"
    folder.mkdir()
    with tarfile.open(out) as tar:
        tar.extractall(folder, filter="data")
    from kit.bundle.install import record
    from kit.ops.doctor import check_bundle

    assert check_bundle(kit_env) is None  # no line for an install made from a checkout
    record(folder, kit_env, source=str(out))
    check = check_bundle(kit_env)
    assert check is not None and check.status == "PASS"
    assert str(out) in check.detail and "2026-01-01T00:00:00Z" in check.detail and "tiny" in check.detail
    r = run_kit("doctor")
    assert "bundle" in r.stdout and str(out) in r.stdout
    record(folder, kit_env, source="second.tar")  # a newer bundle: the earlier one stays in the history
    data = json.loads((kit_env / "bundle.json").read_text())
    assert data["source"] == "second.tar" and data["history"][0]["source"] == str(out)


@pytest.mark.parametrize("bad", ["3.10", "2.7"])
def test_create_refuses_another_python(bad: str, tmp_path: Path) -> None:
    r = run_kit("bundle", "create", "-o", str(tmp_path / "b.tar"), "--python", bad)
    assert r.returncode == 2 and f"--python {bad}" in r.stderr and not (tmp_path / "b.tar").exists()


def test_an_extracted_folder_may_hold_its_install_but_not_a_changed_file(tmp_path: Path) -> None:
    """The install.sh inside an extracted bundle installs it; its .venv and kit.yaml sit beside the files."""
    from kit.bundle.verify import verify_bundle

    out, _ = _small_bundle(tmp_path)
    folder = tmp_path / "unpacked"
    folder.mkdir()
    with tarfile.open(out) as tar:
        tar.extractall(folder, filter="data")
    (folder / ".venv" / "bin").mkdir(parents=True)
    (folder / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    (folder / "kit.yaml").write_text("deployment: {}\n")
    assert verify_bundle(folder, allow_unlisted=True).ok
    strict = verify_bundle(folder)
    assert "kit.yaml: not listed in bundle.json / absent du manifeste" in strict.problems
    (folder / "models.lock").write_text('{"version": 1, "models": {"x": {}}}\n')
    report = verify_bundle(folder, allow_unlisted=True)
    assert [p.split(":")[0] for p in report.problems] == ["models.lock"]


@pytest.mark.slow  # install.sh makes a virtual environment and installs cryptography into it
def test_install_refuses_a_bundle_not_signed_by_the_sites_key(tmp_path: Path) -> None:
    from kit.bundle.manifest import load_private_key

    key, other = tmp_path / "maker.key", tmp_path / "other.key"
    assert run_kit("bundle", "keygen", str(key)).returncode == 0
    assert run_kit("bundle", "keygen", str(other)).returncode == 0
    out, _ = _small_bundle(tmp_path, key=load_private_key(key), with_crypto=True)
    prefix = tmp_path / "venv"
    r = subprocess.run(["/bin/bash", SCRIPT, "--bundle", str(out), "--bundle-key", f"{other}.pub",
                        "--prefix", str(prefix)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "KIT_HOME": str(tmp_path / "home")})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REFUSED bundle.json.sig: the signature of bundle.json does not hold for the key given" in r.stderr
    assert "nothing else was installed" in r.stderr
    assert not (prefix / "bin" / "kit").exists() and not (tmp_path / "home").exists()
