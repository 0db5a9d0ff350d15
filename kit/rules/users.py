"""Local users of the browser chat: names, roles and argon2 password hashes.

The file is ``$KIT_HOME/users.db`` (SQLite, mode 0600). Only argon2id hashes are stored, never the
password. A pure library: errors are raised as kit errors, nothing is printed.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kit.errors import KitError, UsageError
from kit.files import create_private

ROLES = ("user", "admin", "auditor")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL,
                                  created TEXT NOT NULL, updated TEXT NOT NULL);
"""
_hasher = PasswordHasher()
# Verified when the user does not exist, so that a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("kit-dummy-password-for-timing")


@dataclass
class User:
    name: str
    role: str
    created: str
    updated: str


def users_file(home: Path) -> Path:
    return Path(home) / "users.db"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def _db(home: Path, create: bool = True) -> Iterator[sqlite3.Connection]:
    path = users_file(home)
    if not path.exists():
        if not create:
            raise _NoFile()
    create_private(path)
    try:
        conn = sqlite3.connect(path, timeout=10)
    except sqlite3.Error as exc:
        raise KitError(f"{path} cannot be opened ({exc}): check its permissions.") from None
    try:
        conn.executescript(_SCHEMA)
        if "groups" not in {row[1] for row in conn.execute("PRAGMA table_info(users)")}:
            conn.execute("ALTER TABLE users ADD COLUMN groups TEXT NOT NULL DEFAULT ''")  # need-to-know groups
        with conn:
            yield conn
    except sqlite3.DatabaseError as exc:
        raise KitError(f"{path} is not a valid users file ({exc}): restore it from a backup.") from None
    finally:
        conn.close()


class _NoFile(Exception):
    pass


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise UsageError(
            f"'{name}' is not a valid user name: use 1 to 64 letters, digits or . _ @ + - (starting with a letter "
            "or digit)."
        )
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"role '{role}' is unknown: choose one of {', '.join(ROLES)}.")
    return role


def _check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise UsageError(f"the password is too short: use at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"the password is too long: use at most {MAX_PASSWORD} characters.")
    if not password.strip():
        raise UsageError("the password is only spaces: choose another one.")
    return password


def check_groups(groups: Iterable[str]) -> list[str]:
    """Group names: letters, digits, dot, dash, underscore; at most 64 characters each."""
    out = []
    for group in groups:
        group = (group or "").strip()
        if not re.fullmatch(r"[\w.-]{1,64}", group):
            raise UsageError(f"group '{group}' is not valid: use letters, digits, '.', '-' or '_' (64 at most).")
        out.append(group)
    return sorted(set(out))


def add_user(home: Path, name: str, role: str, password: str, groups: Iterable[str] = ()) -> User:
    """Create a user; raises UsageError if the name is taken or invalid."""
    name, role, password = _check_name(name), _check_role(role), _check_password(password)
    member_of = ",".join(check_groups(groups))
    digest = _hasher.hash(password)
    now = _now()
    with _db(home) as conn:
        try:
            conn.execute(
                "INSERT INTO users (name, role, hash, created, updated, groups) VALUES (?, ?, ?, ?, ?, ?)",
                (name, role, digest, now, now, member_of),
            )
        except sqlite3.IntegrityError:
            raise UsageError(
                f"user '{name}' exists already: use `kit users passwd {name}` to change the "
                "password, or `kit users rm` first."
            ) from None
    return User(name, role, now, now)


def verify_password(home: Path, name: str, password: str) -> str | None:
    """The user's role when the password is right; None otherwise (unknown name or wrong password)."""
    if not name or not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return None
    try:
        with _db(home, create=False) as conn:
            row = conn.execute("SELECT role, hash FROM users WHERE name = ?", (name.strip(),)).fetchone()
    except _NoFile:
        row = None
    if row is None:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return None
    role, digest = row
    try:
        _hasher.verify(digest, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(digest):
        with _db(home) as conn:
            conn.execute("UPDATE users SET hash = ? WHERE name = ?", (_hasher.hash(password), name.strip()))
    return str(role)


def get_user(home: Path, name: str) -> User | None:
    try:
        with _db(home, create=False) as conn:
            row = conn.execute(
                "SELECT name, role, created, updated FROM users WHERE name = ?", ((name or "").strip(),)
            ).fetchone()
    except _NoFile:
        return None
    return User(*row) if row else None


def get_groups(home: Path, name: str) -> list[str]:
    """The need-to-know groups of a user (empty for an unknown user)."""
    try:
        with _db(home, create=False) as conn:
            row = conn.execute("SELECT groups FROM users WHERE name = ?", ((name or "").strip(),)).fetchone()
    except _NoFile:
        return []
    return [g for g in (row[0] if row else "").split(",") if g]


def set_groups(home: Path, name: str, groups: Iterable[str]) -> None:
    member_of = ",".join(check_groups(groups))
    with _db(home) as conn:
        cur = conn.execute("UPDATE users SET groups = ?, updated = ? WHERE name = ?",
                           (member_of, _now(), (name or "").strip()))
    if cur.rowcount == 0:
        raise UsageError(f"no user named '{name}' in {users_file(home)}: add it with `kit users add {name}`.")


def get_role(home: Path, name: str) -> str | None:
    user = get_user(home, name)
    return user.role if user else None


def list_users(home: Path) -> list[User]:
    try:
        with _db(home, create=False) as conn:
            rows = conn.execute("SELECT name, role, created, updated FROM users ORDER BY name").fetchall()
    except _NoFile:
        return []
    return [User(*r) for r in rows]


def remove_user(home: Path, name: str) -> None:
    with _db(home) as conn:
        cur = conn.execute("DELETE FROM users WHERE name = ?", ((name or "").strip(),))
    if cur.rowcount == 0:
        raise UsageError(f"no user named '{name}' in {users_file(home)}: `kit users list` shows them.")


def set_password(home: Path, name: str, password: str) -> None:
    password = _check_password(password)
    digest = _hasher.hash(password)
    with _db(home) as conn:
        cur = conn.execute(
            "UPDATE users SET hash = ?, updated = ? WHERE name = ?", (digest, _now(), (name or "").strip())
        )
    if cur.rowcount == 0:
        raise UsageError(f"no user named '{name}' in {users_file(home)}: add it with `kit users add {name}`.")


def set_role(home: Path, name: str, role: str) -> None:
    role = _check_role(role)
    with _db(home) as conn:
        cur = conn.execute(
            "UPDATE users SET role = ?, updated = ? WHERE name = ?", (role, _now(), (name or "").strip())
        )
    if cur.rowcount == 0:
        raise UsageError(f"no user named '{name}' in {users_file(home)}: add it with `kit users add {name}`.")
