"""Ids, API keys and metrics parsing of the shared protocol package."""

import json
import math

import pytest

from trainhub.protocol.ids import (
    API_KEY_LENGTH,
    ID_LENGTH,
    create_api_key,
    create_id,
    hash_api_key,
    is_api_key,
    is_id,
    normalize_api_key,
)
from trainhub.protocol.metrics import encode_epoch_metrics, parse_epoch, parse_epoch_metrics


def test_new_ids_are_twenty_alphanumerics_and_distinct() -> None:
    ids = {create_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == ID_LENGTH and i.isalnum() and is_id(i) for i in ids)


@pytest.mark.parametrize(
    "value", ["", "a" * 19, "a" * 21, "../../../etc/passwd", "a" * 19 + "/", "é" * 20]
)
def test_malformed_ids_are_refused(value: str) -> None:
    assert not is_id(value)


def test_new_keys_have_the_hub_shape_and_no_underscore() -> None:
    key = create_api_key()
    assert (
        len(key) == API_KEY_LENGTH and "_" not in key and key.startswith("ul") and is_api_key(key)
    )


def test_the_underscore_spelling_is_the_same_key() -> None:
    key = create_api_key()
    spelled = "ul_" + key[2:]
    assert is_api_key(spelled)
    assert normalize_api_key(spelled) == key
    assert hash_api_key(spelled) == hash_api_key(key)


@pytest.mark.parametrize("value", ["", "ul" + "0" * 39, "UL" + "0" * 40, "ul" + "g" * 40, "x" * 42])
def test_malformed_keys_are_refused(value: str) -> None:
    assert not is_api_key(value)


def test_metrics_strings_from_python_json_dumps_are_parsed_leniently() -> None:
    raw = encode_epoch_metrics({"loss": math.nan, "up": math.inf, "down": -math.inf, "map": 0.5})
    assert parse_epoch_metrics(raw) == {"loss": None, "up": None, "down": None, "map": 0.5}


def test_metrics_values_must_be_numbers() -> None:
    with pytest.raises(ValueError, match="must be a number"):
        parse_epoch_metrics(json.dumps({"loss": "high"}))
    with pytest.raises(ValueError, match="must be a number"):
        parse_epoch_metrics({"flag": True})


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", "1"])
def test_malformed_metrics_strings_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="JSON"):
        parse_epoch_metrics(raw)


@pytest.mark.parametrize("key", ["-1", "1.5", "one", "", "9" * 20])
def test_epoch_keys_must_be_small_whole_numbers(key: str) -> None:
    with pytest.raises(ValueError, match="whole number"):
        parse_epoch(key)
