"""The bundle's manifest (``bundle.json``), its CycloneDX SBOM and its Ed25519 signature.

The manifest lists every component (name, version, licence, source, its files) and every file of the
archive with its sha256 and size. ``bundle.json.sig`` is the Ed25519 signature of ``bundle.json``'s
bytes, ``signer.pub`` the raw public key that made it (trust comes from the key the site was given
apart: ``kit bundle verify --key``). Only the standard library here, except ``cryptography`` for keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from kit.errors import IntegrityError, UsageError

MANIFEST = "bundle.json"
SBOM = "sbom.cdx.json"
SIGNATURE = "bundle.json.sig"
SIGNER = "signer.pub"
FORMAT = 1
# Files of the archive that bundle.json cannot list (itself, and what signs it).
UNLISTED = frozenset({MANIFEST, SIGNATURE, SIGNER})
# What the archive cannot bring: the system's Python and OpenMP runtime (llama.cpp links libgomp).
APT_LINE = "apt-get install python3.11 python3.11-venv libgomp1"


@dataclass
class Component:
    name: str
    version: str
    kind: str  # python-wheel, llama-cpp, kit, model, embedder, spacy-pipeline, lock, installer
    licence: str
    source: str
    files: list[str] = field(default_factory=list)
    sha256: str = ""  # of the component's main file


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_path(path: Path) -> tuple[str, int]:
    with open(path, "rb") as fh:
        return sha256_stream(fh)


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def build_manifest(root: Path, components: list[Component], meta: dict[str, Any]) -> dict[str, Any]:
    """The manifest of the folder ``root``: every file under it (but bundle.json and its signature)."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in UNLISTED:
            continue
        digest, size = sha256_path(path)
        files[rel] = {"sha256": digest, "size": size}
    for comp in components:
        if comp.files and not comp.sha256:
            comp.sha256 = files[comp.files[0]]["sha256"]
    return {"kit_bundle": FORMAT, **meta, "components": [asdict(c) for c in components], "files": files}


def read_manifest(data: bytes, where: str) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{where}: {MANIFEST} is not valid JSON ({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("kit_bundle") != FORMAT or \
            not isinstance(manifest.get("files"), dict):
        raise IntegrityError(f"{where}: {MANIFEST} is not a kit bundle manifest (format {FORMAT}).")
    return manifest


def _licence_entry(licence: str) -> dict[str, Any]:
    simple = licence.replace(".", "").replace("-", "").replace("+", "").isalnum()
    if simple and licence != "UNKNOWN":
        return {"license": {"id": licence}} if licence in _SPDX_COMMON else {"license": {"name": licence}}
    if " OR " in licence or " AND " in licence or " WITH " in licence:
        return {"expression": licence}
    return {"license": {"name": licence}}


_SPDX_COMMON = frozenset({"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "MPL-2.0", "PSF-2.0",
                          "LGPL-2.1-or-later", "LGPL-3.0-or-later", "GPL-3.0-or-later", "Unlicense", "Zlib",
                          "0BSD", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0"})
_SBOM_TYPES = {"model": "machine-learning-model", "embedder": "machine-learning-model", "lock": "data",
               "installer": "file", "kit": "application"}


def build_sbom(manifest: dict[str, Any]) -> dict[str, Any]:
    """A CycloneDX 1.5 JSON SBOM of the manifest's components."""
    components = []
    for comp in manifest["components"]:
        entry: dict[str, Any] = {
            "type": _SBOM_TYPES.get(comp["kind"], "library"),
            "bom-ref": f"{comp['kind']}:{comp['name']}@{comp['version']}",
            "name": comp["name"],
            "version": comp["version"],
            "hashes": [{"alg": "SHA-256", "content": comp["sha256"]}] if comp["sha256"] else [],
            "licenses": [_licence_entry(comp["licence"])],
            "externalReferences": [{"type": "distribution", "url": comp["source"]}]
            if comp["source"].startswith("http") else [],
            "properties": [{"name": "kit:kind", "value": comp["kind"]},
                           {"name": "kit:source", "value": comp["source"]},
                           *({"name": "kit:file", "value": f} for f in comp["files"])],
        }
        if comp["kind"] in ("python-wheel", "llama-cpp", "kit", "spacy-pipeline"):
            entry["purl"] = f"pkg:pypi/{comp['name'].lower()}@{comp['version']}"
        components.append(entry)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": manifest.get("created_at", now()),
            "tools": {"components": [{"type": "application", "name": "kit bundle create",
                                      "version": manifest.get("kit_version", "?")}]},
            "component": {"type": "application", "name": "kit", "version": manifest.get("kit_version", "?"),
                          "bom-ref": "kit-bundle"},
        },
        "components": components,
    }


# --- Ed25519 ---------------------------------------------------------------------------------------

def crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise UsageError("Signing and checking signatures need the Python package cryptography: "
                         "pip install cryptography / la signature demande le paquet cryptography.") from None
    return serialization, ed25519


def load_private_key(path: Path) -> Any:
    serialization, ed25519 = crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{path} is not an unencrypted PEM private key ({exc}). Make one with "
                         "`kit bundle keygen KEY` / clé privée PEM illisible.") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"{path} is not an Ed25519 key: make one with `kit bundle keygen KEY` / "
                         "la clé doit être Ed25519.")
    return key


def public_raw(private_key: Any) -> bytes:
    serialization, _ = crypto()
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(public).digest()).decode().rstrip("=")


def read_public_key(path: Path) -> bytes:
    """A public key file: the raw key base64-encoded on one line (``signer.pub``), or a PEM."""
    serialization, ed25519 = crypto()
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise UsageError(f"{path} is not a PEM public key ({exc}).") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise UsageError(f"{path} is not an Ed25519 public key / clé publique non Ed25519.")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UsageError(f"{path} is not an Ed25519 public key (base64 of 32 bytes, or PEM).")
    return raw


def sign(private_key: Any, data: bytes) -> bytes:
    return base64.b64encode(private_key.sign(data)) + b"\n"


def check_signature(public: bytes, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    _, ed25519 = crypto()
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public).verify(base64.b64decode(signature.strip()), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def encode_public(public: bytes) -> bytes:
    return base64.b64encode(public) + b"\n"
