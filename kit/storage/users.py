"""Local users of the browser chat: names, roles, need-to-know groups and argon2 password hashes.

They live in the installation's database (``kit.storage.db``: ``$KIT_HOME/kit.db``, or ``KIT_DATABASE_URL``
shared by several gateways). Only argon2id hashes are stored, never the password. A pure library: errors are
raised as kit errors, nothing is printed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kit.errors import UsageError
from kit.storage.db import Database, open_database
from kit.storage.names import check_name
from kit.storage.tables import flags
from kit.storage.tables import users as table

ROLES = ("user", "admin", "auditor")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_hasher = PasswordHasher()
# Verified when the user does not exist, so that a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("kit-dummy-password-for-timing")


UNLOCK_FLAG = "sign_in_unlocked:"  # + the account's name in lower case: when an administrator last unlocked it


@dataclass
class User:
    name: str
    role: str
    created: str
    updated: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignIn:
    """A right password: the user's role and the stamp of the credentials it was checked against."""

    role: str
    stamp: str


def stamp_of(name: str, digest: str, role: str, updated: str) -> str:
    """What a sign-in session is bound to: it changes with the password (a new salted hash), the role and any
    other change of the account (its `updated` time), and when the account is removed and added again."""
    return hashlib.sha256("\0".join((name, digest, role, updated)).encode()).hexdigest()[:32]


def users_place(home: Path) -> str:
    """Where the users are kept, for messages."""
    return _db(home).where


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _db(home: Path) -> Database:
    return open_database(home)


def _row(home: Path, name: str, *columns: sa.Column[str]) -> Any:
    with _db(home).begin("read") as conn:
        return conn.execute(sa.select(*columns).where(table.c.name == (name or "").strip())).first()


def _update(home: Path, name: str, **values: str) -> None:
    with _db(home).begin("written") as conn:
        done = conn.execute(table.update().where(table.c.name == (name or "").strip())
                            .values(updated=_now(), **values)).rowcount
    if done == 0:
        raise UsageError(f"no user named '{name}' in {users_place(home)}: add it with `kit users add {name}`.")


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
    """Group names, by the one rule of kit.storage.names (letters with accents, digits, . _ @ -; 64 at most)."""
    return sorted({check_name("group", group) for group in groups})


def add_user(home: Path, name: str, role: str, password: str, groups: Iterable[str] = ()) -> User:
    """Create a user; raises UsageError if the name is taken or invalid."""
    name, role, password = _check_name(name), _check_role(role), _check_password(password)
    member_of = ",".join(check_groups(groups))
    digest = _hasher.hash(password)
    now = _now()
    try:
        with _db(home).begin("written") as conn:
            conn.execute(table.insert().values(name=name, role=role, hash=digest, created=now, updated=now,
                                               groups=member_of))
    except sa.exc.IntegrityError:
        raise UsageError(
            f"user '{name}' exists already: use `kit users passwd {name}` to change the "
            "password, or `kit users rm` first."
        ) from None
    return User(name, role, now, now)


def verify_password(home: Path, name: str, password: str) -> str | None:
    """The user's role when the password is right; None otherwise (unknown name or wrong password)."""
    signed = check_password(home, name, password)
    return signed.role if signed else None


def check_password(home: Path, name: str, password: str) -> SignIn | None:
    """The role and credentials' stamp when the password is right; None otherwise (unknown name or wrong
    password, which take the same time)."""
    if not name or not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return None
    row = _row(home, name, table.c.name, table.c.role, table.c.hash, table.c.updated)
    if row is None:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return None
    stored, role, digest, updated = row
    try:
        _hasher.verify(digest, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(digest):
        digest = _hasher.hash(password)
        with _db(home).begin("written") as conn:
            conn.execute(table.update().where(table.c.name == stored).values(hash=digest))
    return SignIn(str(role), stamp_of(stored, digest, role, updated))


def session_stamp(home: Path, name: str) -> str | None:
    """The stamp of the user's credentials now (None: no such user); a session bound to another one is over."""
    row = _row(home, name, table.c.name, table.c.hash, table.c.role, table.c.updated)
    return stamp_of(*row) if row else None


def _user(row: Any) -> User:
    name, role, created, updated, groups = row
    return User(name, role, created, updated, tuple(g for g in (groups or "").split(",") if g))


def get_user(home: Path, name: str) -> User | None:
    row = _row(home, name, table.c.name, table.c.role, table.c.created, table.c.updated, table.c.groups)
    return _user(row) if row else None


def get_groups(home: Path, name: str) -> list[str]:
    """The need-to-know groups of a user (empty for an unknown user)."""
    row = _row(home, name, table.c.groups)
    return [g for g in (row[0] if row else "").split(",") if g]


def get_role(home: Path, name: str) -> str | None:
    user = get_user(home, name)
    return user.role if user else None


def list_users(home: Path) -> list[User]:
    with _db(home).begin("read") as conn:
        rows = conn.execute(sa.select(table.c.name, table.c.role, table.c.created, table.c.updated, table.c.groups)
                            .order_by(table.c.name)).all()
    return [_user(r) for r in rows]


def remove_user(home: Path, name: str) -> None:
    with _db(home).begin("written") as conn:
        done = conn.execute(table.delete().where(table.c.name == (name or "").strip())).rowcount
    if done == 0:
        raise UsageError(f"no user named '{name}' in {users_place(home)}: `kit users list` shows them.")


def set_password(home: Path, name: str, password: str) -> None:
    _update(home, name, hash=_hasher.hash(_check_password(password)))


def set_role(home: Path, name: str, role: str) -> None:
    _update(home, name, role=_check_role(role))


def set_groups(home: Path, name: str, groups: Iterable[str]) -> None:
    """Replace the user's need-to-know groups (none: only the public documents)."""
    _update(home, name, groups=",".join(check_groups(groups)))


def unlock_user(home: Path, name: str) -> str:
    """End the sign-in lock of an account now: the gateways forget its failed sign-ins at its next attempt
    (they compare this time with the last one they applied). Returns the time written."""
    user = get_user(home, name)
    if user is None:
        raise UsageError(f"no user named '{name}' in {users_place(home)}: `kit users list` shows them.")
    key, now = UNLOCK_FLAG + user.name.lower(), datetime.now(UTC).isoformat(timespec="microseconds")
    with _db(home).begin("written") as conn:
        conn.execute(flags.delete().where(flags.c.key == key))
        conn.execute(flags.insert().values(key=key, value=json.dumps(now)))  # JSON, as every flag
    return now


def unlocked_at(home: Path, name: str) -> str | None:
    """When an administrator last unlocked the account `name` (None: never)."""
    key = UNLOCK_FLAG + (name or "").strip().lower()
    with _db(home).begin("read") as conn:
        row = conn.execute(sa.select(flags.c.value).where(flags.c.key == key)).first()
    return str(json.loads(row[0])) if row else None
