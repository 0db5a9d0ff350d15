"""The key files of the usage rules, kept apart from the data they protect.

The audit key (``policy.audit_key_file``) keys the audit log's hash chain; the pseudonymisation key
(``policy.pseudonym_key_file``) keys the users' pseudonyms in the audit log and the feedback. Both are 32
random bytes in a file readable by the service only (mode 0600), next to the configuration file by
default (``/etc/kit/audit.key`` for a system install), or in ``~/.config/kit`` without one, and never
under ``$KIT_HOME``: whoever can write the databases must not hold the keys too.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from kit.config import Settings
from kit.errors import ConfigError

KEY_BYTES = 32
AUDIT_KEY, PSEUDONYM_KEY, LEGACY_PSEUDONYM_KEY = "audit.key", "pseudonym.key", "secret.key"
_logger = logging.getLogger(__name__)


def key_folder(settings: Settings) -> Path:
    """The folder of the configuration file in force, else ``$XDG_CONFIG_HOME/kit`` (``~/.config/kit``)."""
    if settings.source:
        return Path(settings.source).expanduser().resolve().parent
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser() / "kit"


def key_path(settings: Settings, setting: str, default_name: str, *, apart_from: tuple[Path, ...] = ()) -> Path:
    """Where the key of ``policy.<setting>`` lives; ConfigError when that is under $KIT_HOME or in a folder
    of ``apart_from`` (the audit database's)."""
    configured = getattr(settings.policy, setting)
    path = Path(configured).expanduser() if configured else Path(default_name)
    if not path.is_absolute():
        path = key_folder(settings) / path
    resolved = path.resolve()
    for folder in (settings.home, *apart_from):
        folder = folder.expanduser().resolve()
        if resolved.parent == folder or folder in resolved.parents:
            raise ConfigError(
                f"policy.{setting} is {path}, in {folder} beside the data it protects ($KIT_HOME or the audit "
                "database): whoever can write that data would hold the key too. Set policy."
                f"{setting} to a file in another folder readable by the service only (the default is next to the "
                "configuration file, e.g. /etc/kit), then move the key there.")
    return path


def _check_private(path: Path, setting: str) -> None:
    info = path.stat()
    loose = info.st_mode & 0o077
    # A key provisioned by root for the service's group alone (a Kubernetes secret mounted with fsGroup, mode
    # 0440) may be group-readable; a key the service owns must be private.
    if loose and (loose & ~stat.S_IRGRP or info.st_uid == os.getuid()):
        raise ConfigError(
            f"{path} (policy.{setting}) can be read or written by other users (mode {stat.S_IMODE(info.st_mode):04o}):"
            f" make it readable by the service only: chmod 600 {path}")


def read_key(path: Path, setting: str) -> bytes | None:
    """The key in ``path``, None when the file does not exist; ConfigError when it is not private,
    unreadable or too short."""
    try:
        _check_private(path, setting)
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path} (policy.{setting}): {exc.strerror}; it must be readable by the "
                          "user the service runs as (chown that user, mode 0600)") from exc
    if len(data) < KEY_BYTES:
        raise ConfigError(f"{path} (policy.{setting}) is damaged (shorter than {KEY_BYTES} bytes): restore it "
                          "from your backup")
    return data


def create_key(path: Path, setting: str, data: bytes | None = None, *,
               source: Path | None = None) -> tuple[bytes, bool]:
    """Write ``data`` (32 random bytes when None; the bytes of ``source`` when moving a key) to ``path`` with
    mode 0600, unless the file appeared meanwhile; return the key in the file and whether this call created it."""
    step = (f"install -m 0600 -o <service user> {source} {path} && rm {source} (the key moves, pseudonyms stay the "
            "same)" if source else f"(umask 077; head -c {KEY_BYTES} /dev/urandom > {path}) && chown <service user> "
            f"{path}")
    data = secrets.token_bytes(KEY_BYTES) if data is None else data
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(staging, path)  # never replaces a key another process wrote meanwhile
        finally:
            os.unlink(staging)
    except FileExistsError:
        existing = read_key(path, setting)
        if existing is None:
            raise ConfigError(f"{path} (policy.{setting}) vanished while it was being created: start again") from None
        return existing, False
    except OSError as exc:
        raise ConfigError(f"cannot create {path} (policy.{setting}): {exc.strerror}. As an administrator: {step}; or "
                          f"set policy.{setting} to a writable file outside $KIT_HOME") from exc
    _logger.info("created %s (policy.%s), mode 0600: back it up with the configuration", path, setting)
    return data, True


def pseudonym_key(settings: Settings, *, apart_from: tuple[Path, ...] = ()) -> bytes:
    """The pseudonymisation key; the key that earlier versions kept in $KIT_HOME/secret.key is moved to
    ``policy.pseudonym_key_file`` on first use, so that pseudonyms stay the same."""
    path = key_path(settings, "pseudonym_key_file", PSEUDONYM_KEY, apart_from=apart_from)
    legacy = settings.home / LEGACY_PSEUDONYM_KEY
    data = read_key(path, "pseudonym_key_file")
    if data is None and legacy.exists():
        old = legacy.read_bytes()
        if len(old) < KEY_BYTES:
            raise ConfigError(f"{legacy} is damaged (too short): remove it to create a new pseudonymisation key "
                              "(the pseudonyms of earlier rows and feedback will no longer match)")
        data, _ = create_key(path, "pseudonym_key_file", old, source=legacy)
        _logger.warning("moved the pseudonymisation key from %s to %s (policy.pseudonym_key_file), out of "
                        "$KIT_HOME; pseudonyms are unchanged", legacy, path)
    elif data is None:
        data, _ = create_key(path, "pseudonym_key_file")
    if legacy.exists():
        if legacy.read_bytes() != data:
            _logger.warning("%s is an older pseudonymisation key, no longer used (the key is %s): delete it",
                            legacy, path)
            return data
        try:
            legacy.unlink()
        except OSError as exc:
            _logger.warning("could not delete %s (%s), a copy of the pseudonymisation key now kept in %s: "
                            "delete it", legacy, exc.strerror, path)
    return data
