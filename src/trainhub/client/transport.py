"""Transport: how one API key holder's requests reach one hub, whatever the endpoint.

Every request carries the API key, a timeout and a `trainhub/<version>` User-Agent, and is retried
with backoff and jitter when that is safe (client/retry.py decides). httpx and pydantic errors do
not escape: they become the exceptions of client/errors.py. Which endpoints exist and what they
take lives in client/api.py.
"""

import logging
import random
from collections.abc import Callable, Mapping
from typing import TypeVar

import httpx
from pydantic import ValidationError

from trainhub._version import __version__
from trainhub.client.errors import ApiError, HubUnreachable, create_api_error
from trainhub.client.retry import (
    backoff_delay_s,
    failure_message,
    is_retryable_status,
    retry_after_s,
)
from trainhub.client.transfer import MultipartFile
from trainhub.protocol.envelope import DeletedRecord, Envelope

logger = logging.getLogger(__name__)

T = TypeVar("T")
USER_AGENT = f"trainhub/{__version__}"
MAX_RETRY_AFTER_S = 600.0
# A request that failed this way never reached the server, so even a create may be re-sent.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Statuses that mean the server did not act on the request, so even a create may be re-sent.
NOT_ACTED_ON = frozenset({408, 429, 503})


class Transport:
    """Send requests to the hub at `url` with `api_key`: headers, timeouts, retries, errors.

    `clock`, `sleep` and `rng` are injectable so tests never wait.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        http: httpx.Client,
        *,
        timeout_s: float,
        retries: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random,
        retry_log_level: int = logging.WARNING,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.http = http
        self.timeout = httpx.Timeout(timeout_s)
        self.timeout_s = timeout_s
        self.retries = retries
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.retry_log_level = retry_log_level  # callers that report the outcome lower it

    def headers(self) -> dict[str, str]:
        """Return the headers every request to the hub carries (API key included)."""
        return {"x-api-key": self.api_key, "User-Agent": USER_AGENT, "Accept": "application/json"}

    def call(
        self,
        method: str,
        path: str,
        shape: type[Envelope[T]],
        *,
        body: Mapping[str, object] | None = None,
        params: Mapping[str, str | int] | None = None,
        idempotent: bool = True,
    ) -> T:
        """Send one JSON request with retries and return the `data` of its answer."""
        response = self._send_json(method, path, body=body, params=params, idempotent=idempotent)
        return _envelope(response, shape, self.url + path).data

    def delete(self, path: str, params: Mapping[str, str]) -> None:
        """DELETE with retries; a 404 after an attempt that may have reached the hub is success.

        When an answer is lost (read timeout, reset, 502 from a proxy) the hub may well have
        deleted the object, and the retry then finds nothing: that is the outcome asked for.
        A 404 to the first attempt, or after attempts that never reached the hub, still raises.
        """
        response = self._send_json("DELETE", path, params=params, gone_is_done=True)
        if response.is_success:
            _envelope(response, Envelope[DeletedRecord], self.url + path)

    def _send_json(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, object] | None = None,
        params: Mapping[str, str | int] | None = None,
        idempotent: bool = True,
        gone_is_done: bool = False,
    ) -> httpx.Response:
        url = self.url + path

        def attempt() -> httpx.Response:
            request = self.http.build_request(
                method,
                url,
                json=body,
                params=params,
                headers=self.headers(),
                timeout=self.timeout,
            )
            return self.http.send(request)

        return self.send(
            f"{method} {url}", attempt, idempotent=idempotent, gone_is_done=gone_is_done
        )

    def post_file(
        self, route: str, file: MultipartFile, shape: type[Envelope[T]], timeout: httpx.Timeout
    ) -> Envelope[T]:
        """POST a multipart body streamed from disk, with retries; return the whole answer.

        Uploads are keyed by their content hash, so a retry re-sends the file without harm.
        """
        url = self.url + route
        headers = {**self.headers(), **file.headers()}

        def attempt() -> httpx.Response:
            body = file.stream()
            try:
                request = self.http.build_request(
                    "POST", url, content=body, headers=headers, timeout=timeout
                )
                return self.http.send(request)
            finally:
                body.close()

        response = self.send(f"POST {url} ({file.size_bytes} bytes)", attempt)
        return _envelope(response, shape, url)

    def send(
        self,
        what: str,
        attempt: Callable[[], httpx.Response],
        *,
        idempotent: bool = True,
        gone_is_done: bool = False,
    ) -> httpx.Response:
        """Run `attempt` until it answers 2xx, retrying what is safe; raise a TrainhubError.

        With `gone_is_done` (deletes), a 404 after an attempt that may have reached the hub is
        returned as the answer: that attempt is what made the object gone.
        """
        started_s, number, reached = self.clock(), 0, False
        while True:
            try:
                response = attempt()
            except httpx.HTTPError as exc:
                if number == self.retries or not _may_resend(exc, idempotent):
                    raise self._unreachable(what, number + 1, started_s, exc) from exc
                reached = reached or not isinstance(exc, NEVER_SENT)
                delay_s, reason = self._backoff_s(number), f"{type(exc).__name__}: {exc}"
            else:
                logger.debug("%s -> %d", what, response.status_code)
                if response.is_success:
                    return response
                if gone_is_done and reached and response.status_code == 404:
                    logger.info("%s: gone after a retry; an earlier attempt deleted it", what)
                    return response
                error, wait_s = _api_error(response)
                if number == self.retries or not _may_retry(response.status_code, idempotent):
                    raise error
                reached = reached or response.status_code not in NOT_ACTED_ON
                delay_s, reason = self._backoff_s(number) if wait_s is None else wait_s, str(error)
            number += 1
            logger.log(
                self.retry_log_level,
                "%s failed (%s); retry %d of %d in %.1f s",
                what,
                reason,
                number,
                self.retries,
                delay_s,
            )
            self.sleep(delay_s)

    def _backoff_s(self, number: int) -> float:
        return backoff_delay_s(number, rng=self.rng)

    def _unreachable(
        self, what: str, attempts: int, started_s: float, exc: httpx.HTTPError
    ) -> HubUnreachable:
        elapsed_s = self.clock() - started_s
        return HubUnreachable(
            f"{what} failed after {attempts} attempt(s) over {elapsed_s:.1f} s: "
            f"{type(exc).__name__}: {exc or 'no detail'}; check that the hub at {self.url} "
            "is running and reachable from this machine"
        )


def _may_resend(exc: httpx.HTTPError, idempotent: bool) -> bool:
    if not isinstance(exc, httpx.TransportError) or isinstance(exc, httpx.UnsupportedProtocol):
        return False
    return idempotent or isinstance(exc, NEVER_SENT)


def _may_retry(status: int, idempotent: bool) -> bool:
    return is_retryable_status(status) and (idempotent or status in NOT_ACTED_ON)


def _api_error(response: httpx.Response) -> tuple[ApiError, float | None]:
    """Return the error a non-2xx answer stands for, and the wait its Retry-After asks for."""
    wait_s = retry_after_s(response.headers)
    if wait_s is not None:
        wait_s = min(wait_s, MAX_RETRY_AFTER_S)
    message = failure_message(response.status_code, response.headers, response.content)
    return create_api_error(response.status_code, message, wait_s), wait_s


def _envelope(response: httpx.Response, shape: type[Envelope[T]], url: str) -> Envelope[T]:
    """Return a 2xx answer; ApiError when the answer is not a trainhub envelope."""
    try:
        return shape.model_validate_json(response.content)
    except ValidationError as exc:
        problem = exc.errors()[0].get("msg", "unexpected shape") if exc.errors() else str(exc)
        raise ApiError(
            response.status_code,
            f"the answer to {url} is not what a trainhub server sends "
            f"({problem}); check that the URL points at the hub's API",
        ) from exc
