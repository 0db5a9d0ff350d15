"""The database that holds every piece of the gateway's state: API keys, users and groups, acknowledgements,
feedback and reports, admin switches, conversations and the audit log.

``KIT_DATABASE_URL`` names it (``postgresql://user:password@host/db`` for several gateways); without it, one
SQLite file, ``$KIT_HOME/kit.db`` (mode 0600). The tables are SQLAlchemy Core tables; their schema is
versioned by Alembic (``kit/migrations``): an empty database is created at the latest version on first use,
an older one is refused until ``kit db upgrade`` has run, so that an upgrade never loses data. Files of the
one-machine layout that came before (users.db, state.db, conversations.db, keys.json, audit.db) are moved
into the database by the same command.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from kit.errors import ConfigError, KitError, redact
from kit.files import create_private
from kit.storage.tables import metadata

DATABASE_ENV = "KIT_DATABASE_URL"
SCHEMA_VERSION = "0002"  # the one this kit needs: the last revision under kit/migrations/versions (tested)
DEFAULT_FILE = "kit.db"
RECALL_S = 1.0  # how long a remembered read holds (see Database.recall)


def database_url(home: Path, environ: dict[str, str] | None = None) -> str:
    """``KIT_DATABASE_URL``, else the SQLite file under ``home``."""
    url = (os.environ if environ is None else environ).get(DATABASE_ENV, "").strip()
    if not url:
        return f"sqlite:///{Path(home).expanduser() / DEFAULT_FILE}"
    scheme = urlsplit(url).scheme
    if scheme not in ("sqlite", "postgresql", "postgres", "postgresql+psycopg"):
        raise ConfigError(f"{DATABASE_ENV} is {redact(url)}: give postgresql://user:password@host:5432/db, or "
                          "sqlite:////absolute/path/kit.db, or unset it for the SQLite file under KIT_HOME.")
    return url


def driver_url(url: str) -> str:
    """The URL as psycopg (the audit log's driver) or SQLite expects it: no SQLAlchemy driver name."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


def _sqlalchemy_url(url: str) -> str:
    url = driver_url(url)
    return "postgresql+psycopg://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def _file_identity(path: Path | None) -> tuple[int, int] | None:
    try:
        st = path.stat() if path else None
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st else None


@dataclass
class Database:
    url: str
    engine: sa.Engine
    identity: tuple[int, int] | None = None
    _recalled: dict[tuple[Any, ...], tuple[float, Any]] = field(default_factory=dict, repr=False)

    @property
    def sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def path(self) -> Path | None:
        return Path(self.url.removeprefix("sqlite:///")) if self.sqlite else None

    @property
    def where(self) -> str:
        return str(self.path) if self.sqlite else redact(self.url)

    def recall(self, key: tuple[Any, ...], read: Callable[[], Any], *, keep_none: bool = True,
               fresh: bool = False) -> Any:
        """``read()``, remembered for RECALL_S: for what every request reads (API keys, acknowledgements). A
        write in this process forgets everything at once; a change made by another process (`kit keys
        revoke`, another gateway) is seen within RECALL_S. ``keep_none=False``: a None is not remembered
        (what is missing now may be written elsewhere the next moment). ``fresh``: read now, and remember
        that."""
        now = time.monotonic()
        hit = None if fresh else self._recalled.get(key)
        if hit is not None and now - hit[0] < RECALL_S:
            return hit[1]
        value = read()
        if value is None and not keep_none:
            return None
        if len(self._recalled) > 10_000:
            self._recalled.clear()
        self._recalled[key] = (now, value)
        return value

    @contextmanager
    def begin(self, what: str = "used") -> Iterator[sa.Connection]:
        """One transaction; database errors become a KitError that says what to check."""
        writes = what != "read"
        if writes:
            self._recalled.clear()  # before, and after: no read remembered meanwhile outlives the write
        try:
            with self.engine.connect() as bare:
                conn = bare.execution_options(kit_read=not writes)
                with conn.begin():
                    yield conn
        except sa.exc.IntegrityError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise KitError(f"the database {self.where} could not be {what} ({_reason(exc)}): check the disk space, "
                           "the file permissions or the database server.") from None
        finally:
            if writes:
                self._recalled.clear()

    def scrub(self) -> None:
        """After deleting personal data from SQLite: copy the overwritten pages into the file and empty the
        write-ahead log, so deleted text cannot be read back from the disk."""
        if not self.sqlite:
            return
        try:
            raw = self.engine.raw_connection()  # outside any transaction, as a checkpoint must be
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
            finally:
                raw.close()
        except (sa.exc.SQLAlchemyError, sqlite3.Error) as exc:
            raise KitError(f"the database {self.where} could not be cleaned ({_reason(exc)}): check the disk "
                           "space.") from None


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0][:300]


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions begin below, taking the write lock at once
    cur = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "secure_delete=ON", "foreign_keys=ON", "busy_timeout=30000"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


_open: dict[str, Database] = {}
_open_lock = threading.Lock()


def open_database(home: Path) -> Database:
    """The database of this installation, its schema checked (created when empty); one engine per URL."""
    url = database_url(home)
    with _open_lock:
        db = _open.get(url)
        if db is not None and db.sqlite and db.identity != _file_identity(db.path):
            db.engine.dispose()  # the file was moved away or replaced: open the one there now
            db = None
        if db is None:
            db = connect(url)
            ensure_schema(db, home)
            _open[url] = db
    return db


def connect(url: str) -> Database:
    """An engine for ``url``, schema unchecked (for `kit db`)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///")).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            create_private(path)
        except OSError as exc:
            raise KitError(f"cannot create the database {path}: {exc}; check the directory and its "
                           "permissions.") from None
        url = f"sqlite:///{path}"
        engine = sa.create_engine(url, poolclass=sa.pool.QueuePool, pool_size=4, max_overflow=12,
                                  connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        # A writer begins with BEGIN IMMEDIATE: it waits for another (busy timeout) instead of failing when its
        # read transaction turns into a write. Reads begin deferred: in WAL mode they never wait for a writer.
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(
            "BEGIN" if conn.get_execution_options().get("kit_read") else "BEGIN IMMEDIATE"))
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError(f"{DATABASE_ENV} names PostgreSQL, which needs the psycopg package: "
                              "pip install 'kit[postgres]'.") from None
        engine = sa.create_engine(_sqlalchemy_url(url), pool_pre_ping=True, pool_size=5, max_overflow=10)
    db = Database(url, engine)
    db.identity = _file_identity(db.path)
    return db


def forget_databases() -> None:
    """Close every engine (tests, and processes that fork)."""
    with _open_lock:
        for db in _open.values():
            db.engine.dispose()
        _open.clear()


# schema versions ---------------------------------------------------------------------------------------------


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    return cfg


def migrations_head() -> str:
    """The last revision as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_alembic_config()).get_current_head())


def current_revision(db: Database) -> str | None:
    """The schema version recorded in the database (None for an empty one); without importing Alembic."""
    try:
        with db.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            return str(found) if found is not None else None
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(f"the database {db.where} cannot be reached ({_reason(exc)}): start it or correct "
                          f"{DATABASE_ENV}.") from None


def _has_tables(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(set(sa.inspect(conn).get_table_names()) & ({t.name for t in metadata.sorted_tables}
                                                                | {"audit_log"}))


@contextmanager
def _upgrade_lock(db: Database) -> Iterator[None]:
    """Only one process migrates at a time: a PostgreSQL advisory lock, or a lock file beside SQLite."""
    if db.sqlite:
        assert db.path is not None
        with os.fdopen(os.open(str(db.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600), "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with db.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_advisory_lock(727100)")
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(727100)")
            conn.commit()


def upgrade(db: Database, revision: str = "head") -> tuple[str | None, str]:
    """Bring the schema to ``revision`` (the latest by default); return (before, after)."""
    from alembic import command

    with _upgrade_lock(db):
        before = current_revision(db)
        cfg = _alembic_config()
        try:
            with db.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except sa.exc.SQLAlchemyError as exc:
            raise KitError(f"the database {db.where} could not be upgraded ({_reason(exc)}); nothing was "
                           "changed: check the disk space and the database user's rights, then run "
                           "`kit db upgrade` again.") from None
        return before, str(current_revision(db))


def audit_in_database(environ: dict[str, str] | None = None) -> bool:
    """Whether the audit log lives in this database (``KIT_AUDIT_URL`` may keep it elsewhere)."""
    return not (os.environ if environ is None else environ).get("KIT_AUDIT_URL", "").strip()


def import_files(db: Database, home: Path) -> dict[str, int]:
    """Move the files of the earlier one-machine layout found under ``home`` into the database."""
    from kit.storage.legacy import import_legacy, legacy_files

    if not legacy_files(home, with_audit=audit_in_database()):
        return {}
    with _upgrade_lock(db):
        return import_legacy(db, home, with_audit=audit_in_database())


def ensure_schema(db: Database, home: Path) -> None:
    """Create the schema of an empty database (and move in the files of the earlier layout); refuse a
    database at an older version."""
    current = current_revision(db)
    if current is None and not _has_tables(db):
        upgrade(db)
    elif current != SCHEMA_VERSION:
        raise ConfigError(f"the database {db.where} has schema version {current or 'none'}, this kit needs "
                          f"{SCHEMA_VERSION}: run `kit db upgrade` (it keeps every row), then start again.")
    import_files(db, home)
