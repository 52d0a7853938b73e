"""Dataset layout: the top-level folder, YOLO (with its dataset YAML) or classification.

Judged from the member names alone, the way ultralytics reads a dataset once unpacked; the
YAML's content is checked in dataset_yaml.py.
"""

from collections.abc import Collection
from pathlib import PurePosixPath

from trainhub.server.archives.errors import ArchiveError, quote
from trainhub.server.archives.names import archive_stem, is_ignored

_VAL_SPLITS = ("val", "validation", "valid")


def find_layout(
    files: Collection[str], dirs: Collection[str], filename: str
) -> tuple[str, str | None]:
    """Return ("detect", YAML name) or ("classify", None) the way ultralytics reads datasets."""
    visible_files = [name for name in files if not is_ignored(name)]
    visible_dirs = [name for name in dirs if not is_ignored(name)]
    root = dataset_root(visible_files, visible_dirs)
    yaml_files = [name for name in visible_files if name.endswith((".yaml", ".yml"))]
    if yaml_files:
        return "detect", _pick_yaml(yaml_files, root, filename)
    if _has_split(visible_files, root, "train"):
        if any(_has_split(visible_files, root, split) for split in _VAL_SPLITS):
            return "classify", None
        raise ArchiveError(
            f"{quote(filename)} has a train/ folder but no val/ folder; add val/ (or "
            "validation/) next to train/ with one sub-folder per class and upload again."
        )
    raise ArchiveError(
        f"{quote(filename)} does not look like a dataset. Use either the YOLO layout (images/ "
        "and labels/ folders plus a dataset YAML with train:, val: and names:) or the "
        "classification layout (train/ and val/ folders with one sub-folder per class), "
        "then upload again."
    )


def dataset_root(files: list[str], dirs: list[str]) -> str:
    """Return the single top-level folder, or "" when the files lie loose in the archive."""
    tops = {name.split("/", 1)[0] for name in [*files, *dirs]}
    if len(tops) == 1:
        (top,) = tops
        if top not in files:
            return top
    return ""


def _pick_yaml(yaml_files: list[str], root: str, filename: str) -> str:
    """Choose the dataset YAML as ultralytics' find_dataset_yaml will after unpacking."""
    candidates = [name for name in yaml_files if name.endswith(".yaml")]
    if not candidates:
        # find_dataset_yaml globs "*.yaml" only, so a lone .yml means "no YAML found" at training
        name = yaml_files[0]
        raise ArchiveError(
            f"{quote(filename)} has a dataset YAML named {quote(name)}, but trainers only look "
            f"for *.yaml files; rename it to {PurePosixPath(name).stem}.yaml and upload again."
        )
    depth = root.count("/") + 1 if root else 0
    at_top = [name for name in candidates if name.count("/") == depth]
    found = at_top or candidates
    if len(found) == 1:
        return found[0]
    stem = PurePosixPath(root or archive_stem(filename)).stem
    chosen = [name for name in found if PurePosixPath(name).stem == stem]
    if len(chosen) != 1:
        listed = ", ".join(quote(name) for name in found[:5])
        raise ArchiveError(
            f"{quote(filename)} contains several dataset YAML files ({listed}) and none is "
            f"named after the dataset folder; keep only one, or name the right one "
            f"{stem}.yaml, and upload again."
        )
    return chosen[0]


def _has_split(files: list[str], root: str, split: str) -> bool:
    """Tell whether `root/split/` has a class folder holding at least one file."""
    prefix = f"{root}/{split}/" if root else f"{split}/"
    return any(name.startswith(prefix) and "/" in name[len(prefix) :] for name in files)
