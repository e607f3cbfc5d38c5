"""Tamper evidence on both stores: each event hashed with the one before it, each edit made by hand found.

The store is tampered with by plain SQL on an application's events table or its hash table,
as someone with the database's password would; verification then names the stream, the first
bad version and what differs there.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from typer.testing import CliRunner, Result

from commands.inventory import Restock
from infra.bootstrap import System, bootstrap
from infra.cli.main import app as cli
from infra.eventstore.chain import GENESIS, Problem, link_hash
from infra.eventstore.verification import Verification, chained_store, export_heads, load_heads, verify
from infra.settings import Settings
from tests.saga_harness import MOUSE, hear_catalogue, place

INVENTORY = "Inventory"
runner = CliRunner()


class Store:
    """Plain SQL on one application's events table ({events}) and hash table ({hashes})."""

    def __init__(self, settings: Settings, application: str) -> None:
        self.settings, self.application = settings, application

    def run(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        dsn = self.settings.postgres
        if dsn is None:
            with sqlite3.connect(self.settings.data_dir / f"{self.application.lower()}.sqlite") as conn:
                text = statement.format(events="stored_events", hashes="stored_events_chain")
                args = [p.hex if isinstance(p, UUID) else p for p in params]
                return conn.execute(text, args).fetchall()
        table = f'"{dsn.schema_name}".{self.application.lower()}_events'
        with psycopg.connect(dsn.url, autocommit=True) as conn:
            cursor = conn.execute(statement.format(events=table, hashes=f"{table}_hashes").replace("?", "%s"),
                                  params)
            return cursor.fetchall() if cursor.description else []

    def state(self, stream_id: UUID, version: int) -> tuple[str, bytes]:
        [(topic, state)] = self.run("SELECT topic, state FROM {events} "
                                    "WHERE originator_id = ? AND originator_version = ?", stream_id, version)
        return topic, bytes(state)

    def set_state(self, stream_id: UUID, version: int, state: bytes) -> None:
        self.run("UPDATE {events} SET state = ? WHERE originator_id = ? AND originator_version = ?",
                 state, stream_id, version)


@pytest.fixture
def shop(store_settings: Settings) -> Iterator[System]:
    """Every application's tables, the seed catalogue, the mouse restocked twice (4 events), an order."""
    with bootstrap(store_settings) as system:
        system.applications  # noqa: B018 - every application's tables, as a running shop has them
        system.inventory.seed()
        hear_catalogue(system)  # as the relay and Orders' consumer would
        for quantity in (5, 7):
            system.inventory.restock(Restock(product_id=MOUSE, quantity=quantity))
        place(system)
        yield system


def checked(system: System, **options: Any) -> Verification:
    return verify(system.applications, **options)


def broken(result: Verification) -> list[tuple[str, UUID, int | None, Problem | None]]:
    return [(app.name, r.stream_id, r.broken_at, r.problem)
            for app in result.applications for r in app.broken]


def test_an_untouched_store_verifies_every_event_of_every_stream(shop: System) -> None:
    result = checked(shop)
    assert result.verified and broken(result) == []
    assert result.events >= 12 and {app.name for app in result.applications} >= {"Orders", INVENTORY}
    mouse = chained_store(shop.inventory).verify_stream(MOUSE)
    assert mouse is not None and mouse.verified and mouse.length == 4 and mouse.unchained == 0


def test_one_changed_byte_of_one_stored_event_is_found_at_its_version(shop: System) -> None:
    store = Store(shop.settings, INVENTORY)
    _, state = store.state(MOUSE, 2)
    store.set_state(MOUSE, 2, state[:-2] + bytes([state[-2] ^ 1]) + state[-1:])
    assert broken(checked(shop)) == [(INVENTORY, MOUSE, 2, Problem.HASH_MISMATCH)]


def test_a_deleted_event_is_found_as_a_missing_version(shop: System) -> None:
    Store(shop.settings, INVENTORY).run(
        "DELETE FROM {events} WHERE originator_id = ? AND originator_version = 2", MOUSE)
    assert broken(checked(shop)) == [(INVENTORY, MOUSE, 2, Problem.MISSING)]


def test_an_event_whose_state_was_emptied_is_found_at_its_version(shop: System) -> None:
    Store(shop.settings, INVENTORY).run(
        "UPDATE {events} SET state = NULL WHERE originator_id = ? AND originator_version = 3", MOUSE)
    assert broken(checked(shop)) == [(INVENTORY, MOUSE, 3, Problem.HASH_MISMATCH)]


def test_two_events_whose_states_are_swapped_are_found_as_swapped(shop: System) -> None:
    store = Store(shop.settings, INVENTORY)
    (_, second), (_, third) = store.state(MOUSE, 2), store.state(MOUSE, 3)
    store.set_state(MOUSE, 2, third)
    store.set_state(MOUSE, 3, second)
    assert broken(checked(shop)) == [(INVENTORY, MOUSE, 2, Problem.SWAPPED)]


def test_a_changed_version_is_found_where_the_event_went_missing(shop: System) -> None:
    Store(shop.settings, INVENTORY).run(
        "UPDATE {events} SET originator_version = 40 WHERE originator_id = ? AND originator_version = 2",
        MOUSE)
    assert broken(checked(shop)) == [(INVENTORY, MOUSE, 2, Problem.MISSING)]


def test_a_history_rewritten_and_chained_again_is_found_against_heads_exported_before(
    shop: System, tmp_path: Path,
) -> None:
    heads = tmp_path / "heads.json"
    export_heads(checked(shop).heads(), heads)
    store = Store(shop.settings, INVENTORY)
    _, state = store.state(MOUSE, 2)
    store.set_state(MOUSE, 2, state + b" ")
    # Whoever forged it also computes the hashes again, from the edit to the head.
    [(before,)] = store.run(
        "SELECT hash FROM {hashes} WHERE originator_id = ? AND originator_version = 1", MOUSE)
    previous = bytes(before)
    for version in (2, 3, 4):
        topic, state = store.state(MOUSE, version)
        previous = link_hash(previous, MOUSE, version, topic, state)
        store.run("UPDATE {hashes} SET hash = ? WHERE originator_id = ? AND originator_version = ?",
                  previous, MOUSE, version)

    assert checked(shop).verified, "the chain alone holds again"
    against = checked(shop, against=load_heads(heads))
    assert broken(against) == [(INVENTORY, MOUSE, 4, Problem.REWRITTEN)]


def test_events_stored_before_chaining_existed_are_reported_unchained_not_broken(shop: System) -> None:
    store = Store(shop.settings, INVENTORY)
    store.run("DELETE FROM {hashes}")  # a store written before chaining existed,
    with bootstrap(shop.settings) as upgraded:  # then used by processes that chain
        upgraded.inventory.restock(Restock(product_id=MOUSE, quantity=1))

    result = checked(shop)
    assert result.verified
    inventory = next(app for app in result.applications if app.name == INVENTORY)
    by_stream = {report.stream_id: report.unchained for report in inventory.unchained}
    assert by_stream[MOUSE] == 4 and len(by_stream) == 5
    mouse = chained_store(shop.inventory).verify_stream(MOUSE)
    assert mouse is not None and mouse.verified and mouse.length == 5 and mouse.unchained == 4
    [(digest,)] = store.run("SELECT hash FROM {hashes} WHERE originator_id = ?", MOUSE)
    assert bytes(digest) == link_hash(GENESIS, MOUSE, 5, *store.state(MOUSE, 5))


def test_a_stream_stripped_of_its_hashes_after_chaining_began_is_broken(shop: System) -> None:
    Store(shop.settings, INVENTORY).run("DELETE FROM {hashes} WHERE originator_id = ?", MOUSE)
    assert broken(checked(shop)) == [(INVENTORY, MOUSE, 1, Problem.UNHASHED)]


def test_two_writers_of_one_stream_and_a_save_that_lost_a_conflict_leave_one_chain(
    shop: System, store_settings: Settings,
) -> None:
    with bootstrap(store_settings) as other:
        for writer in (shop, other, shop, shop, other):
            writer.inventory.restock(Restock(product_id=MOUSE, quantity=1))
        version = len(shop.inventory.recorder.select_events(MOUSE))
        stale = StoredEvent(MOUSE, version, "domain.stock:Stock.Restocked", b"{}")
        with pytest.raises(IntegrityError):
            shop.inventory.recorder.insert_events([stale])  # a writer that lost the race to this version
        shop.inventory.restock(Restock(product_id=MOUSE, quantity=1))
        other.inventory.restock(Restock(product_id=MOUSE, quantity=1))

    mouse = chained_store(shop.inventory).verify_stream(MOUSE)
    assert mouse is not None and mouse.verified and mouse.length == version + 2


# The command line ----------------------------------------------------------------------------


def saga(settings: Settings, *args: str) -> Result:
    env = {"COLUMNS": "200", "DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url or ""}
    return runner.invoke(cli, list(args), env=env)


def lines(text: str) -> Sequence[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_saga_verify_exports_heads_and_a_head_deleted_with_its_hash_is_found_only_against_them(
    shop: System, tmp_path: Path,
) -> None:
    heads = tmp_path / "heads.json"
    fine = saga(shop.settings, "verify", "--all", "--export-heads", str(heads))
    Store(shop.settings, INVENTORY).run(
        "DELETE FROM {events} WHERE originator_id = ? AND originator_version = 4", MOUSE)
    Store(shop.settings, INVENTORY).run(
        "DELETE FROM {hashes} WHERE originator_id = ? AND originator_version = 4", MOUSE)
    bad = saga(shop.settings, "verify")
    against = saga(shop.settings, "verify", "--against", str(heads), "--json")
    one = saga(shop.settings, "verify", str(MOUSE))

    assert fine.exit_code == 0, fine.output
    assert "verified" in fine.stderr and "events/s" in fine.stderr and fine.stdout.strip() == ""
    assert str(MOUSE) in json.loads(heads.read_text())["applications"][INVENTORY]
    # The head was deleted with its hash: the chain alone holds, the exported head does not.
    assert bad.exit_code == 0 and lines(bad.stdout) == [] and "0 broken" in bad.stderr
    assert against.exit_code == 1
    [report] = json.loads(against.stdout)["applications"][INVENTORY]["broken"]
    assert (report["stream_id"], report["broken_at"], report["problem"]) == (
        str(MOUSE), 4, "head differs from the export")
    assert one.exit_code == 0


def test_saga_verify_prints_one_line_per_broken_stream_and_reports_unchained_events(shop: System) -> None:
    store = Store(shop.settings, INVENTORY)
    _, state = store.state(MOUSE, 1)
    store.set_state(MOUSE, 1, state + b" ")
    result = saga(shop.settings, "verify", "--all")
    store.set_state(MOUSE, 1, state)
    store.run("DELETE FROM {hashes}")
    unchained = saga(shop.settings, "verify")

    assert result.exit_code == 1
    assert lines(result.stdout) == [f"broken {INVENTORY} {MOUSE} at version 1: hash mismatch "
                                    "(the stored event does not hash to its stored hash)"]
    assert "1 broken stream(s)" in result.stderr
    assert unchained.exit_code == 0
    assert f"unchained {INVENTORY} {MOUSE} versions 1-4: stored before chaining began" in unchained.stdout
    assert "12 unchained event(s)" in unchained.stderr


def test_saga_verify_refuses_a_bad_argument_or_heads_file_and_names_a_stream_nobody_holds(
    shop: System, tmp_path: Path,
) -> None:
    not_json = tmp_path / "heads.json"
    not_json.write_text("nope")
    unknown = saga(shop.settings, "verify", "0b7e6a52-5d3c-4f0e-9a61-3c1f2e4d5b6a")
    both = saga(shop.settings, "verify", str(MOUSE), "--all")
    bad_file = saga(shop.settings, "verify", "--against", str(not_json))
    nowhere = saga(shop.settings, "verify", "--export-heads", str(tmp_path / "no" / "such" / "heads.json"))

    assert unknown.exit_code == 4 and "STREAM_ID" in unknown.stderr
    assert both.exit_code == 2
    assert bad_file.exit_code == 2 and "is not JSON" in bad_file.stderr
    assert nowhere.exit_code == 2 and "cannot write" in nowhere.stderr


def test_saga_verify_where_no_store_is_exits_3(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["verify"], env={"DATA_DIR": str(tmp_path / "none"), "DATABASE_URL": ""})
    assert result.exit_code == 3 and "no store" in result.stderr


def test_saga_audit_says_whether_each_stream_of_the_order_holds_its_chain(shop: System) -> None:
    order_id = place(shop)
    line = f"order        {order_id.hex[:8]}  hash chain"
    intact = saga(shop.settings, "audit", str(order_id))
    store = Store(shop.settings, "Orders")
    _, state = store.state(order_id, 1)
    store.set_state(order_id, 1, state + b" ")
    tampered = saga(shop.settings, "audit", str(order_id))
    as_json = saga(shop.settings, "audit", str(order_id), "--json")

    assert intact.exit_code == 0 and f"{line} holds: 1 event(s)" in intact.stdout
    assert f"{line} BROKEN at version 1: hash mismatch" in tampered.stdout
    assert [json.loads(line)["stream_verified"] for line in as_json.stdout.splitlines()] == [False]


def test_saga_verify_on_a_store_made_before_chaining_and_not_migrated_says_to_migrate(shop: System) -> None:
    Store(shop.settings, INVENTORY).run("DROP TABLE {hashes}")
    result = runner.invoke(cli, ["verify"], env={"COLUMNS": "200", "DATA_DIR": str(shop.settings.data_dir),
                                                 "DATABASE_URL": shop.settings.database_url or "",
                                                 "CREATE_TABLE": "n"})
    assert result.exit_code == 3
    assert f"the event store of {INVENTORY} has no hash table" in result.stderr
    assert "saga migrate" in result.stderr


def test_a_head_of_a_stream_or_application_the_store_no_longer_has_is_found_against_the_export(
    shop: System, tmp_path: Path,
) -> None:
    heads = tmp_path / "heads.json"
    export_heads(checked(shop).heads(), heads)
    document = json.loads(heads.read_text())
    document["applications"]["Returns"] = {str(MOUSE): {"version": 2, "hash": "00" * 32}}
    heads.write_text(json.dumps(document))
    Store(shop.settings, INVENTORY).run("DELETE FROM {events} WHERE originator_id = ?", MOUSE)
    Store(shop.settings, INVENTORY).run("DELETE FROM {hashes} WHERE originator_id = ?", MOUSE)

    assert checked(shop).verified, "a stream deleted whole leaves no link to break"
    assert sorted(broken(checked(shop, against=load_heads(heads)))) == [
        (INVENTORY, MOUSE, 1, Problem.REWRITTEN), ("Returns", MOUSE, 1, Problem.REWRITTEN)]


def test_the_last_event_of_a_stream_deleted_with_its_hash_left_is_found_checking_that_stream_alone(
    shop: System,
) -> None:
    Store(shop.settings, INVENTORY).run(
        "DELETE FROM {events} WHERE originator_id = ? AND originator_version = 4", MOUSE)
    report = chained_store(shop.inventory).verify_stream(MOUSE)
    assert report is not None and (report.broken_at, report.problem) == (4, Problem.EXTRA_HASH)


def test_an_embedded_store_chained_in_the_former_form_has_its_hashes_moved_and_chains_on(
    tmp_path: Path,
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    with bootstrap(settings) as system:
        system.applications  # noqa: B018
        system.inventory.seed()
        hear_catalogue(system)  # as the relay and Orders' consumer would
        system.inventory.restock(Restock(product_id=MOUSE, quantity=5))
        place(system)
        before = checked(system)
    with sqlite3.connect(tmp_path / "inventory.sqlite") as conn:  # hashes kept by stream and version
        conn.execute("CREATE TABLE stored_events_hashes (originator_id TEXT NOT NULL, originator_version "
                     "INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (originator_id, originator_version))"
                     " WITHOUT ROWID")
        conn.execute("INSERT INTO stored_events_hashes SELECT originator_id, originator_version, hash "
                     "FROM stored_events_chain")
        conn.execute("DROP TABLE stored_events_chain")
        last = conn.execute("SELECT max(originator_version) FROM stored_events WHERE originator_id = ?",
                            (MOUSE.hex,)).fetchone()[0]
        conn.execute("DELETE FROM stored_events WHERE originator_id = ? AND originator_version = ?",
                     (MOUSE.hex, last))  # its hash left behind

    with bootstrap(settings) as system:
        system.applications  # noqa: B018 - opening the stores moves the hashes
        moved = checked(system)
        system.inventory.restock(Restock(product_id=MOUSE, quantity=1))  # a new event where one was deleted
        after = checked(system)

    assert broken(before) == []
    assert broken(moved) == [(INVENTORY, MOUSE, last, Problem.EXTRA_HASH)]
    assert broken(after) == [(INVENTORY, MOUSE, last, Problem.HASH_MISMATCH)]  # the hash left still tells
    assert sum(app.unchained_events for app in after.applications) == 0
