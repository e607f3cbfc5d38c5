"""AMQP_URL names one broker or the nodes of a cluster; a bad one stops the start, naming it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.amqp_nodes import broker_urls
from infra.settings import Settings

pytestmark = pytest.mark.unit

NODES = "amqp://guest:guest@127.0.0.1:5681/,amqp://guest:guest@127.0.0.1:5682/, amqp://guest:guest@127.0.0.1:5683/"


def test_a_cluster_s_nodes_are_listed_comma_separated() -> None:
    assert broker_urls(NODES) == [f"amqp://guest:guest@127.0.0.1:{port}/" for port in (5681, 5682, 5683)]


def test_one_broker_is_a_list_of_one() -> None:
    assert broker_urls("amqp://guest:guest@127.0.0.1:5672/") == ["amqp://guest:guest@127.0.0.1:5672/"]


@pytest.mark.parametrize(("amqp_url", "said"), [
    ("amqp://guest:guest@127.0.0.1:5681,127.0.0.1:5682/", "'127.0.0.1:5682/'"),
    ("amqp://guest:guest@127.0.0.1:5681/,", "empty node"),
    ("http://127.0.0.1:5672/", "'http://127.0.0.1:5672/'"),
    ("amqp://127.0.0.1:56x/", "'amqp://127.0.0.1:56x/'"),
    ("amqp://127.0.0.1:5681/a,amqp://127.0.0.1:5682/b", "one virtual host"),
])
def test_a_bad_amqp_url_stops_the_settings_naming_it_and_the_node(amqp_url: str, said: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, amqp_url=amqp_url)

    assert "AMQP_URL" in str(raised.value) and said in str(raised.value)

