"""The server's log output, access log included, with credentials taken out of every line.

uvicorn logs each request line as the client sent it, so signed download tokens
(`/files/<token>/...`), API keys and secrets in query strings (`?api_key=...`) would land in log
files that operators share and keep. `create_log_config` routes uvicorn's and trainhub's loggers
through `RedactingFormatter`, which replaces them with `[redacted]` (docs/security.md §2.17).
With `log_format` "json" every line is one JSON object instead (`JsonFormatter`), redacted the
same way, for log collectors.
"""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from uvicorn.logging import AccessFormatter

REDACTED = "[redacted]"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# uvicorn's access line ("GET /path HTTP/1.1" 200 OK) after the same prefix
ACCESS_FORMAT = (
    '%(asctime)s %(levelname)s %(name)s: %(client_addr)s - "%(request_line)s" %(status_code)s'
)

# /files/<token>/<id>/<label>/<name>: the token is the credential (trainhub.server.signing)
_FILES_TOKEN = re.compile(r"(/files/)[^/\s\"?#]+")
# /api/uploads/<upload id>/<token> and /api/datasets/ndjson/<token>/...: ultralytics 8.4 PUTs
# weights and fetches NDJSON exports there without a key
_UPLOAD_TOKEN = re.compile(r"(/api/(?:uploads/[^/\s\"?#]+|datasets/ndjson)/)[^/\s\"?#]+")
# a token anywhere else: "<expires>.<reader id or ->.<43-character HMAC>"
_TOKEN = re.compile(r"(?<![\w.-])[0-9]{1,12}\.(?:-|[A-Za-z0-9]{20})\.[A-Za-z0-9_-]{43}(?![\w-])")
# an API key: "ul" or "ul_", then 40 hex digits (trainhub.protocol.ids)
_API_KEY = re.compile(r"(?<![0-9A-Za-z])ul_?[0-9a-f]{40}(?![0-9A-Za-z])", re.IGNORECASE)
_QUERY_PARAM = re.compile(r"([?&;])([^=&;\s\"#?]+)=([^&;\s\"#]*)")
_SECRET_NAME = re.compile(r"key|token|secret|passw|auth|sig|session|credential", re.IGNORECASE)


def redact(text: str) -> str:
    """Return `text` with download tokens, API keys and secret query values replaced."""
    text = _FILES_TOKEN.sub(rf"\1{REDACTED}", text)
    text = _UPLOAD_TOKEN.sub(rf"\1{REDACTED}", text)
    text = _QUERY_PARAM.sub(_redact_param, text)
    text = _TOKEN.sub(REDACTED, text)
    return _API_KEY.sub(REDACTED, text)


def _redact_param(match: re.Match[str]) -> str:
    separator, name, value = match.groups()
    if value and _SECRET_NAME.search(unquote(name)):
        value = REDACTED
    return f"{separator}{name}={value}"


class RedactingFormatter(logging.Formatter):
    """A plain formatter whose output, tracebacks included, has credentials redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """Format `record` as usual, then redact the whole text."""
        return redact(super().format(record))


class RedactingAccessFormatter(AccessFormatter):
    """uvicorn's access-line formatter (status code and phrase, no colours), redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """Format `record` as uvicorn does, then redact the whole text."""
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the request's fields for an
    access line, the traceback for an error), every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """Return `record` as a JSON line."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            client, method, path, version, status = (*record.args, None, None, None, None, None)[:5]
            line.update(client=client, method=method, path=path, http=version, status=status)
            line["message"] = f"{method} {path} {status}"
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str))


def create_log_config(log_format: str = "text") -> dict[str, Any]:
    """Return the logging config for uvicorn.run(log_config=...): every line redacted.

    `log_format` is "text" (a line of words) or "json" (one JSON object a line).

    trainhub's own messages (the root logger, at the level `--log-level` set) and uvicorn's
    error log go to stderr, the access log to stdout, as uvicorn does by default. uvicorn sets
    its loggers' level from its `log_level` argument afterwards.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": RedactingFormatter, "fmt": LOG_FORMAT},
            "access": {"()": RedactingAccessFormatter, "fmt": ACCESS_FORMAT, "use_colors": False},
        }
        if log_format == "text"
        else {"default": {"()": JsonFormatter}, "access": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"handlers": ["default"]},  # keeps its level
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
