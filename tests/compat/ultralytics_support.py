"""Helpers for driving the real ultralytics client in the compatibility venv.

The main test venv has no torch; every ultralytics run is a subprocess of
`.venv-compat/bin/python tests/compat/ultralytics_runs.py SCENARIO ...`, in an offline
environment of its own (docs/protocol/hub-v1.md §1, §12). The dataset the runs train on is drawn
here with the standard library only: coloured rectangles on a plain background, written as PNG.
"""

import hashlib
import json
import os
import random
import struct
import subprocess
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
COMPAT_VENV = Path(os.environ.get("COMPAT_VENV") or ROOT / ".venv-compat")  # compat-venv.sh's
COMPAT_PYTHON = COMPAT_VENV / "bin" / "python"
RUNS_SCRIPT = Path(__file__).resolve().parent / "ultralytics_runs.py"
RESULT_PREFIX = "RESULT "
RUN_TIMEOUT = 240.0  # one ultralytics subprocess; a toy run takes 5-30 s
IMAGE_SIZE = 64
TRAIN_IMAGES = 8
VAL_IMAGES = 4

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, x1/y1 exclusive)


# --------------------------------------------------------------------------------------------
# Drawing the dataset


def png_bytes(width: int, height: int, rgb: bytes) -> bytes:
    """Encode 8-bit RGB pixels (row-major, 3 bytes a pixel) as a PNG file."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def draw_image(rng: random.Random, size: int = IMAGE_SIZE) -> tuple[bytes, list[Box]]:
    """Draw one or two filled rectangles of random colours on a random plain background."""
    background = bytes(rng.randrange(40, 90) for _ in range(3))
    pixels = bytearray(background * size * size)
    boxes: list[Box] = []
    for _ in range(rng.choice((1, 2))):
        w, h = rng.randrange(size // 5, size // 2), rng.randrange(size // 5, size // 2)
        x0, y0 = rng.randrange(0, size - w), rng.randrange(0, size - h)
        colour = bytes(rng.randrange(150, 256) for _ in range(3))
        for y in range(y0, y0 + h):
            pixels[(y * size + x0) * 3 : (y * size + x0 + w) * 3] = colour * w
        boxes.append((x0, y0, x0 + w, y0 + h))
    return png_bytes(size, size, bytes(pixels)), boxes


def yolo_label(boxes: list[Box], size: int = IMAGE_SIZE) -> str:
    """YOLO detection labels: `class cx cy w h`, normalised to the image size."""
    lines = []
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2 / size, (y0 + y1) / 2 / size
        w, h = (x1 - x0) / size, (y1 - y0) / size
        lines.append(f"0 {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ShapesDataset:
    """The drawn dataset, as a folder with a local YAML and as a HUB-style archive."""

    root: Path  # .../shapes (holds shapes.yaml, images/, labels/)
    local_yaml: Path  # absolute `path:` pointing at root, for local training
    archive: Path  # shapes.zip: shapes/shapes.yaml, shapes/images/..., shapes/labels/...

    def image(self, split: str = "val", index: int = 0) -> Path:
        return self.root / "images" / split / f"{split}{index:02d}.png"


ARCHIVE_YAML = "train: images/train\nval: images/val\nnames:\n  0: box\n"


def make_shapes_dataset(base: Path, seed: int = 20261122) -> ShapesDataset:
    """Draw 8 train + 4 val images with labels under `base/shapes` and zip them."""
    rng = random.Random(seed)
    root = base / "shapes"
    members: list[Path] = [root / "shapes.yaml"]
    for split, count in (("train", TRAIN_IMAGES), ("val", VAL_IMAGES)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            png, boxes = draw_image(rng)
            image = root / "images" / split / f"{split}{i:02d}.png"
            label = root / "labels" / split / f"{split}{i:02d}.txt"
            image.write_bytes(png)
            label.write_text(yolo_label(boxes))
            members += [image, label]
    # the archive's YAML has no `path:` key (docs/protocol/hub-v1.md §16.2)
    (root / "shapes.yaml").write_text(ARCHIVE_YAML)
    local_yaml = base / "shapes-local.yaml"
    local_yaml.write_text(f"path: {root.resolve()}\n{ARCHIVE_YAML}")
    archive = base / "shapes.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for member in members:
            zf.write(member, member.relative_to(base).as_posix())
    return ShapesDataset(root=root, local_yaml=local_yaml, archive=archive)


# --------------------------------------------------------------------------------------------
# Running ultralytics


@dataclass
class Run:
    """One finished subprocess of the compat venv."""

    args: list[str]
    returncode: int
    output: str
    result: dict[str, Any] | None
    seconds: float

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-80:])
        return (
            f"ultralytics_runs.py {' '.join(self.args)} exited {self.returncode} after "
            f"{self.seconds:.0f} s; output tail:\n{tail}"
        )


@dataclass
class Workspace:
    """A private YOLO config dir and working directory, like one user's machine."""

    config_dir: Path
    cwd: Path

    @classmethod
    def create(cls, base: Path) -> "Workspace":
        config_dir, cwd = base / "yolo-config", base / "cwd"
        fonts = config_dir / "Ultralytics"
        fonts.mkdir(parents=True, exist_ok=True)
        # empty font files, or ultralytics fetches them from GitHub (docs/protocol/hub-v1.md §12.4)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            (fonts / name).touch()
        cwd.mkdir(parents=True, exist_ok=True)
        (base / "mpl").mkdir(exist_ok=True)
        return cls(config_dir=config_dir, cwd=cwd)

    @property
    def settings(self) -> dict[str, Any]:
        path = self.config_dir / "Ultralytics" / "settings.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def env(self, hub_url: str) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            {
                "HOME": str(self.cwd.parent),
                "YOLO_OFFLINE": "true",
                "YOLO_AUTOINSTALL": "false",
                "YOLO_CONFIG_DIR": str(self.config_dir),
                "ULTRALYTICS_HUB_API": hub_url.rstrip("/"),
                "ULTRALYTICS_HUB_WEB": hub_url.rstrip("/"),
                "MPLCONFIGDIR": str(self.cwd.parent / "mpl"),
                "CUDA_VISIBLE_DEVICES": "",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        return env

    def run(self, hub_url: str, *args: str, timeout: float = RUN_TIMEOUT) -> Run:
        """Run one scenario of ultralytics_runs.py here; never raises on failure or timeout."""
        cmd = [str(COMPAT_PYTHON), str(RUNS_SCRIPT), *args]
        log = self.cwd.parent / f"run-{len(list(self.cwd.parent.glob('run-*.log')))}.log"
        started = time.monotonic()
        with log.open("wb") as out:
            try:
                proc = subprocess.run(
                    cmd,
                    cwd=self.cwd,
                    env=self.env(hub_url),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
                returncode = proc.returncode
            except subprocess.TimeoutExpired:
                returncode = -9
        output = log.read_text(errors="replace")
        if returncode == -9:
            output += f"\n[killed after the {timeout:.0f} s timeout]"
        results = [
            line[len(RESULT_PREFIX) :]
            for line in output.splitlines()
            if line.startswith(RESULT_PREFIX)
        ]
        result = json.loads(results[-1]) if results else None
        return Run(
            args=list(args),
            returncode=returncode,
            output=output,
            result=result,
            seconds=time.monotonic() - started,
        )


# --------------------------------------------------------------------------------------------
# Talking to the server directly


def hub_client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=30)


def data_of(response: httpx.Response) -> Any:
    assert response.status_code == 200, (
        f"{response.request.method} {response.request.url} -> "
        f"{response.status_code}: {response.text[:500]}"
    )
    body = response.json()
    assert body.get("success") is True, body
    return body.get("data")


def upload_dataset(client: httpx.Client, archive: Path, name: str = "shapes") -> str:
    """Create a dataset and upload the archive the way hub-sdk does.

    See docs/protocol/hub-v1.md §5.16 and §5.17.
    """
    dataset_id = data_of(
        client.post("/v1/datasets", json={"meta": {"name": name}, "filename": archive.name})
    )["id"]
    with archive.open("rb") as fh:
        data_of(
            client.post(
                f"/v1/datasets/{dataset_id}/upload", files={archive.name: (archive.name, fh)}
            )
        )
    return str(dataset_id)


def create_url_model(client: httpx.Client, dataset_id: str, *, name: str, epochs: int) -> str:
    """Create a HUB model the way hub-sdk users do and return its id.

    See docs/protocol/hub-v1.md §5.4.
    """
    body = {
        "meta": {"name": name},
        "datasetId": dataset_id,
        "lineage": {"architecture": {"name": "yolo11n"}},
        "config": {
            "epochs": epochs,
            "imageSize": IMAGE_SIZE,
            "batchSize": 4,
            "patience": 100,
            "device": "cpu",
        },
    }
    return str(data_of(client.post("/v1/models", json=body))["id"])


def metric_epochs(client: httpx.Client, model_id: str) -> dict[str, set[str]]:
    """Map metric name -> epochs (as strings) stored on the server.

    See docs/protocol/hub-v1.md §5.9.
    """
    series = data_of(client.get(f"/v1/models/{model_id}/metrics"))
    return {item["meta"]["name"]: set(item["data"]) for item in series}


def download(url: str) -> bytes:
    """Fetch a file URL the way ultralytics does: no auth header, redirects followed.

    See docs/protocol/hub-v1.md §10.
    """
    response = httpx.get(url, follow_redirects=True, timeout=60)
    assert response.status_code == 200, f"GET {url} -> {response.status_code}"
    return response.content


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
