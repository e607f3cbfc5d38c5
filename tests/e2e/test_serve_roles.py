"""A worker role runs as its own process against PostgreSQL and RabbitMQ, and serves its health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from infra.settings import Settings
from tests.e2e.test_serve import free_port, wait_for_health


def test_a_worker_role_serves_the_old_health_endpoint(
    postgres_settings: Settings, rabbitmq_url: str, rabbit_namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": str(postgres_settings.database_url), "AMQP_URL": rabbitmq_url,
           "BUS_NAMESPACE": rabbit_namespace}
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "serve", "--role", "payments", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_health(process, f"http://127.0.0.1:{port}")
        reply = httpx.get(f"http://127.0.0.1:{port}/api/v1/health")
        assert reply.status_code == 200
        body = reply.json()
        assert body["success"] is True
        assert body["data"]["service"] == "payments"
        assert set(body) == {"success", "message", "data", "error", "timestamp", "request_id"}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


def test_an_unknown_role_is_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "serve", "--role", "billing"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "billing" in result.stderr


def test_a_single_role_without_a_broker_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "RABBITMQ_URL", "RABBITMQ_HOST")}
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "serve", "--role", "payments"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "AMQP_URL" in result.stderr
