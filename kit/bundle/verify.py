"""``kit bundle verify``: every file of a bundle (a ``.tar`` archive or its extracted folder) against
``bundle.json``, and the Ed25519 signature when the bundle has one.

A file whose sha256 or size differs, a file the manifest lists that is missing, a file the manifest
does not list, a link or a path leaving the archive: each is named. Standard library only, but for the
signature; ``python -m kit.bundle.verify PATH`` runs from the kit wheel before anything is installed.
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from kit.bundle.manifest import (
    MANIFEST,
    SIGNATURE,
    SIGNER,
    UNLISTED,
    check_signature,
    fingerprint,
    read_manifest,
    read_public_key,
    sha256_stream,
)
from kit.errors import IntegrityError, KitError


@dataclass
class Report:
    where: str
    manifest: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    signature: str = "none"  # none, valid (pinned key), valid (key in the bundle), invalid

    @property
    def ok(self) -> bool:
        return not self.problems


def _safe(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and name not in ("", ".")


def _entries(path: Path) -> Iterator[tuple[str, str, BinaryIO | None]]:
    """(relative name, kind, stream) for each entry: kind is file, dir or other."""
    if path.is_dir():
        for item in sorted(path.rglob("*")):
            rel = item.relative_to(path).as_posix()
            if item.is_symlink():
                yield rel, "other", None
            elif item.is_file():
                with open(item, "rb") as fh:
                    yield rel, "file", fh
            elif item.is_dir():
                yield rel, "dir", None
            else:
                yield rel, "other", None
        return
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise IntegrityError(f"{path} is not a readable tar archive ({exc}) / archive illisible.") from None
    with archive:
        for member in archive:
            name = member.name.removeprefix("./")
            if member.isfile():
                stream = archive.extractfile(member)
                yield name, "file", stream  # type: ignore[misc]
            elif member.isdir():
                yield name, "dir", None
            else:
                yield name, "other", None


def _listed(folder: Path) -> Iterator[tuple[str, str, BinaryIO | None]]:
    """The entries of an extracted folder that bundle.json names (and bundle.json, its signature)."""
    try:
        listed = read_manifest((folder / MANIFEST).read_bytes(), str(folder))["files"]
    except OSError:
        return
    for name in sorted({*listed, *UNLISTED}):
        item = folder / name
        if item.is_symlink() or (item.exists() and not item.is_file()):
            yield name, "other", None
        elif item.is_file():
            with open(item, "rb") as fh:
                yield name, "file", fh


def verify_bundle(path: str | Path, key: Path | None = None, require_signature: bool = False,
                  signature: bool = True, allow_unlisted: bool = False) -> Report:
    """Check the bundle at ``path``; the report names every problem (an empty list: all good).

    ``signature=False`` checks the hashes only (install.sh, before cryptography is installed);
    ``allow_unlisted`` lets an extracted folder hold other files (its .venv, kit.yaml): nothing
    installs from a file that bundle.json does not list."""
    path = Path(path)
    report = Report(str(path))
    if not path.exists():
        raise IntegrityError(f"{path} does not exist / n'existe pas.")
    seen: dict[str, tuple[str, int]] = {}
    special: dict[str, bytes] = {}
    entries = _listed(path) if allow_unlisted and path.is_dir() else _entries(path)
    for name, kind, stream in entries:
        if not _safe(name):
            report.problems.append(f"{name}: path outside the archive / chemin hors de l'archive")
            continue
        if kind == "other":
            report.problems.append(f"{name}: a link or special file, refused / lien ou fichier spécial refusé")
        elif kind == "file" and stream is not None:
            if name in UNLISTED:
                special[name] = stream.read()
                seen[name] = (hashlib.sha256(special[name]).hexdigest(), len(special[name]))
            else:
                seen[name] = sha256_stream(stream)
    if MANIFEST not in special:
        raise IntegrityError(f"{path} holds no {MANIFEST}: it is not a kit bundle / ce n'est pas un bundle kit.")
    manifest = read_manifest(special[MANIFEST], str(path))
    report.manifest = manifest
    listed: dict[str, dict[str, Any]] = manifest["files"]
    for name, info in sorted(listed.items()):
        got = seen.get(name)
        if got is None:
            report.problems.append(f"{name}: missing / absent")
        elif got[0] != info.get("sha256") or got[1] != info.get("size"):
            report.problems.append(f"{name}: sha256 differs from bundle.json, the file was changed or damaged "
                                   f"/ le sha256 diffère, fichier modifié ou abîmé")
        else:
            report.checked += 1
    for name in sorted(set(seen) - set(listed) - UNLISTED) if not allow_unlisted else ():
        report.problems.append(f"{name}: not listed in bundle.json / absent du manifeste")
    if signature:
        _check_signature(report, special, key, require_signature)
    return report


def _check_signature(report: Report, special: dict[str, bytes], key: Path | None, required: bool) -> None:
    signature = special.get(SIGNATURE)
    if signature is None:
        report.signature = "none"
        if required or key is not None:
            report.problems.append(f"{SIGNATURE}: missing, the bundle is not signed / bundle non signé")
        return
    public = read_public_key(key) if key is not None else special.get(SIGNER)
    if public is None:
        report.problems.append(f"{SIGNER}: missing: pass the signer's key with --key / clé absente")
        return
    if key is None:
        from base64 import b64decode

        try:
            public = b64decode(public.strip(), validate=True)
        except ValueError:
            public = b""
    if len(public) != 32 or not check_signature(public, special[MANIFEST], signature):
        report.signature = "invalid"
        report.problems.append(f"{SIGNATURE}: the signature of bundle.json does not hold "
                               f"{'for the key given' if key else 'for signer.pub'} / signature invalide")
        return
    pinned = "the key given" if key is not None else "signer.pub inside the bundle (pass --key to pin it)"
    report.signature = f"valid, {fingerprint(public)}, checked with {pinned}"


def main(argv: list[str] | None = None) -> int:
    """``python -m kit.bundle.verify [--signature] [--key PUB] BUNDLE``: used by install.sh, which checks
    the hashes before anything is installed and the signature once ``cryptography`` is."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kit.bundle.verify")
    parser.add_argument("bundle")
    parser.add_argument("--signature", action="store_true", help="check the signature as well")
    parser.add_argument("--key", type=Path, default=None, help="the signer's public key (implies --signature)")
    parser.add_argument("--allow-unlisted", action="store_true", help="files not in bundle.json are let be")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    signature = args.signature or args.key is not None
    try:
        report = verify_bundle(args.bundle, key=args.key, require_signature=args.key is not None,
                               signature=signature, allow_unlisted=args.allow_unlisted)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in report.problems:
        print(f"REFUSED {problem}", file=sys.stderr)
    if report.ok:
        print(f"bundle checked: {report.checked} files match bundle.json"
              + (f"; signature: {report.signature}" if signature else ""))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
