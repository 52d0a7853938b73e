"""The one JSON error shape every trainhub endpoint answers with."""

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """A failed request: `message` says what went wrong and what to do about it."""

    success: bool = False
    message: str
