"""From a model document to what ultralytics reads: config parsing, cfg, train_args.

See docs/protocol/hub-v1.md §16.4.
"""

import pytest

from trainhub.server.errors import ValidationError
from trainhub.server.modelspec import cfg_name, flat_config, normalize_config, train_args


def test_hub_sdk_string_values_are_parsed() -> None:
    config = normalize_config(
        {
            "epochs": "5",
            "imageSize": "640",
            "batchSize": "0.5",
            "patience": "7",
            "cache": "ram",
            "device": "None",
        }
    )
    assert config == {
        "epochs": 5,
        "imageSize": 640,
        "batchSize": 0.5,
        "patience": 7,
        "cache": "ram",
    }


def test_ultralytics_payload_values_are_kept_typed() -> None:
    config = normalize_config(
        {
            "batchSize": -1,
            "epochs": 100,
            "imageSize": 640,
            "patience": 100,
            "device": "cpu",
            "cache": "False",
        }
    )
    assert config["cache"] is False and config["device"] == "cpu" and config["batchSize"] == -1


def test_train_args_hold_only_valid_arguments_and_always_data() -> None:
    config = normalize_config({"epochs": 3, "imageSize": [64, 48], "batchSize": 4, "extra": "x"})
    args = train_args(config, "http://hub/files/t/d/x.zip/x-1.zip")
    assert args == {
        "data": "http://hub/files/t/d/x.zip/x-1.zip",
        "epochs": 3,
        "imgsz": [64, 48],
        "batch": 4,
    }
    assert flat_config(config)["imgsz"] == [64, 48] and flat_config(config)["device"] is None


@pytest.mark.parametrize(
    ("doc", "cfg"),
    [
        ({}, "yolo11n.yaml"),
        ({"lineage": {"architecture": {"name": "yolo11s-seg"}}}, "yolo11s-seg.yaml"),
        ({"lineage": {"architecture": {"name": "my.yaml"}}}, "my.yaml"),
    ],
)
def test_cfg_comes_from_the_architecture(doc: dict, cfg: str) -> None:
    assert cfg_name(doc) == cfg


@pytest.mark.parametrize(
    "config",
    [
        {"epochs": "many"},
        {"epochs": 0},
        {"epochs": 2.5},
        {"imageSize": "big"},
        {"batchSize": -2},
        {"cache": "sometimes"},
        {"patience": True},
    ],
)
def test_nonsense_config_values_are_refused_with_the_field_named(config: dict) -> None:
    with pytest.raises(ValidationError, match=r"config\."):
        normalize_config(config)
