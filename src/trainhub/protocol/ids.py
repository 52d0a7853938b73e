"""Formats of ids and API keys: their shape, their two spellings, and how to make them.

See docs/protocol/hub-v1.md §3.1 and §16.8, and docs/protocol/platform.md §8.
"""

import hashlib
import re
import secrets
import string

ID_LENGTH = 20
ID_ALPHABET = string.ascii_letters + string.digits
ID_PATTERN = r"^[A-Za-z0-9]{20}$"
_ID_RE = re.compile(ID_PATTERN)

API_KEY_LENGTH = 42
# Minted as "ul" + 40 lower-case hex: 42 characters and no "_" (docs/protocol/hub-v1.md §16.8).
_KEY_RE = re.compile(r"^ul_?[0-9a-f]{40}$")


def create_id() -> str:
    """Return a new random 20-character alphanumeric id."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def is_id(value: str) -> bool:
    """Tell whether `value` has the shape of a model, dataset, project, user or agent id."""
    return bool(_ID_RE.match(value))


def create_api_key() -> str:
    """Return a new API key: "ul" followed by 40 lower-case hex digits."""
    return "ul" + secrets.token_hex(20)


def is_api_key(value: str) -> bool:
    """Tell whether `value` is spelled like an API key ("ul" or "ul_", then 40 hex digits)."""
    return bool(_KEY_RE.match(value))


def normalize_api_key(value: str) -> str:
    """Return the canonical spelling of a key: "ul_<hex>" and "ul<hex>" are the same key."""
    return "ul" + value[3:] if value.startswith("ul_") else value


def hub_spelling(value: str) -> str:
    """Return a key as HUB clients take it (hub-sdk, ultralytics 8.3, trainhub): "ul" + 40 hex."""
    return normalize_api_key(value)


def platform_spelling(value: str) -> str:
    """Return a key as ultralytics 8.4 keeps it (`yolo login`, ULTRALYTICS_API_KEY): "ul_" + hex."""
    return "ul_" + normalize_api_key(value)[2:]


def hash_api_key(value: str) -> str:
    """Return the sha256 hex digest under which a key is stored (keys are never stored in clear)."""
    return hashlib.sha256(normalize_api_key(value).encode()).hexdigest()


def key_prefix(value: str) -> str:
    """Return the first characters of a key, enough to recognise it in a list."""
    return normalize_api_key(value)[:8]
