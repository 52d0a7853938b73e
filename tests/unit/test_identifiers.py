"""Every identifier form a training session accepts, and the refusal of everything else."""

import pytest

from trainhub.protocol.identifiers import Identifier, parse_identifier

MODEL = "Ab3dEf6hIj9lMn2pQr5t"
KEY = "ul" + "0123456789abcdef" * 2 + "01234567"


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        (f"http://hub:8000/models/{MODEL}", Identifier(server="http://hub:8000", model_id=MODEL)),
        (f"http://hub:8000/models/{MODEL}/", Identifier(server="http://hub:8000", model_id=MODEL)),
        (
            f"https://hub.example.com/api/models/{MODEL}?api_key={KEY}",
            Identifier(server="https://hub.example.com/api", model_id=MODEL, api_key=KEY),
        ),
        (
            f"http://127.0.0.1:8000/models/{MODEL}/metrics",
            Identifier(server="http://127.0.0.1:8000", model_id=MODEL),
        ),
        (f"{KEY}_{MODEL}", Identifier(model_id=MODEL, api_key=KEY)),
        (MODEL, Identifier(model_id=MODEL)),
        ("yolo11n.yaml", Identifier(filename="yolo11n.yaml")),
        ("/abs/path/best.pt", Identifier(filename="/abs/path/best.pt")),
    ],
)
def test_accepted_forms(identifier: str, expected: Identifier) -> None:
    assert parse_identifier(identifier) == expected


@pytest.mark.parametrize(
    "identifier",
    [
        "",
        "   ",
        "model.yml",
        "resnet",
        "http://hub:8000/models/",
        "http://hub:8000/datasets/" + MODEL,
        "http://hub:8000/models/short",
        f"{KEY}x_{MODEL}",
        MODEL + "x",
        "ftp://hub/models/" + MODEL,
    ],
)
def test_anything_else_is_refused_with_the_accepted_forms(identifier: str) -> None:
    with pytest.raises(ValueError, match=r"\.pt or \.yaml file"):
        parse_identifier(identifier)
