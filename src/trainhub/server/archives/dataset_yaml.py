"""The dataset YAML's content: size, syntax, and only the keys trainers need (no `path:`).

ultralytics runs a YAML's `download:` entry (a URL, a bash command or Python code) on the trainer
when a split path is missing, so an archive that other users' trainers download may carry only
the keys ultralytics reads to train; anything else is refused with a message naming it (see
docs/decisions/0012-dataset-yaml-allow-list.md, docs/security.md §2.7). Split paths are checked
in splits.py.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import IO

import yaml

from trainhub.server.archives.errors import ArchiveError, quote
from trainhub.server.archives.limits import MIB
from trainhub.server.archives.splits import SPLIT_KEYS, Listing, check_list_file, check_splits

MAX_YAML_BYTES = MIB
# Opens an archive member, by its normalised name, for reading.
MemberOpener = Callable[[str], AbstractContextManager[IO[bytes]]]

# What ultralytics 8.3 and 8.4 read from a dataset YAML to train: splits, classes, keypoints
# (pose), image channels, semantic masks and depth scales (8.4).
ALLOWED_KEYS = frozenset(
    (
        *SPLIT_KEYS,
        "path",  # only empty: see _check_path
        "names",
        "nc",
        "kpt_shape",
        "flip_idx",
        "kpt_names",
        "kpt_oks_sigmas",
        "channels",
        "masks_dir",
        "label_mapping",
        "bg_class_idx",
        "depth_scale",
        "max_depth",
    )
)


def check_dataset(yaml_name: str, listing: Listing, open_member: MemberOpener) -> None:
    """Read and check the dataset YAML `yaml_name` and the image lists its splits name."""
    with open_member(yaml_name) as fh:
        text = fh.read(MAX_YAML_BYTES + 1)
    check_yaml_size(len(text), yaml_name)
    for list_name in check_dataset_yaml(text, yaml_name, listing):
        with open_member(list_name) as fh:
            check_list_file(fh, list_name, listing)


def check_yaml_size(size: int, yaml_name: str) -> None:
    if size > MAX_YAML_BYTES:
        raise ArchiveError(
            f"{quote(yaml_name)} is larger than 1 MiB, far too big for a dataset YAML; keep "
            "only train:, val:, test: and names: in it and upload again."
        )


def check_dataset_yaml(text: bytes, yaml_name: str, listing: Listing) -> list[str]:
    """Refuse a YAML trainers would reject or that reaches outside the archive.

    `yaml_name` is the YAML's normalised member name. Return the members that splits name as
    image lists (normalised names), for the caller to read and check with check_list_file.
    """
    data = _load_yaml(text, yaml_name)
    if not isinstance(data, dict):
        raise ArchiveError(
            f"{quote(yaml_name)} must be a YAML mapping with train:, val: and names: keys; "
            "fix it and upload again."
        )
    _check_path(data, yaml_name)
    _check_keys(data, yaml_name)
    for key in ("train", "val"):
        if not data.get(key) and not (key == "val" and data.get("validation")):
            raise ArchiveError(
                f"{quote(yaml_name)} has no '{key}:' entry; add train: and val: with the image "
                "folders (relative to the YAML file) and upload again."
            )
    _check_yaml_names(data, yaml_name)
    _check_task_keys(data, yaml_name)
    return check_splits(data, yaml_name, listing)


def _check_path(data: dict[object, object], yaml_name: str) -> None:
    path = data.get("path")
    if path is not None and str(path).strip():
        # a relative path breaks resumed runs and final validation; an absolute one is the
        # uploader's own disk
        raise ArchiveError(
            f"{quote(yaml_name)} sets path: {quote(str(path))}, which trainers cannot use; "
            f"remove the 'path:' line from {yaml_name} and upload again."
        )


def _check_keys(data: dict[object, object], yaml_name: str) -> None:
    if "download" in data:
        raise ArchiveError(
            f"{quote(yaml_name)} has a 'download:' entry, which trainers would run (a URL, "
            "shell command or Python code) on their own machines; put the dataset itself in the "
            f"archive, remove 'download:' from {yaml_name} and upload again."
        )
    unknown = [key for key in data if key not in ALLOWED_KEYS]
    if unknown:
        listed = ", ".join(quote(str(key), 40) for key in unknown[:10])
        raise ArchiveError(
            f"{quote(yaml_name)} has keys trainers do not use: {listed}; remove them from "
            f"{yaml_name} (a dataset YAML holds only train:, val:, test:, names:, nc: and the "
            "task keys listed in the hub's docs) and upload again."
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
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise ArchiveError(
            f"'nc:' in {quote(yaml_name)} must be the number of classes, a whole number; "
            "fix it (or drop nc: and keep names:) and upload again."
        )
    if isinstance(names, list | dict) and count is not None and len(names) != count:
        raise ArchiveError(
            f"'names:' in {quote(yaml_name)} lists {len(names)} classes but 'nc:' says "
            f"{count!r}; make them agree (or drop nc:) and upload again."
        )


def _check_task_keys(data: dict[object, object], yaml_name: str) -> None:
    for key in ("kpt_shape", "flip_idx"):
        if data.get(key) is not None and not isinstance(data[key], list):
            raise ArchiveError(
                f"'{key}:' in {quote(yaml_name)} must be a list (for example kpt_shape: [17, 3]); "
                "fix it and upload again."
            )
    channels = data.get("channels")
    if channels is not None and (not isinstance(channels, int) or isinstance(channels, bool)):
        raise ArchiveError(
            f"'channels:' in {quote(yaml_name)} must be a whole number of image channels; fix "
            "it and upload again."
        )
    masks_dir = data.get("masks_dir")
    # ultralytics swaps it for 'images' in each image path, so it must be one plain folder name
    if masks_dir is not None and (
        not isinstance(masks_dir, str)
        or masks_dir in ("", ".", "..")
        or any(c in masks_dir for c in "/\\:")
    ):
        raise ArchiveError(
            f"'masks_dir:' in {quote(yaml_name)} must be the name of one folder beside images/ "
            "(for example masks_dir: masks); fix it and upload again."
        )
