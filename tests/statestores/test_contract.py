"""The statestore contract, run over SQLite, PostgreSQL, MariaDB and memory.

PostgreSQL and MariaDB must be running; a test fails, never skips, when one is down.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from spawn_celery.cipher import Cipher
from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError, DecryptionError, StateStoreError
from spawn_celery.statestores import (
    MemoryDatabase,
    MemoryStateStore,
    Snapshot,
    SqlStateStore,
    StateStore,
    open_statestore,
)
from spawn_celery.statestores.sql import history, snapshots

POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
KEY = base64.b64decode("3Jnb0hZiHIzHTOih7t2cTEPEpY98Tu1wvQkPfq/XwqE=")  # Spawn's example key


def cipher(key: bytes = KEY, key_id: str = "V1", old: dict[str, bytes] | None = None) -> Cipher:
    """A cipher writing with ``key_id`` and also reading the ``old`` keys."""
    return Cipher({**(old or {}), key_id: key}, key_id)


class Backend:
    """One database under test: opens stores on it and reads raw rows behind their back."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url
        self.memory = MemoryDatabase()
        self.stores: list[StateStore] = []
        self.system = f"test-{uuid.uuid4().hex[:12]}"  # isolates this test's rows in the shared databases

    def open(self, with_cipher: Cipher | None = None) -> StateStore:
        """Open a store on this database, as another process would."""
        c = with_cipher or cipher()
        store: StateStore
        if self.name == "memory":
            store = MemoryStateStore(cipher=c, database=self.memory)
        else:
            store = SqlStateStore(self.url, cipher=c, pool_size=4)
        self.stores.append(store)
        return store

    def current(self, store: StateStore, actor: str = "joe") -> Snapshot:
        """The current snapshot of ``actor``, which must exist."""
        loaded = store.load(self.system, actor)
        assert loaded is not None
        return loaded

    def at(self, store: StateStore, revision: int, actor: str = "joe") -> Snapshot:
        """The snapshot of ``actor`` at ``revision``, which must exist."""
        loaded = store.load_revision(self.system, actor, revision)
        assert loaded is not None
        return loaded

    def raw_data(self, actor: str) -> bytes:
        """The stored ``data`` column of an actor's current row, read without the store."""
        if self.name == "memory":
            data = MemoryStateStore(cipher=cipher(), database=self.memory).raw_data(self.system, actor)
            assert data is not None
            return data
        engine = sa.create_engine(self.url, poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                query = sa.select(snapshots.c.data).where(snapshots.c.system == self.system, snapshots.c.actor == actor)
                return bytes(conn.execute(query).scalar_one())
        finally:
            engine.dispose()

    def cleanup(self) -> None:
        """Delete this test's rows and close every store."""
        if self.name != "memory":
            engine = sa.create_engine(self.url, poolclass=sa.NullPool)
            with engine.begin() as conn:
                for table in (history, snapshots):
                    if sa.inspect(conn).has_table(table.name):
                        conn.execute(table.delete().where(table.c.system == self.system))
            engine.dispose()
        for store in self.stores:
            store.close()


@pytest.fixture(params=["sqlite", "postgres", "mariadb", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """Each contract test runs once per database."""
    urls = {
        "sqlite": f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'spawn.db'}",
        "postgres": POSTGRES_URL,
        "mariadb": MARIADB_URL,
        "memory": "memory://",
    }
    backend = Backend(request.param, urls[request.param])
    yield backend
    backend.cleanup()


@pytest.fixture
def store(backend: Backend) -> StateStore:
    """A store on the backend under test, with Spawn's example key as V1."""
    return backend.open()


TYPE_URL = "type.googleapis.com/domain.State"


def snap(backend: Backend, revision: int, data: bytes = b"state", actor: str = "joe", **changes: object) -> Snapshot:
    """A snapshot of ``actor`` in the test's own system."""
    base = Snapshot(backend.system, actor, revision, TYPE_URL, data, {"owner": "tests"})
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def in_threads(work: Callable[[int], None], count: int) -> list[BaseException]:
    """Run ``work(0..count-1)`` in as many threads at once; return what they raised."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_save_then_load_returns_the_snapshot(backend: Backend, store: StateStore) -> None:
    store.save(snap(backend, 1, b"\x08\x01", parent="template", status="DEACTIVATED"))

    loaded = backend.current(store)

    assert loaded == snap(
        backend, 1, b"\x08\x01", parent="template", status="DEACTIVATED", updated_at=loaded.updated_at
    )


def test_load_of_an_unknown_actor_is_none(backend: Backend, store: StateStore) -> None:
    assert store.load(backend.system, "nobody") is None
    assert store.load_revision(backend.system, "nobody", 1) is None
    assert store.revisions(backend.system, "nobody") == []


def test_updated_at_is_recent_utc(backend: Backend, store: StateStore) -> None:
    store.save(snap(backend, 1))

    updated_at = backend.current(store).updated_at

    assert updated_at is not None
    assert updated_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - updated_at) < timedelta(seconds=30)


def test_empty_state_round_trips(backend: Backend, store: StateStore) -> None:
    store.save(snap(backend, 0, b"", type_url="", tags={}))

    loaded = backend.current(store)

    assert (loaded.revision, loaded.type_url, loaded.data, loaded.tags) == (0, "", b"", {})


def test_every_revision_is_kept_and_restorable(backend: Backend, store: StateStore) -> None:
    for revision, data in enumerate([b"one", b"two", b"three"], start=1):
        store.save(snap(backend, revision, data))

    assert store.revisions(backend.system, "joe") == [1, 2, 3]
    assert backend.current(store).data == b"three"
    assert backend.at(store, 2).data == b"two"


def test_restore_to_revision_n_saves_it_as_the_next_revision(backend: Backend, store: StateStore) -> None:
    for revision in (1, 2, 3):
        store.save(snap(backend, revision, f"v{revision}".encode()))

    old = backend.at(store, 1)
    store.save(dataclasses.replace(old, revision=4))

    assert backend.current(store).data == b"v1"
    assert store.revisions(backend.system, "joe") == [1, 2, 3, 4]


def test_an_older_revision_never_moves_the_current_one_back(backend: Backend, store: StateStore) -> None:
    store.save(snap(backend, 5, b"new"))
    store.save(snap(backend, 3, b"stale"))

    assert backend.current(store).revision == 5
    assert backend.current(store).data == b"new"
    assert store.revisions(backend.system, "joe") == [3, 5]


def test_a_stale_save_does_not_overwrite_existing_history(backend: Backend, store: StateStore) -> None:
    store.save(snap(backend, 1, b"original"))
    store.save(snap(backend, 2, b"newer"))

    store.save(snap(backend, 1, b"late duplicate"))

    assert backend.at(store, 1).data == b"original"


def test_saving_the_same_revision_twice_is_harmless(backend: Backend, store: StateStore) -> None:
    store.save(snap(backend, 1, b"same"))
    store.save(snap(backend, 1, b"same", status="DEACTIVATED"))

    assert store.revisions(backend.system, "joe") == [1]
    assert backend.current(store).status == "DEACTIVATED"
    assert backend.at(store, 1).status == "DEACTIVATED"


def test_save_many_writes_a_batch_in_one_go(backend: Backend, store: StateStore) -> None:
    batch = [
        snap(backend, 3, b"a", actor="ann"),
        snap(backend, 5, b"b", actor="bob"),
        snap(backend, 1, b"c", actor="cy"),
    ]
    store.save_many(batch)
    store.save_many([snap(backend, 2, b"old", actor="bob")])  # a stale member of a later batch moves nothing back
    loaded = {name: store.load(backend.system, name) for name in ("ann", "bob", "cy")}
    assert {n: (s.revision, s.data) for n, s in loaded.items() if s} == {
        "ann": (3, b"a"),
        "bob": (5, b"b"),
        "cy": (1, b"c"),
    }


def test_a_batch_with_several_revisions_of_one_actor_keeps_each_and_the_highest(
    backend: Backend, store: StateStore
) -> None:
    store.save(snap(backend, 4, b"stored 4"))
    store.save(snap(backend, 2, b"stored 2", actor="ann"))
    store.save_many(
        [
            snap(backend, 6, b"six"),
            snap(backend, 5, b"five"),
            snap(backend, 3, b"stale three"),  # older than the stored current: history only
            snap(backend, 4, b"stale four"),  # an existing revision older than the batch's newest: untouched
            snap(backend, 2, b"ann again", actor="ann", status="DEACTIVATED"),  # same revision: replaced
            snap(backend, 1, b"new", actor="bo"),
        ]
    )

    assert (backend.current(store).revision, backend.current(store).data) == (6, b"six")
    assert store.revisions(backend.system, "joe") == [3, 4, 5, 6]
    assert backend.at(store, 4).data == b"stored 4"
    assert backend.at(store, 3).data == b"stale three"
    ann = backend.current(store, "ann")
    assert (ann.data, ann.status) == (b"ann again", "DEACTIVATED")
    assert backend.at(store, 2, "ann").data == b"ann again"
    assert backend.current(store, "bo").data == b"new"


def test_concurrent_batches_of_new_actors_from_two_stores_lose_nothing(backend: Backend) -> None:
    # Two processes write overlapping batches of first snapshots at once: the insert race is retried
    stores = [backend.open(), backend.open()]

    def work(n: int) -> None:
        for start in range(0, 60, 10):
            batch = [snap(backend, 1 + n, f"{n}".encode(), actor=f"a{i}") for i in range(start, start + 20)]
            stores[n].save_many(batch)

    assert in_threads(work, 2) == []
    assert {backend.current(stores[0], f"a{i}").revision for i in range(70)} == {2}
    assert all(stores[1].revisions(backend.system, f"a{i}") == [1, 2] for i in range(70))


def test_delete_removes_current_and_history(backend: Backend, store: StateStore) -> None:
    store.save(snap(backend, 1))
    store.save(snap(backend, 2))
    store.save(snap(backend, 1, actor="other"))

    store.delete(backend.system, "joe")
    store.delete(backend.system, "joe")

    assert store.load(backend.system, "joe") is None
    assert store.revisions(backend.system, "joe") == []
    assert store.load(backend.system, "other") is not None


def test_names_are_exact_case_and_unicode(backend: Backend, store: StateStore) -> None:
    for name in ("Joe", "joe", "zoë-🦀"):
        store.save(snap(backend, 1, name.encode(), actor=name))

    assert [backend.current(store, name).data.decode() for name in ("Joe", "joe", "zoë-🦀")] == [
        "Joe",
        "joe",
        "zoë-🦀",
    ]


def test_state_is_encrypted_at_rest_in_spawns_layout(backend: Backend, store: StateStore) -> None:
    plain = b"secret balance 1000000"
    store.save(snap(backend, 1, plain))

    raw = backend.raw_data("joe")

    assert raw.startswith(b"\x01\x0aAES.GCM.V1")
    assert plain not in raw
    assert len(raw) == 12 + 16 + 16 + len(plain)
    assert Cipher({"V1": KEY}, "V1").decrypt(raw) == plain


def test_a_wrong_key_is_refused(backend: Backend, store: StateStore) -> None:
    store.save(snap(backend, 1))

    intruder = backend.open(cipher(key=bytes(32)))

    with pytest.raises(DecryptionError, match="joe"):
        intruder.load(backend.system, "joe")
    with pytest.raises(DecryptionError):
        intruder.load_revision(backend.system, "joe", 1)


def test_key_rotation_reads_old_rows_and_writes_with_the_new_key(backend: Backend, store: StateStore) -> None:
    # Given a row written with the old key V1
    store.save(snap(backend, 1, b"old"))
    # When the store is reopened with a new current key V2 and V1 kept for reading
    rotated = backend.open(cipher(key=os.urandom(32), key_id="V2", old={"V1": KEY}))
    assert backend.current(rotated).data == b"old"
    rotated.save(snap(backend, 2, b"new"))

    # Then new writes carry V2, and a store without V1 cannot read the old history
    assert backend.raw_data("joe").startswith(b"\x01\x0aAES.GCM.V2")
    assert backend.current(rotated).data == b"new"
    with pytest.raises(DecryptionError, match="SPAWN_STATESTORE_OLD_KEYS"):
        backend.open(cipher(key=os.urandom(32), key_id="V2")).load_revision(backend.system, "joe", 1)


def test_concurrent_saves_from_two_stores_keep_the_highest_revision(backend: Backend) -> None:
    # Given two stores on one database (two processes) saving revisions 1..24 in random order from 8 threads
    stores, revisions = [backend.open(), backend.open()], list(range(1, 25))
    random.Random(7).shuffle(revisions)

    def work(thread: int) -> None:
        for revision in revisions[thread::8]:
            stores[thread % 2].save(snap(backend, revision, str(revision).encode(), actor="hot"))

    assert in_threads(work, 8) == []
    assert backend.current(stores[0], "hot").data == b"24"
    assert stores[1].revisions(backend.system, "hot") == list(range(1, 25))


def test_ping_answers(store: StateStore) -> None:
    store.ping()


WRITER = """
import sys
from spawn_celery.cipher import Cipher
from spawn_celery.statestores import Snapshot, SqlStateStore
url, system, first, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
store = SqlStateStore(url, cipher=Cipher({"V1": key}, "V1"))
for revision in range(first, 60, 3):
    store.save(Snapshot(system, "shared", revision, "t", str(revision).encode(), {}))
"""


def test_sqlite_file_is_safe_with_several_processes(tmp_path: Path) -> None:
    # Given three processes interleaving revisions 1..59 of one actor in one SQLite file
    url, system = f"sqlite:///{tmp_path}/multi.db", "procs"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # the children import what this process does
    command = [sys.executable, "-c", WRITER, url, system]
    procs = [subprocess.Popen([*command, str(n), KEY.hex()], env=env, stderr=subprocess.PIPE) for n in (1, 2, 3)]
    results = [(proc.communicate(timeout=60)[1], proc.returncode) for proc in procs]

    store = SqlStateStore(url, cipher=cipher())
    assert results == [(b"", 0)] * 3
    loaded = store.load(system, "shared")
    assert loaded is not None
    assert (loaded.revision, loaded.data) == (59, b"59")
    assert store.revisions(system, "shared") == list(range(1, 60))
    store.close()


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg2://postgres@127.0.0.1:1/test", "mysql+pymysql://root:hunter2@127.0.0.1:1/test"]
)
def test_an_unreachable_database_fails_fast_with_state_store_error(url: str) -> None:
    store = SqlStateStore(url, cipher=cipher())
    started = time.monotonic()

    with pytest.raises(StateStoreError, match="127.0.0.1") as raised:
        store.load("sys", "joe")
    with pytest.raises(StateStoreError):
        store.ping()

    assert time.monotonic() - started < 5
    assert "hunter2" not in str(raised.value)
    assert raised.value.retryable


def test_a_dropped_postgres_connection_is_replaced() -> None:
    # Given a store whose pooled connection the server then terminates (as a restart would)
    app = f"spawn-test-{uuid.uuid4().hex[:8]}"
    store = SqlStateStore(f"{POSTGRES_URL}?application_name={app}", cipher=cipher(), pool_size=1)
    store.ping()
    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.NullPool)
    with admin.connect() as conn:
        kill = sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :app")
        assert conn.execute(kill, {"app": app}).all() == [(True,)]
    admin.dispose()

    # Then the next call reconnects instead of failing
    assert store.load("nobody", "joe") is None
    store.close()


def test_open_statestore_picks_the_store_from_the_url(tmp_path: Path) -> None:
    settings = Settings(statestore_key="3Jnb0hZiHIzHTOih7t2cTEPEpY98Tu1wvQkPfq/XwqE=")

    assert isinstance(open_statestore(settings.replace(database_url="memory://")), MemoryStateStore)
    assert isinstance(open_statestore(settings.replace(database_url=f"sqlite:///{tmp_path}/x.db")), SqlStateStore)


def test_open_statestore_without_a_key_says_how_to_make_one() -> None:
    with pytest.raises(ConfigError, match="spawn-celery keygen"):
        open_statestore(Settings(database_url="memory://"))


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("postgresql+pg8000://u:pw@h/db", r"spawn-celery\[postgres\]"),
        ("mariadb+mariadbconnector://u@h/db", r"spawn-celery\[mysql\]"),
    ],
)
def test_a_missing_driver_gives_an_install_hint(url: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=hint) as raised:
        SqlStateStore(url, cipher=cipher())
    assert "pw" not in str(raised.value)


def test_a_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SPAWN_DATABASE_URL"):
        SqlStateStore("not a url", cipher=cipher())


def test_names_longer_than_the_key_limit_are_refused() -> None:
    with pytest.raises(ValueError, match="actor"):
        Snapshot("system", "x" * 191, 1, TYPE_URL, b"", {})
