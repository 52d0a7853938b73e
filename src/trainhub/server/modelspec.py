"""What a model document means for a trainer: config, cfg, train_args.

See docs/protocol/hub-v1.md §6 and §16.4.

hub-sdk sends config values as strings ("5", "True"); ultralytics sends "None" for an unset
device and "False" for cache. `normalize_config` turns them into typed values once, at write
time; `train_args` then holds only valid ultralytics train arguments.
"""

import math
from typing import Any

from trainhub.server.errors import ValidationError

DEFAULT_ARCHITECTURE = "yolo11n"  # see docs/decisions/0005-model-defaults-and-derivations.md
CONFIG_TO_TRAIN_ARG = {
    "epochs": "epochs",
    "imageSize": "imgsz",
    "batchSize": "batch",
    "patience": "patience",
    "device": "device",
    "cache": "cache",
}
CONFIG_TO_FLAT = {
    "batchSize": "batch_size",
    "epochs": "epochs",
    "imageSize": "imgsz",
    "patience": "patience",
    "device": "device",
    "cache": "cache",
}


def _scalar(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", ""):
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text.strip()


def _number(name: str, value: Any, *, whole: bool, minimum: float) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"config.{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValidationError(f"config.{name} must be a finite number, got {value!r}")
    if whole and value != int(value):
        raise ValidationError(f"config.{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValidationError(f"config.{name} must be at least {minimum}, got {value!r}")
    return int(value) if whole else value


def _image_size(value: Any) -> int | list[int]:
    if isinstance(value, list) and 1 <= len(value) <= 2:
        sizes = [_scalar(v) if isinstance(v, str) else v for v in value]
        return [int(_number("imageSize", v, whole=True, minimum=1)) for v in sizes]
    return int(_number("imageSize", value, whole=True, minimum=1))


def _batch(value: Any) -> int | float:
    number = _number("batchSize", value, whole=False, minimum=-1)
    return int(number) if number == int(number) else number


def _cache(value: Any) -> bool | str:
    if isinstance(value, bool) or value in ("ram", "disk"):
        return value  # type: ignore[no-any-return]
    raise ValidationError(f"config.cache must be true, false, 'ram' or 'disk', got {value!r}")


def normalize_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return `config` with strings parsed and each known value checked; unknown keys kept."""
    out: dict[str, Any] = {}
    for key, raw in config.items():
        value = _scalar(raw) if isinstance(raw, str) else raw
        if value is None:
            continue
        if key == "epochs":
            value = _number(key, value, whole=True, minimum=1)
        elif key == "patience":
            value = _number(key, value, whole=True, minimum=0)
        elif key == "imageSize":
            value = _image_size(value)
        elif key == "batchSize":
            value = _batch(value)
        elif key == "device":
            value = str(value)
        elif key == "cache":
            value = _cache(value)
        out[key] = value
    return out


def _lineage_part(doc: dict[str, Any], part: str) -> dict[str, Any]:
    lineage = doc.get("lineage")
    value = lineage.get(part) if isinstance(lineage, dict) else None
    return value if isinstance(value, dict) else {}


def check_lineage(doc: dict[str, Any]) -> None:
    """Refuse a lineage whose architecture or parent is not an object with a string name."""
    lineage = doc.get("lineage")
    if not isinstance(lineage, dict):
        return
    for part in ("architecture", "parent"):
        value = lineage.get(part)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValidationError(f'lineage.{part} must be an object such as {{"name": ...}}')
        if not isinstance(value.get("name"), str | None):
            raise ValidationError(f"lineage.{part}.name must be a string")


def architecture(doc: dict[str, Any]) -> str:
    """Return the architecture name of a model document (without .yaml)."""
    arch = _lineage_part(doc, "architecture").get("name")
    return str(arch) if arch else DEFAULT_ARCHITECTURE


def cfg_name(doc: dict[str, Any]) -> str:
    """Return the architecture YAML ultralytics builds an untrained model from."""
    arch = architecture(doc)
    return arch if arch.endswith((".yaml", ".yml")) else f"{arch}.yaml"


def parent(doc: dict[str, Any]) -> dict[str, Any]:
    """Return lineage.parent of a model document ({} when the model starts from scratch)."""
    return _lineage_part(doc, "parent")


def train_args(config: dict[str, Any], data: str | None) -> dict[str, Any]:
    """Return the keyword arguments for `model.train(**train_args)`: valid train arguments only."""
    args: dict[str, Any] = {} if data is None else {"data": data}
    for key, arg in CONFIG_TO_TRAIN_ARG.items():
        if key in config:
            args[arg] = config[key]
    return args


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return batch_size/epochs/imgsz/patience/device/cache as flat fields.

    See docs/protocol/hub-v1.md §5.3.
    """
    return {flat: config.get(key) for key, flat in CONFIG_TO_FLAT.items()}
