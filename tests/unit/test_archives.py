"""Tests of archive inspection: valid datasets pass, hostile or unusable archives are refused."""

import gzip
import io
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from trainhub.server.archives import (
    ArchiveError,
    ArchiveLimits,
    ArchiveReport,
    inspect_archive,
    is_archive_name,
)

MIB = 1024**2
YAML = b"train: images/train\nval: images/val\nnames:\n  0: person\n"
Members = list[tuple[str, bytes]]


def coco8(root: str = "coco8/", yaml_text: bytes = YAML, yaml_name: str = "coco8.yaml") -> Members:
    """Return the members of a tiny coco8-like detect dataset under `root`."""
    members = [(f"{root}{yaml_name}", yaml_text)]
    for split in ("train", "val"):
        members.append((f"{root}images/{split}/a.jpg", b"\xff\xd8jpeg"))
        members.append((f"{root}labels/{split}/a.txt", b"0 0.5 0.5 0.1 0.1\n"))
    return members


def classify(splits: tuple[str, ...] = ("train", "val")) -> Members:
    return [
        (f"flowers/{split}/{cls}/{index}.jpg", b"\xff\xd8jpeg")
        for split in splits
        for index, cls in enumerate(("daisy", "rose"))
    ]


def write_zip(path: Path, members: Members) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def write_tar(
    path: Path, members: Sequence[tuple[str, bytes] | tarfile.TarInfo], mode: str
) -> Path:
    with tarfile.open(path, "w:gz") if mode == "w:gz" else tarfile.open(path, "w") as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name.rstrip("/"))
            info.type = tarfile.DIRTYPE if name.endswith("/") else tarfile.REGTYPE
            info.size = 0 if name.endswith("/") else len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def refused(path: Path, filename: str | None = None, limits: ArchiveLimits | None = None) -> str:
    """Inspect an archive that must be refused and return the message."""
    with pytest.raises(ArchiveError) as caught:
        inspect_archive(path, filename or path.name, limits or ArchiveLimits())
    return str(caught.value)


# --- hand-built zips, for what zipfile refuses to write ---


def local_header(name: bytes, data: bytes, flags: int = 0, method: int = 0) -> bytes:
    crc, size = zlib.crc32(data), len(data)
    fields = (b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, size, size, len(name), 0)
    return struct.pack("<4s5H3L2H", *fields) + name


def central_entry(name: bytes, data: bytes, offset: int, flags: int = 0, method: int = 0) -> bytes:
    crc, size = zlib.crc32(data), len(data)
    fields = (b"PK\x01\x02", 0x314, 20, flags, method, 0, 0x21, crc, size, size, len(name))
    rest = (0, 0, 0, 0, 0o100644 << 16, offset)
    return struct.pack("<4s6H3L5H2L", *fields, *rest) + name


def raw_zip(body: bytes, entries: list[bytes]) -> bytes:
    directory = b"".join(entries)
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), len(body), 0
    )
    return body + directory + end


def single_member_zip(name: bytes, data: bytes, flags: int = 0, method: int = 0) -> bytes:
    body = local_header(name, data, flags, method) + data
    return raw_zip(body, [central_entry(name, data, 0, flags, method)])


# --- valid archives ---


def test_detect_zip_with_folder_entries_and_zip64(tmp_path: Path) -> None:
    members = [("coco8/", b""), *coco8(), ("__MACOSX/coco8/._coco8.yaml", b"x")]
    path = write_zip(tmp_path / "coco8.zip", members)
    with zipfile.ZipFile(path, "a") as zf, zf.open("coco8/extra.txt", "w", force_zip64=True) as fh:
        fh.write(b"extra")
    report = inspect_archive(path, "coco8.zip")
    assert report == ArchiveReport(
        "zip", 7, report.total_bytes, "detect", "coco8/coco8.yaml", "coco8"
    )
    assert report.total_bytes == sum(len(data) for _, data in members) + len(b"extra")


def test_loose_files_zip(tmp_path: Path) -> None:
    members = [*coco8(root="", yaml_name="data.yaml"), (".DS_Store", b"\0")]
    path = write_zip(tmp_path / "mine.zip", members)
    report = inspect_archive(path, "mine.zip")
    assert (report.kind, report.members, report.layout) == ("zip", 6, "detect")
    assert report.yaml_name == "data.yaml"


@pytest.mark.parametrize(("mode", "filename"), [("w", "coco8.tar"), ("w:gz", "coco8.tar.gz")])
def test_tar_and_tar_gz(tmp_path: Path, mode: str, filename: str) -> None:
    path = write_tar(
        tmp_path / filename, [("./", b""), ("./coco8/", b""), *coco8("./coco8/")], mode
    )
    report = inspect_archive(path, filename)
    total = sum(len(data) for _, data in coco8())
    assert report == ArchiveReport("tar", 5, total, "detect", "./coco8/coco8.yaml", "coco8")


def test_tgz_name_accepted(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "x.tgz", coco8(), "w:gz")
    assert inspect_archive(path, "x.tgz").layout == "detect"


def test_classify_zip(tmp_path: Path) -> None:
    members = [*classify(("train", "val", "test")), ("__MACOSX/flowers/._x", b"x")]
    path = write_zip(tmp_path / "flowers.zip", members)
    assert inspect_archive(path, "flowers.zip") == ArchiveReport(
        "zip", 7, 37, "classify", None, "flowers"
    )


def test_yaml_named_after_the_folder_wins(tmp_path: Path) -> None:
    members = [*coco8(), ("coco8/other.yaml", YAML)]
    path = write_zip(tmp_path / "coco8.zip", members)
    assert inspect_archive(path, "coco8.zip").yaml_name == "coco8/coco8.yaml"


def test_yaml_found_below_the_root(tmp_path: Path) -> None:
    # split paths are relative to the YAML's folder, and may climb back up to the dataset's
    yaml_text = YAML.replace(b": images/", b": ../images/")
    members = [
        (name.replace("coco8.yaml", "cfg/data.yaml"), data)
        for name, data in coco8(yaml_text=yaml_text)
    ]
    path = write_zip(tmp_path / "coco8.zip", members)
    assert inspect_archive(path, "coco8.zip").yaml_name == "coco8/cfg/data.yaml"


@pytest.mark.parametrize(
    "yaml_text",
    [
        YAML + b"path:\n",
        YAML + b"path: ''\n",
        b"train: images/train\nvalidation: images/val\nnc: 1\n",
        b"train: images/train\nval: [images/val]\nnames: [person]\nnc: 1\n",
    ],
)
def test_acceptable_yaml(tmp_path: Path, yaml_text: bytes) -> None:
    path = write_zip(tmp_path / "coco8.zip", coco8(yaml_text=yaml_text))
    assert inspect_archive(path, "coco8.zip").layout == "detect"


# --- names ---


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("/etc/passwd", "absolute path"),
        ("\\evil.txt", "absolute path"),
        ("../evil.txt", "'..'"),
        ("coco8/a/../../../evil.txt", "'..'"),
        ("coco8\\images\\a.jpg", "backslashes"),
        ("C:/evil.txt", "drive letter"),
        ("c:evil.txt", "drive letter"),
        ("coco8/" + "x" * 1100, "longer than 1024"),
    ],
)
def test_hostile_names_zip(tmp_path: Path, name: str, phrase: str) -> None:
    path = write_zip(tmp_path / "bad.zip", [*coco8(), (name, b"x")])
    message = refused(path)
    assert phrase in message
    assert "relative, '/'-separated names" in message


@pytest.mark.parametrize("name", ["/etc/evil", "coco8/../../evil"])
def test_hostile_names_tar(tmp_path: Path, name: str) -> None:
    path = write_tar(tmp_path / "bad.tar.gz", [*coco8(), (name, b"x")], "w:gz")
    assert "re-create the archive with relative" in refused(path)


def test_nul_in_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.zip"
    path.write_bytes(single_member_zip(b"a\x00.yaml", b"x"))
    assert "NUL character" in refused(path)


def test_duplicate_names(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = write_zip(tmp_path / "dup.zip", [*coco8(), ("coco8/images/train/a.jpg", b"again")])
    assert "more than once" in refused(path)


def test_file_and_folder_entry_with_one_name(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "dup.zip", [*coco8(), ("coco8/x", b"file"), ("coco8/x/", b"")])
    assert "'coco8/x' more than once" in refused(path)


def test_duplicate_after_dot_prefix_tar(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "dup.tar", [*coco8(), ("./coco8/coco8.yaml", YAML)], "w")
    assert "more than once" in refused(path)


def test_file_and_folder_with_one_name(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "clash.zip", [*coco8(), ("coco8/x", b"a"), ("coco8/x/y", b"b")])
    assert "both as a file and as a folder" in refused(path)


# --- links, special files, encryption ---


def test_zip_symlink(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "link.zip", coco8())
    link = zipfile.ZipInfo("coco8/images/train/b.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(link, "/etc/passwd")
    assert "symbolic link" in refused(path)


@pytest.mark.parametrize(
    ("member", "phrase"),
    [
        (special("coco8/b.jpg", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        (special("coco8/b.jpg", tarfile.LNKTYPE, "coco8/coco8.yaml"), "hard link"),
        (special("coco8/dev", tarfile.CHRTYPE), "not a regular file or folder"),
        (special("coco8/disk", tarfile.BLKTYPE), "not a regular file or folder"),
        (special("coco8/pipe", tarfile.FIFOTYPE), "not a regular file or folder"),
    ],
)
def test_tar_special_members(tmp_path: Path, member: tarfile.TarInfo, phrase: str) -> None:
    path = write_tar(tmp_path / "bad.tar", [*coco8(), member], "w")
    assert phrase in refused(path)


def test_encrypted_member(tmp_path: Path) -> None:
    path = tmp_path / "secret.zip"
    path.write_bytes(single_member_zip(b"data.yaml", YAML, flags=0x1))
    assert "password-protected" in refused(path)


def test_unsupported_compression_method(tmp_path: Path) -> None:
    path = tmp_path / "deflate64.zip"
    path.write_bytes(single_member_zip(b"data.yaml", YAML, method=9))
    assert "compression method" in refused(path)


# --- bombs ---


def test_zip_member_ratio_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("coco8/zeros.bin", bytes(50 * MIB))
    message = refused(path)
    assert "looks like a zip bomb" in message
    assert "'coco8/zeros.bin'" in message


def test_tar_gz_total_ratio_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=6) as tf:
        info = tarfile.TarInfo("coco8/zeros.bin")
        info.size = 40 * MIB
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    assert "looks like a decompression bomb" in refused(path)


@pytest.mark.parametrize("filename", ["pax.tar.gz", "pax.tar"])
def test_oversized_pax_header(tmp_path: Path, filename: str) -> None:
    # tarfile would read the whole pax record into memory; a gzip stream makes that cheap to send
    info = tarfile.TarInfo("coco8/a.txt")
    info.pax_headers = {"comment": "x" * (5 * MIB)}
    path = write_tar(tmp_path / filename, [*coco8(), info], "w:gz" if "gz" in filename else "w")
    assert "decompression-bomb trick" in refused(path)


def test_tar_gz_with_hidden_trailing_data(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "tail.tar.gz", coco8(), "w:gz")
    with path.open("ab") as fh:
        fh.write(gzip.compress(bytes(8 * MIB), compresslevel=1))
    assert "decompression-bomb trick" in refused(path)


@pytest.mark.parametrize(
    ("limits", "phrase"),
    [
        (ArchiveLimits(max_members=4), "more than 4 files"),
        (ArchiveLimits(max_total_bytes=50), "unpacks to more than 50 bytes"),
    ],
)
def test_count_and_size_limits(tmp_path: Path, limits: ArchiveLimits, phrase: str) -> None:
    zip_path = write_zip(tmp_path / "coco8.zip", coco8())
    tar_path = write_tar(tmp_path / "coco8.tar.gz", coco8(), "w:gz")
    assert phrase in refused(zip_path, limits=limits)
    assert phrase in refused(tar_path, limits=limits)


def test_overlap_two_entries_share_one_member(tmp_path: Path) -> None:
    data = YAML
    body = local_header(b"a.yaml", data) + data
    entries = [central_entry(b"a.yaml", data, 0), central_entry(b"b.yaml", data, 0)]
    path = tmp_path / "overlap.zip"
    path.write_bytes(raw_zip(body, entries))
    assert "data overlap" in refused(path)


def test_overlap_quoted_member(tmp_path: Path) -> None:
    # the outer member's stored data is the inner member's header and data (Fifield's zip bomb)
    inner_data = b"0 0.5 0.5 0.1 0.1\n"
    inner = local_header(b"b.txt", inner_data) + inner_data
    outer_header = local_header(b"a.txt", inner)
    entries = [
        central_entry(b"a.txt", inner, 0),
        central_entry(b"b.txt", inner_data, len(outer_header)),
    ]
    path = tmp_path / "quoted.zip"
    path.write_bytes(raw_zip(outer_header + inner, entries))
    assert "data overlap" in refused(path)


def test_local_name_differs_from_directory(tmp_path: Path) -> None:
    body = local_header(b"a.yaml", YAML) + YAML
    path = tmp_path / "differ.zip"
    path.write_bytes(raw_zip(body, [central_entry(b"b.yaml", YAML, 0)]))
    assert "damaged or truncated; upload it again" in refused(path)


# --- damaged or mistyped files ---


def test_truncated_zip(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "cut.zip", coco8())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "the archive is damaged or truncated; upload it again" in refused(path)


def test_truncated_tar_gz(tmp_path: Path) -> None:
    noise = os.urandom(64 * 1024)  # incompressible, so the cut lands inside member data
    members = [*coco8(), *[(f"coco8/images/train/{i}.jpg", noise) for i in range(8)]]
    path = write_tar(tmp_path / "cut.tar.gz", members, "w:gz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "the archive is damaged or truncated; upload it again" in refused(path)


def test_truncated_tar_at_a_header_boundary(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "cut.tar", coco8(), "w")
    path.write_bytes(path.read_bytes()[: 2 * tarfile.BLOCKSIZE])  # first header and data, no end
    assert "the archive is damaged or truncated; upload it again" in refused(path)


def test_tar_gz_with_junk_after_the_stream(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "junk.tar.gz", coco8(), "w:gz")
    with path.open("ab") as fh:
        fh.write(b"junk")
    assert "damaged or truncated" in refused(path)


@pytest.mark.parametrize(
    ("writer", "filename", "phrase"),
    [
        ("tar", "data.zip", "rename it to end in .tar"),
        ("zip", "data.tar.gz", "rename it to end in .zip"),
        ("tar", "data.tgz", "rename it to end in .tar"),
        ("tar.gz", "data.tar", "rename it to end in .tar.gz"),
    ],
)
def test_content_does_not_match_name(
    tmp_path: Path, writer: str, filename: str, phrase: str
) -> None:
    path = tmp_path / "upload"
    if writer == "zip":
        write_zip(path, coco8())
    else:
        write_tar(path, coco8(), "w:gz" if writer == "tar.gz" else "w")
    assert phrase in refused(path, filename)


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"hello, this is not an archive\n" * 40, "is not a zip or tar archive"),
        (b"", "is not a zip or tar archive"),
        # mtime=0: the same bytes, so the same test id, in every pytest-xdist worker
        (gzip.compress(b"just a gzipped text file\n" * 40, mtime=0), "holds no tar archive"),
    ],
)
def test_not_an_archive(tmp_path: Path, content: bytes, phrase: str) -> None:
    path = tmp_path / "upload"
    path.write_bytes(content)
    assert phrase in refused(path, "data.tar.gz" if content.startswith(b"\x1f\x8b") else "data.zip")


def test_unsupported_name(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "upload", coco8())
    assert "not a supported archive name" in refused(path, "data.rar")


def test_tar_that_is_also_a_zip(tmp_path: Path) -> None:
    nested = write_zip(tmp_path / "nested.zip", coco8()).read_bytes()
    path = write_tar(tmp_path / "both.tar", [*coco8(), ("coco8/nested.zip", nested)], "w")
    assert "both a tar and a zip" in refused(path)


@pytest.mark.parametrize(
    ("filename", "members"),
    [("empty.zip", []), ("empty.tar", [("coco8/", b"")]), ("empty.tar.gz", [])],
)
def test_empty_archive(tmp_path: Path, filename: str, members: Members) -> None:
    if filename.endswith(".zip"):
        path = write_zip(tmp_path / filename, members)
    else:
        path = write_tar(tmp_path / filename, members, "w:gz" if ".gz" in filename else "w")
    assert "contains no files" in refused(path)


# --- layout and dataset YAML ---


@pytest.mark.parametrize(
    ("yaml_text", "phrase"),
    [
        (YAML + b"path: ../datasets/coco8\n", "remove the 'path:' line from coco8/coco8.yaml"),
        (
            YAML + b"path: /home/me/datasets/coco8\n",
            "remove the 'path:' line from coco8/coco8.yaml",
        ),
        (b"train: images/train\nnames: [person]\n", "no 'val:' entry"),
        (b"val: images/val\nnames: [person]\n", "no 'train:' entry"),
        (b"train: images/train\nval: images/val\n", "no 'names:' entry"),
        (b"train: a\nval: b\nnames: person\n", "must be a list or a mapping"),
        (b"train: a\nval: b\nnames: [a, b]\nnc: 3\n", "'nc:' says 3"),
        (b"- train\n- val\n", "must be a YAML mapping"),
        (b"train: [images/train\nval: x\n", "is not valid YAML (expected ',' or ']'"),
        (b"train: \x80\x81\n", "is not valid YAML"),
    ],
)
def test_bad_dataset_yaml(tmp_path: Path, yaml_text: bytes, phrase: str) -> None:
    path = write_zip(tmp_path / "coco8.zip", coco8(yaml_text=yaml_text))
    assert phrase in refused(path)


def test_bad_dataset_yaml_in_tar(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "c.tar.gz", coco8(yaml_text=YAML + b"path: ../x\n"), "w:gz")
    assert "remove the 'path:' line from coco8/coco8.yaml" in refused(path)


def test_oversized_yaml(tmp_path: Path) -> None:
    yaml_text = YAML + b"# " + os.urandom(MIB).hex().encode() + b"\n"
    path = write_zip(tmp_path / "coco8.zip", coco8(yaml_text=yaml_text))
    assert "larger than 1 MiB" in refused(path)


def test_ambiguous_yaml(tmp_path: Path) -> None:
    members = [*coco8(yaml_name="a.yaml"), ("coco8/b.yaml", YAML)]
    path = write_zip(tmp_path / "coco8.zip", members)
    message = refused(path)
    assert "several dataset YAML files" in message
    assert "coco8.yaml" in message


def test_yml_only_must_be_renamed(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "coco8.zip", coco8(yaml_name="coco8.yml"))
    assert "rename it to coco8.yaml" in refused(path)


def test_classify_without_val(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "flowers.zip", classify(("train", "test")))
    assert "no val/ folder" in refused(path)


def test_neither_layout(tmp_path: Path) -> None:
    members = [(name, data) for name, data in coco8() if not name.endswith(".yaml")]
    path = write_zip(tmp_path / "coco8.zip", members)
    message = refused(path)
    assert "dataset YAML with train:, val: and names:" in message
    assert "train/ and val/ folders with one sub-folder per class" in message


# --- is_archive_name ---


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("coco8.zip", True),
        ("COCO8.ZIP", True),
        ("data.tar", True),
        ("data.tar.gz", True),
        ("data.TGZ", True),
        ("data.gz", False),
        ("data.rar", False),
        (".zip", False),
        (".hidden.zip", False),
        ("dir/data.zip", False),
        ("dir\\data.zip", False),
        ("data\x00.zip", False),
        ("", False),
    ],
)
def test_is_archive_name(filename: str, expected: bool) -> None:
    assert is_archive_name(filename) is expected
