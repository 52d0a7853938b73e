"""The dataset YAML's content: size, syntax and the keys trainers need (no `path:`)."""

import yaml

from trainhub.server.archives.errors import ArchiveError, quote
from trainhub.server.archives.limits import MIB

MAX_YAML_BYTES = MIB


def check_yaml_size(size: int, yaml_name: str) -> None:
    if size > MAX_YAML_BYTES:
        raise ArchiveError(
            f"{quote(yaml_name)} is larger than 1 MiB, far too big for a dataset YAML; keep "
            "only train:, val:, test: and names: in it and upload again."
        )


def check_dataset_yaml(text: bytes, yaml_name: str) -> None:
    """Refuse a dataset YAML that ultralytics' check_det_dataset or a resumed run would reject."""
    data = _load_yaml(text, yaml_name)
    if not isinstance(data, dict):
        raise ArchiveError(
            f"{quote(yaml_name)} must be a YAML mapping with train:, val: and names: keys; "
            "fix it and upload again."
        )
    for key in ("train", "val"):
        if not data.get(key) and not (key == "val" and data.get("validation")):
            raise ArchiveError(
                f"{quote(yaml_name)} has no '{key}:' entry; add train: and val: with the image "
                "folders (relative to the YAML file) and upload again."
            )
    _check_yaml_names(data, yaml_name)
    path = data.get("path")
    if path is not None and str(path).strip():
        # a relative path breaks resumed runs and final validation; an absolute one is the
        # uploader's own disk
        raise ArchiveError(
            f"{quote(yaml_name)} sets path: {quote(str(path))}, which trainers cannot use; "
            f"remove the 'path:' line from {yaml_name} and upload again."
        )


def _load_yaml(text: bytes, yaml_name: str) -> object:
    try:
        data: object = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ArchiveError(
            f"{quote(yaml_name)} is not valid YAML ({_describe_yaml_error(exc)}); fix it and "
            "upload again."
        ) from exc
    return data


def _describe_yaml_error(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _check_yaml_names(data: dict[object, object], yaml_name: str) -> None:
    names, count = data.get("names"), data.get("nc")
    if names is None and count is None:
        raise ArchiveError(
            f"{quote(yaml_name)} has no 'names:' entry; add names: with your class names (or "
            "nc: with the number of classes) and upload again."
        )
    if names is not None and not isinstance(names, list | dict):
        raise ArchiveError(
            f"'names:' in {quote(yaml_name)} must be a list or a mapping of class names; "
            "fix it and upload again."
        )
    if isinstance(names, list | dict) and count is not None and len(names) != count:
        raise ArchiveError(
            f"'names:' in {quote(yaml_name)} lists {len(names)} classes but 'nc:' says "
            f"{count!r}; make them agree (or drop nc:) and upload again."
        )
