"""Model identifiers a training session accepts (docs/protocol/hub-v1.md §3.2-§3.3).

`<hub>/models/<id>`, `<hub>/models/<id>?api_key=<key>`, the legacy `<42-char key>_<20-char id>`
and a bare 20-character id name a model on a hub; a local `*.pt` or `*.yaml` names a file to
train from (a new model is then created). Anything else is refused with the accepted forms.
"""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from trainhub.protocol.ids import API_KEY_LENGTH, ID_LENGTH, is_id

ACCEPTED_FORMS = (
    "<hub url>/models/<model id>, <hub url>/models/<model id>?api_key=<key>, "
    "<api key>_<model id>, a bare 20-character <model id>, or a local .pt or .yaml file"
)


@dataclass(frozen=True)
class Identifier:
    """What an identifier names: a hub and model (with perhaps a key), or a local file."""

    server: str | None = None
    model_id: str | None = None
    api_key: str | None = None
    filename: str | None = None


def _from_url(identifier: str) -> Identifier:
    parts = urlsplit(identifier)
    prefix, found, rest = parts.path.partition("/models/")
    model_id = rest.strip("/").split("/")[0].split(".")[0] if found else ""
    if not is_id(model_id):
        raise ValueError(f"model={identifier!r}: the URL names no model id; use {ACCEPTED_FORMS}")
    keys = parse_qs(parts.query).get("api_key")
    server = f"{parts.scheme}://{parts.netloc}{prefix}".rstrip("/")
    return Identifier(server=server, model_id=model_id, api_key=keys[0] if keys else None)


def parse_identifier(identifier: str) -> Identifier:
    """Return what `identifier` names, or raise ValueError listing the accepted forms."""
    if not isinstance(identifier, str) or not identifier.strip():
        raise ValueError(f"model={identifier!r} is empty; use {ACCEPTED_FORMS}")
    identifier = identifier.strip()
    if identifier.endswith((".pt", ".yaml")):
        return Identifier(filename=identifier)
    if identifier.startswith(("http://", "https://")):
        return _from_url(identifier)
    key, separator, model_id = identifier.rpartition("_")
    if separator and len(key) == API_KEY_LENGTH and len(model_id) == ID_LENGTH and is_id(model_id):
        return Identifier(model_id=model_id, api_key=key)
    if is_id(identifier) and not Path(identifier).exists():
        return Identifier(model_id=identifier)
    raise ValueError(f"model={identifier!r} could not be parsed; use {ACCEPTED_FORMS}")
