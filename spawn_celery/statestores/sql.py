"""SQL statestore on SQLAlchemy 2.x Core: SQLite, PostgreSQL (psycopg2) and MySQL/MariaDB (pymysql).

Schema management: the two tables are created on first use with ``MetaData.create_all`` (which checks before it
creates). We chose that over migrations because the schema is two tables that only this module owns, so there is
nothing for an operator to run; a process losing a creation race just tries again. A future schema change will
bring a migration tool (Alembic) and a version table.

- ``spawn_snapshots``: the current snapshot, primary key (system, actor).
- ``spawn_snapshot_history``: one row per saved revision, primary key (system, actor, revision).

Both have the columns ``parent``, ``revision``, ``status``, ``tags`` (JSON text), ``data_type`` (the type URL, in
clear), ``data`` (Cloak ciphertext; LONGBLOB on MySQL), ``inserted_at`` and ``updated_at`` (UTC). Key columns are
``VARCHAR(190)`` (MySQL's index limit) and, on MySQL, binary-collated so that names compare as on the others.
Unlike Spawn we key rows by name, not by an Erlang ``phash2``, so the tables are readable by anyone.

Writes: one transaction per call, a batch of snapshots (``save_many``; ``save`` is a batch of one) in a fixed
number of statements: the stored revisions of the batch's actors are read and locked (``SELECT ... FOR UPDATE``;
SQLite starts write transactions with ``BEGIN IMMEDIATE``, which takes the database's write lock), then new and
changed rows are written with executemany. The current row is inserted or updated unless a newer revision is
stored; every snapshot goes into the history. A concurrent first insert of the same actor, a deadlock or a
connection dropped mid-way rolls the transaction back and it is tried again (three attempts in all).

Operations: ``pool_pre_ping`` replaces connections a database server's restart broke; connections inherited over
``fork()`` (Celery prefork) are dropped in the child, never shared; SQLite runs in WAL mode with a busy timeout,
so several processes can share one file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine, Row

from spawn_celery.cipher import Cipher
from spawn_celery.errors import ConfigError, DecryptionError, StateStoreError
from spawn_celery.spares import Spares
from spawn_celery.statestores.base import NAME_MAX, Snapshot, StateStore

_T = TypeVar("_T")
_ATTEMPTS = 3
_CONNECT_TIMEOUT_S = 5
_SQLITE_BUSY_TIMEOUT_S = 30
_INSTALL_HINTS = {
    "postgresql": "use postgresql+psycopg2:// and pip install 'spawn-celery[postgres]'",
    "mysql": "use mysql+pymysql:// and pip install 'spawn-celery[mysql]'",
    "mariadb": "use mariadb+pymysql:// and pip install 'spawn-celery[mysql]'",
}
_MYSQL = ("mysql", "mariadb")
_NAME = sa.String(NAME_MAX).with_variant(mysql.VARCHAR(NAME_MAX, charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL)
_TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
_BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL)

metadata = sa.MetaData()
"""The statestore's tables (for tools that want to inspect or create them)."""


def _table(name: str, *, history: bool) -> sa.Table:
    """Declare one of the two tables; they differ only in whether ``revision`` is part of the key."""
    return sa.Table(
        name,
        metadata,
        sa.Column("system", _NAME, primary_key=True),
        sa.Column("actor", _NAME, primary_key=True),
        sa.Column("revision", sa.BigInteger, primary_key=history, nullable=False, autoincrement=False),
        sa.Column("parent", _NAME, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("data_type", sa.Text, nullable=False),
        sa.Column("data", _BLOB, nullable=False),
        sa.Column("inserted_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )


snapshots = _table("spawn_snapshots", history=False)
"""The current snapshot of each actor."""
history = _table("spawn_snapshot_history", history=True)
"""Every saved revision of each actor."""

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _drop_inherited_connections() -> None:
    """In a forked child, forget the parent's pooled connections without closing the parent's sockets."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_drop_inherited_connections)


class SqlStateStore(StateStore):
    """Statestore on any SQLAlchemy URL (SQLite file, PostgreSQL, MySQL/MariaDB). Thread-safe.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:///spawn.db`` or ``postgresql+psycopg2://user:pw@host/db``.
        cipher: encrypts ``data`` at rest.
        pool_size: connections kept open per process (server databases).

    Raises:
        ConfigError: the URL is malformed or its driver is not installed (the message says what to install).
    """

    def __init__(self, url: str, *, cipher: Cipher, pool_size: int = 10) -> None:
        """Build the engine; nothing connects until the first call."""
        self._cipher = cipher
        self._engine = _create_engine(url, pool_size)
        self._where = self._engine.url.render_as_string(hide_password=True)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._load: _Query | None = None
        _ENGINES.add(self._engine)

    def save(self, snapshot: Snapshot) -> None:
        """See :meth:`StateStore.save`."""
        self.save_many([snapshot])

    def save_many(self, snapshots: Sequence[Snapshot]) -> None:
        """See :meth:`StateStore.save_many`: one transaction and a handful of statements for the whole batch."""
        rows = [self._row(snapshot) for snapshot in snapshots]
        if rows:
            self._run("save", lambda conn: _write(conn, rows), write=True)

    def _row(self, snapshot: Snapshot) -> dict[str, Any]:
        """The column values of ``snapshot`` (data encrypted), without the timestamps."""
        return {
            "system": snapshot.system,
            "actor": snapshot.actor,
            "parent": snapshot.parent,
            "revision": snapshot.revision,
            "status": snapshot.status,
            "tags": json.dumps(snapshot.tags, sort_keys=True, separators=(",", ":")),
            "data_type": snapshot.type_url,
            "data": self._cipher.encrypt(snapshot.data),
        }

    def load(self, system: str, actor: str) -> Snapshot | None:
        """See :meth:`StateStore.load`.

        One statement on a pooled DBAPI connection, no transaction around it (a single SELECT reads a consistent
        row): activation runs it for every actor it wakes.
        """
        if self._load is None:
            self._create_tables()
            self._load = _Query(_LOAD, self._engine.dialect)
        query, params = self._load, {"system": system, "actor": actor}
        return self._snapshot(self._retrying("load", lambda: query.first(self._engine, params)))

    def load_revision(self, system: str, actor: str, revision: int) -> Snapshot | None:
        """See :meth:`StateStore.load_revision`."""
        query = sa.select(history).where(*_match(history, system, actor), history.c.revision == revision)
        return self._snapshot(self._run("load_revision", lambda conn: conn.execute(query).first()))

    def revisions(self, system: str, actor: str) -> list[int]:
        """See :meth:`StateStore.revisions`."""
        query = sa.select(history.c.revision).where(*_match(history, system, actor)).order_by(history.c.revision)
        return self._run("revisions", lambda conn: [int(rev) for rev in conn.execute(query).scalars()])

    def delete(self, system: str, actor: str) -> None:
        """See :meth:`StateStore.delete`."""

        def remove(conn: Connection) -> None:
            conn.execute(history.delete().where(*_match(history, system, actor)))
            conn.execute(snapshots.delete().where(*_match(snapshots, system, actor)))

        self._run("delete", remove, write=True)

    def ping(self) -> None:
        """See :meth:`StateStore.ping`."""
        self._run("ping", lambda conn: conn.execute(sa.text("SELECT 1")).scalar_one(), tables=False)

    def close(self) -> None:
        """See :meth:`StateStore.close`."""
        if self._load is not None:
            self._load.release()
        self._engine.dispose()

    def _snapshot(self, row: Row[Any] | _Row | None) -> Snapshot | None:
        """Decrypt a table row into a snapshot."""
        if row is None:
            return None
        try:
            data = self._cipher.decrypt(bytes(row.data))
        except DecryptionError as exc:
            raise DecryptionError(f"state of {row.system}/{row.actor} revision {row.revision}: {exc}") from None
        return Snapshot(
            system=row.system,
            actor=row.actor,
            revision=int(row.revision),
            type_url=row.data_type,
            data=data,
            tags=json.loads(row.tags),
            parent=row.parent,
            status=row.status,
            updated_at=row.updated_at.replace(tzinfo=UTC),
        )

    def _run(self, what: str, work: Callable[[Connection], _T], *, write: bool = False, tables: bool = True) -> _T:
        """Run ``work`` in one transaction, retrying transient failures; map database errors to StateStoreError."""
        if tables:
            self._create_tables()

        def transaction() -> _T:
            with self._engine.connect() as conn:
                conn.execution_options(spawn_write=write)
                with conn.begin():
                    return work(conn)

        return self._retrying(what, transaction)

    def _retrying(self, what: str, call: Callable[[], _T]) -> _T:
        """Call ``call``, again after a transient failure (three attempts in all).

        Other database errors, and the last transient one, become :class:`StateStoreError`.
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return call()
            except sa.exc.SQLAlchemyError as exc:
                if attempt == _ATTEMPTS or not _transient(exc):
                    raise StateStoreError(f"statestore {what} failed on {self._where}: {_reason(exc)}") from exc
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    def _create_tables(self) -> None:
        """Create the tables once per store, in a write transaction (another process may be doing the same)."""
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                self._run("table creation", metadata.create_all, write=True, tables=False)
                self._ready = True


_CHUNK = 500
"""Most actor names in one ``IN`` list."""
_STORED = sa.select(snapshots.c.system, snapshots.c.actor, snapshots.c.revision).where(
    snapshots.c.system == sa.bindparam("system"), snapshots.c.actor.in_(sa.bindparam("actors", expanding=True))
).with_for_update()
_KEPT = sa.select(history.c.system, history.c.actor, history.c.revision).where(
    history.c.system == sa.bindparam("system"),
    history.c.actor.in_(sa.bindparam("actors", expanding=True)),
    history.c.revision.in_(sa.bindparam("revisions", expanding=True)),
).with_for_update()
_UPDATE_CURRENT = snapshots.update().where(
    snapshots.c.system == sa.bindparam("k_system"), snapshots.c.actor == sa.bindparam("k_actor")
)
_UPDATE_HISTORY = history.update().where(
    history.c.system == sa.bindparam("k_system"),
    history.c.actor == sa.bindparam("k_actor"),
    history.c.revision == sa.bindparam("k_revision"),
)
_KEYS = ("system", "actor")


def _write(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Save ``rows`` (see :meth:`SqlStateStore._row`) in the open write transaction.

    Per actor, the current row takes the batch's highest revision unless a newer one is stored; every row goes
    into the history, replacing the stored row of the same revision only if it is not older than the current.
    Reads lock what they read (``FOR UPDATE``), then the writes run as executemany: 2 selects per system and up to
    4 writes per batch, however many rows.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["system"], row["actor"])
        if key not in latest or row["revision"] >= latest[key]["revision"]:
            latest[key] = row
    by_system: dict[str, list[str]] = {}
    for system, actor in latest:
        by_system.setdefault(system, []).append(actor)
    revisions = sorted({row["revision"] for row in rows})
    stored: dict[tuple[str, str], int] = {}
    kept: set[tuple[str, str, int]] = set()
    for system, actors in by_system.items():
        for i in range(0, len(actors), _CHUNK):
            chunk = actors[i : i + _CHUNK]
            for sys_, actor, revision in conn.execute(_STORED, {"system": system, "actors": chunk}):
                stored[(sys_, actor)] = int(revision)
            wanted = {"system": system, "actors": chunk, "revisions": revisions}
            kept.update((sys_, actor, int(rev)) for sys_, actor, rev in conn.execute(_KEPT, wanted))
    final = {key: max(stored.get(key, -1), row["revision"]) for key, row in latest.items()}
    new_current = [{**row, "inserted_at": now, "updated_at": now} for key, row in latest.items() if key not in stored]
    changed_current = [
        {**_changes(row, now), "k_system": key[0], "k_actor": key[1]}
        for key, row in latest.items()
        if key in stored and stored[key] <= row["revision"]
    ]
    new_history: dict[tuple[str, str, int], dict[str, Any]] = {}
    changed_history: dict[tuple[str, str, int], dict[str, Any]] = {}
    for row in rows:
        ident = (row["system"], row["actor"], row["revision"])
        if ident not in kept:
            new_history[ident] = {**row, "inserted_at": now, "updated_at": now}
        elif row["revision"] >= final[(row["system"], row["actor"])]:
            changed_history[ident] = {**_changes(row, now), "k_system": ident[0], "k_actor": ident[1],
                                      "k_revision": ident[2]}
    writes: tuple[tuple[Any, list[dict[str, Any]]], ...] = (
        (snapshots.insert(), new_current),
        (_UPDATE_CURRENT, changed_current),
        (history.insert(), list(new_history.values())),
        (_UPDATE_HISTORY, list(changed_history.values())),
    )
    for statement, params in writes:
        if params:
            conn.execute(statement, params)


def _changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The columns an update of ``row`` sets."""
    changes = {k: v for k, v in row.items() if k not in _KEYS}
    changes["updated_at"] = now
    return changes


_LOAD = sa.select(snapshots).where(
    snapshots.c.system == sa.bindparam("system"), snapshots.c.actor == sa.bindparam("actor")
)
"""The latest snapshot of one actor, built once (activation runs it for every actor it wakes)."""


class _Row(dict[str, Any]):
    """A result row whose columns read as attributes, like SQLAlchemy's ``Row``."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


class _Query:
    """A SELECT compiled once for one dialect and run straight on a pooled DBAPI connection.

    It skips what SQLAlchemy's ``Connection`` adds per call (about 200 us of CPU for a point read on SQLite): the
    connection and transaction objects, events, the compiled-cache lookup. Results still go through the column
    types' result processors, and driver errors become SQLAlchemy's exceptions (a broken connection is
    invalidated), so callers handle them as they handle any other statement's.
    """

    def __init__(self, statement: sa.Select[Any], dialect: sa.Dialect) -> None:
        """Compile ``statement`` for ``dialect``."""
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = compiled.positiontup if compiled.positional else None
        columns = list(statement.selected_columns)
        self.names = [column.name for column in columns]
        self.processors = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self.dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        # SQLite connections run in autocommit mode here (``_sqlite_transactions``): a kept one holds no read
        # transaction between calls, so the pool's check-out and reset-on-return (a third of a point read's CPU)
        # can be skipped. Server databases go through the pool: its pre-ping replaces dropped connections.
        self._keep = dialect.name == "sqlite"
        self._kept: Spares[Any] = Spares()

    def first(self, engine: Engine, params: dict[str, Any]) -> _Row | None:
        """The first row for ``params``, or ``None``."""
        args: Any = tuple(params[name] for name in self.order) if self.order is not None else params
        raw = self._kept.take() if self._keep else None
        if raw is None:
            try:
                raw = engine.raw_connection()
            except self.dbapi_error as exc:  # cannot connect (the database is down or unreachable)
                gone = engine.dialect.is_disconnect(exc, None, None)  # type: ignore[arg-type]
                raise self._error(engine, exc, None, gone) from exc
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(self.sql, args)
                found = cursor.fetchone()
            except self.dbapi_error as exc:
                gone = engine.dialect.is_disconnect(exc, raw.dbapi_connection, cursor)  # type: ignore[arg-type]
                if gone:
                    raw.invalidate(exc)
                raise self._error(engine, exc, self.sql, gone) from exc
            finally:
                cursor.close()
        except BaseException:
            raw.close()
            raise
        if self._keep:
            self._kept.give(raw)
        else:
            raw.close()
        if found is None:
            return None
        return _Row(
            (name, process(value) if process else value)
            for name, process, value in zip(self.names, self.processors, found, strict=True)
        )

    def release(self) -> None:
        """Return the connections kept checked out to the pool."""
        for raw in self._kept.drain():
            raw.close()

    def _error(self, engine: Engine, exc: Exception, sql: str | None, gone: bool) -> sa.exc.StatementError:
        """The SQLAlchemy exception for the driver's ``exc`` (``gone``: the connection is lost)."""
        return sa.exc.DBAPIError.instance(
            sql, None, exc, self.dbapi_error, connection_invalidated=gone, dialect=engine.dialect
        )


def _match(table: sa.Table, system: str, actor: str) -> tuple[sa.ColumnElement[bool], ...]:
    """Conditions selecting one actor's rows."""
    return (table.c.system == system, table.c.actor == actor)


def _transient(exc: sa.exc.SQLAlchemyError) -> bool:
    """Whether trying again can succeed: insert race, deadlock, serialization, dropped link, CREATE race."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    code = getattr(exc.orig, "pgcode", None) or (exc.orig.args[0] if exc.orig and exc.orig.args else None)
    return exc.connection_invalidated or code in ("40001", "40P01", "42P07", 1050, 1213)


def _reason(exc: sa.exc.SQLAlchemyError) -> str:
    """The driver's message on one line, without SQL text or bound parameters (they hold ciphertext)."""
    text = str(exc.orig) if isinstance(exc, sa.exc.DBAPIError) else str(exc)
    return " ".join(text.split())[:500] or type(exc).__name__


def _create_engine(url: str, pool_size: int) -> Engine:
    """Build an engine with timeouts and the per-dialect settings the store relies on."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        shown = url.rsplit("@", 1)[-1]  # never echo credentials
        raise ConfigError("SPAWN_DATABASE_URL", shown, f"is not a SQLAlchemy URL ({exc})") from None
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"pool_pre_ping": True, "pool_size": pool_size}
    if backend == "sqlite":
        options["connect_args"] = {"timeout": _SQLITE_BUSY_TIMEOUT_S}
        options["pool_pre_ping"] = False  # a file has no connection to lose: no ping before every statement
    elif backend in ("postgresql", *_MYSQL):
        options["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    if backend in _MYSQL:
        options["isolation_level"] = "READ COMMITTED"  # no gap locks, so concurrent first saves do not deadlock
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    shown = parsed.render_as_string(hide_password=True)
    try:
        engine = sa.create_engine(parsed, **options)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(backend, "install the DBAPI driver named in the URL")
        raise ConfigError("SPAWN_DATABASE_URL", shown, f"its driver is not installed ({exc.name}): {hint}") from None
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, TypeError) as exc:
        raise ConfigError("SPAWN_DATABASE_URL", shown, f"cannot be used: {exc}") from None
    if backend == "sqlite":
        _sqlite_transactions(engine)
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy issue BEGIN (IMMEDIATE for writes) instead of sqlite3, and enable WAL on each connection."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 must not start transactions on its own
        for _ in range(500):  # switching a new file to WAL fails at once, ignoring the busy timeout, while
            try:  # another connection holds a lock on it: wait a little and try again
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: durable across process crashes; an OS crash may lose the last commits only
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                time.sleep(0.01)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock at BEGIN, so it never has to upgrade a read lock (which fails
        # at once with "database is locked" under WAL instead of waiting for the busy timeout).
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("spawn_write") else "BEGIN")
