"""Find the hub URL and API key, and keep the file that `trainhub login` writes.

Each value is taken from the first place that has it: the arguments, `TRAINHUB_URL` /
`TRAINHUB_API_KEY`, the HUB variables `ULTRALYTICS_HUB_API` / `HUB_API_KEY`, then the
credentials file (`$TRAINHUB_CONFIG_DIR/credentials.json`, default
`~/.config/trainhub/credentials.json`, mode 0600). The client has no settings object.
"""

import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from trainhub.client.errors import ConfigError

logger = logging.getLogger(__name__)

CONFIG_DIR_ENV = "TRAINHUB_CONFIG_DIR"
CREDENTIALS_FILE_NAME = "credentials.json"
URL_ENVS = ("TRAINHUB_URL", "ULTRALYTICS_HUB_API")
KEY_ENVS = ("TRAINHUB_API_KEY", "HUB_API_KEY")
LOGIN_HINT = "run `trainhub login KEY --server URL`"


@dataclass(frozen=True)
class Credentials:
    """Where the hub is and the key to send it; the key is left out of repr()."""

    url: str
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class _Saved:
    url: str | None
    api_key: str | None
    note: str


def config_dir() -> Path:
    """Return the folder of the credentials file: $TRAINHUB_CONFIG_DIR or ~/.config/trainhub."""
    configured = os.environ.get(CONFIG_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".config" / "trainhub"


def credentials_path() -> Path:
    """Return the path of the file `trainhub login` writes."""
    return config_dir() / CREDENTIALS_FILE_NAME


def normalize_url(url: str, source: str = "the url argument") -> str:
    """Return `url` without surrounding blanks and trailing slashes; ConfigError unless http(s)."""
    cleaned = url.strip().rstrip("/")
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{source} is {url!r}, which is not an http(s) URL; "
            "use the hub's address such as http://hub.example.com:8000"
        )
    return cleaned


def resolve(url: str | None = None, api_key: str | None = None) -> Credentials:
    """Return the hub URL and API key from the first place that has each (see the module doc).

    The key in the credentials file is used only for the server it was saved for, so a key is
    never sent to a different hub. Raise ConfigError listing every place searched.
    """
    found_url, url_source = _first_of(url, "the url argument", URL_ENVS)
    found_key, key_source = _first_of(api_key, "the api_key argument", KEY_ENVS)
    saved = _read_saved() if found_url is None or found_key is None else None
    if found_url is None and saved is not None and saved.url:
        found_url, url_source = saved.url, str(credentials_path())
    if found_url is None:
        raise ConfigError(_nothing_found("hub URL", "url", URL_ENVS, saved))
    found_url = normalize_url(found_url, url_source)
    if found_key is None and saved is not None and saved.api_key:
        if saved.url and normalize_url(saved.url, str(credentials_path())) == found_url:
            found_key = saved.api_key
        else:
            saved = _Saved(saved.url, None, f"holds a key for {saved.url}, not {found_url}")
    if found_key is None:
        raise ConfigError(_nothing_found("API key", "api_key", KEY_ENVS, saved))
    logger.debug("hub %s (url from %s, key from %s)", found_url, url_source, key_source)
    return Credentials(found_url, found_key)


def _first_of(argument: str | None, name: str, envs: tuple[str, ...]) -> tuple[str | None, str]:
    if argument is not None and argument.strip():
        return argument.strip(), name
    for env in envs:
        value = os.environ.get(env, "").strip()
        if value:
            return value, f"${env}"
    return None, "the credentials file"


def _nothing_found(what: str, argument: str, envs: tuple[str, ...], saved: _Saved | None) -> str:
    note = saved.note if saved is not None else "was not read"
    places = [f"the {argument} argument", *(f"${env}" for env in envs)]
    places.append(f"{credentials_path()} ({note})")
    return (
        f"no {what} found; looked in {', '.join(places)}. To fix it, {LOGIN_HINT} or set ${envs[0]}"
    )


def _read_saved() -> _Saved:
    path = credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _Saved(None, None, "does not exist")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; delete it and {LOGIN_HINT} again") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; delete it and {LOGIN_HINT} again")
    url, key = data.get("url"), data.get("api_key")
    url = url.strip() if isinstance(url, str) and url.strip() else None
    key = key.strip() if isinstance(key, str) and key.strip() else None
    return _Saved(url, key, "found" if url and key else "has no url or api_key")


def save(url: str, api_key: str) -> Path:
    """Write the credentials file (mode 0600, replaced atomically) and return its path."""
    cleaned_url = normalize_url(url)
    if not api_key.strip():
        raise ValueError("api_key is empty; pass the key the hub showed when it was created")
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = json.dumps({"url": cleaned_url, "api_key": api_key.strip()}, indent=2) + "\n"
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    logger.info("saved credentials for %s to %s", cleaned_url, path)
    return path


def forget() -> bool:
    """Delete the credentials file; return whether there was one."""
    path = credentials_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    logger.info("removed %s", path)
    return True
