"""The nodes `AMQP_URL` names: one broker, or the nodes of a RabbitMQ cluster, comma-separated.

Each node is a full URL (`amqp://user:password@host:port/vhost`), all of one virtual host;
the short form that lists bare `host:port`s after the first URL is refused, naming the part,
so that no node's credentials or virtual host are guessed. Settings check it at start-up
(this module reads no library, so the settings can import it), and the connections to the
broker (`infra.messaging.rabbitmq_connection`) read the nodes from it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = ("amqp", "amqps")


def broker_urls(amqp_url: str) -> list[str]:
    """The nodes of `AMQP_URL`, each a full URL; ValueError naming AMQP_URL and the part at fault."""
    urls = [part.strip() for part in amqp_url.split(",")]
    for part in urls:
        if not part:
            raise ValueError(f"AMQP_URL has an empty node between commas: {amqp_url!r}")
        try:
            parts = urlsplit(part)
            valid = parts.scheme in SCHEMES and bool(parts.hostname) and parts.port is not False
        except ValueError:  # a port that is not a number
            valid = False
        if not valid:
            raise ValueError("AMQP_URL: each node needs a URL of its own, "
                             f"amqp://user:password@host:port/vhost, got {part!r}")
    vhosts = {urlsplit(url).path[1:] or "/" for url in urls}
    if len(vhosts) > 1:
        raise ValueError(f"AMQP_URL: the nodes of one cluster share one virtual host, got {sorted(vhosts)}")
    return urls
