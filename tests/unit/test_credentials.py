"""credentials.resolve(): arguments, TRAINHUB_*, the HUB variables, then the login file."""

import json
import stat
from pathlib import Path

import pytest

from trainhub.client import credentials
from trainhub.client.credentials import Credentials, forget, resolve, save
from trainhub.client.errors import ConfigError

KEY_A, KEY_B, KEY_C, KEY_D = ("ul" + c * 40 for c in "abcd")


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private config folder, and none of the variables resolve() reads."""
    folder = tmp_path / "config"
    monkeypatch.setenv("TRAINHUB_CONFIG_DIR", str(folder))
    for name in ("TRAINHUB_URL", "TRAINHUB_API_KEY", "ULTRALYTICS_HUB_API", "HUB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return folder


def test_arguments_win_over_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    save("http://file:8000", KEY_D)
    monkeypatch.setenv("TRAINHUB_URL", "http://env:8000")
    monkeypatch.setenv("TRAINHUB_API_KEY", KEY_B)
    assert resolve("http://arg:8000/", KEY_A) == Credentials("http://arg:8000", KEY_A)


def test_trainhub_variables_win_over_the_hub_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINHUB_URL", "http://ours:8000")
    monkeypatch.setenv("TRAINHUB_API_KEY", KEY_A)
    monkeypatch.setenv("ULTRALYTICS_HUB_API", "http://theirs:8000")
    monkeypatch.setenv("HUB_API_KEY", KEY_B)
    assert resolve() == Credentials("http://ours:8000", KEY_A)


def test_hub_variables_are_used_with_their_trailing_slash_stripped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ULTRALYTICS_HUB_API", "http://hub.local:8080/api/")
    monkeypatch.setenv("HUB_API_KEY", f" {KEY_C}\n")
    assert resolve() == Credentials("http://hub.local:8080/api", KEY_C)


def test_each_value_comes_from_the_first_place_that_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINHUB_URL", "")  # empty counts as unset
    monkeypatch.setenv("ULTRALYTICS_HUB_API", "http://hub:8000")
    monkeypatch.setenv("TRAINHUB_API_KEY", KEY_A)
    assert resolve() == Credentials("http://hub:8000", KEY_A)
    assert resolve(api_key=KEY_B) == Credentials("http://hub:8000", KEY_B)


def test_the_login_file_is_used_last() -> None:
    save("http://hub:8000/", KEY_D)
    assert resolve() == Credentials("http://hub:8000", KEY_D)
    assert resolve(url="http://hub:8000") == Credentials("http://hub:8000", KEY_D)


def test_a_saved_key_is_never_sent_to_another_hub() -> None:
    save("http://hub-a:8000", KEY_D)
    with pytest.raises(ConfigError) as caught:
        resolve(url="http://hub-b:8000")
    assert "holds a key for http://hub-a:8000, not http://hub-b:8000" in str(caught.value)


def test_save_writes_a_private_file_atomically(config_dir: Path) -> None:
    path = save("http://hub:8000", KEY_A)
    assert path == config_dir / "credentials.json"
    assert json.loads(path.read_text()) == {"url": "http://hub:8000", "api_key": KEY_A}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    save("http://hub:9000", KEY_B)
    assert json.loads(path.read_text())["api_key"] == KEY_B
    assert [p.name for p in config_dir.iterdir()] == ["credentials.json"]


def test_save_refuses_a_bad_url_or_an_empty_key() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        save("hub:8000", KEY_A)
    with pytest.raises(ValueError, match="empty"):
        save("http://hub:8000", "  ")


def test_forget_removes_the_file() -> None:
    save("http://hub:8000", KEY_A)
    assert forget() is True
    assert forget() is False
    with pytest.raises(ConfigError):
        resolve()


def test_nothing_found_lists_every_place_searched(config_dir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve()
    message = str(caught.value)
    for place in ("url argument", "$TRAINHUB_URL", "$ULTRALYTICS_HUB_API", "does not exist"):
        assert place in message
    assert str(config_dir / "credentials.json") in message
    assert "trainhub login" in message


def test_a_missing_key_lists_the_key_places(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINHUB_URL", "http://hub:8000")
    with pytest.raises(ConfigError) as caught:
        resolve()
    message = str(caught.value)
    assert "no API key found" in message
    for place in ("api_key argument", "$TRAINHUB_API_KEY", "$HUB_API_KEY", "credentials.json"):
        assert place in message


def test_a_bad_url_names_where_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINHUB_URL", "hub.example.com")
    with pytest.raises(ConfigError, match=r"\$TRAINHUB_URL is 'hub.example.com'"):
        resolve(api_key=KEY_A)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"url": 3}'])
def test_a_damaged_login_file_says_how_to_repair_it(config_dir: Path, content: str) -> None:
    config_dir.mkdir()
    (config_dir / "credentials.json").write_text(content)
    with pytest.raises(ConfigError, match="trainhub login"):
        resolve()


def test_the_default_config_dir_is_under_the_home_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TRAINHUB_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert credentials.credentials_path() == tmp_path / ".config" / "trainhub" / "credentials.json"


def test_the_key_is_not_shown_in_repr() -> None:
    assert KEY_A not in repr(Credentials("http://hub:8000", KEY_A))
