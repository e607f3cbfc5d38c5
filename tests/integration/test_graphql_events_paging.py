"""`events(streamId, first, after)` pages through a stream from the event store, each page read on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from commands.inventory import Restock
from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from read_api.app import create_app
from tests.api_harness import ADMIN_TOKEN, RowsReadModel, api_client, data_of
from tests.saga_harness import MOUSE, hear_catalogue

PAGE = """query($stream: ID!, $first: Int, $after: String, $from: Int) {
  events(streamId: $stream, first: $first, after: $after, fromVersion: $from) { version type cursor } }"""
RESTOCKS = 11


@pytest.fixture
def system(store_settings: Settings) -> Iterator[System]:
    with bootstrap(store_settings.model_copy(update={"admin_token": ADMIN_TOKEN})) as built:
        built.inventory.seed()
        hear_catalogue(built)  # as the relay and Orders' consumer would
        for _ in range(RESTOCKS):
            built.inventory.restock(Restock(product_id=MOUSE, quantity=1))
        yield built


@pytest.fixture
async def client(system: System) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(system=system, read_model=RowsReadModel(), settings=system.settings)
    async with api_client(app) as http:
        yield http


class Reads:
    """The store's reads of one stream: how many events each was allowed and how many it returned."""

    def __init__(self, system: System, stream_id: UUID, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int | None, int]] = []
        recorder = system.inventory.recorder
        select = recorder.select_events

        def spied(originator_id: UUID, **options: Any) -> Any:
            found = select(originator_id, **options)
            if originator_id == stream_id:
                self.calls.append((options.get("limit"), len(found)))
            return found

        monkeypatch.setattr(recorder, "select_events", spied)


async def read_all(client: httpx.AsyncClient, first: int, **variables: Any) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    after = None
    while not pages or len(pages[-1]) == first:
        page = (await data_of(client, PAGE, {"stream": str(MOUSE), "first": first, "after": after,
                                             **variables}))["events"]
        pages.append(page)
        after = page[-1]["cursor"] if page else after
    return pages


async def test_a_stream_longer_than_a_page_read_page_by_page_gives_every_event_once_in_order(
    client: httpx.AsyncClient, system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = (await data_of(client, PAGE, {"stream": str(MOUSE), "first": 500}))["events"]
    reads = Reads(system, MOUSE, monkeypatch)

    pages = await read_all(client, first=5)

    versions = [event["version"] for page in pages for event in page]
    assert len(whole) > 5 * 2
    assert versions == [event["version"] for event in whole] == list(range(1, len(whole) + 1))
    assert [len(page) for page in pages[:-1]] == [5] * (len(pages) - 1)
    # Each page asked the store for its own events only, never for the whole stream.
    paged = [(limit, found) for limit, found in reads.calls if limit != 1]
    assert len(paged) == len(pages)
    assert all(limit == 5 and found <= 5 for limit, found in paged)


async def test_paging_keeps_to_the_versions_asked_for(client: httpx.AsyncClient) -> None:
    whole = (await data_of(client, PAGE, {"stream": str(MOUSE), "first": 500}))["events"]

    pages = await read_all(client, first=4, **{"from": 3})

    assert [event["version"] for page in pages for event in page] == [e["version"] for e in whole[2:]]
