"""HubClient: one method per hub endpoint the client needs, protocol models in and out.

How a request reaches the hub (API key, timeout, User-Agent, retries with backoff, httpx and
pydantic errors turned into those of client/errors.py) lives in client/transport.py. Weights and
dataset archives are streamed from disk and downloads streamed to disk, so memory stays flat
whatever the file size. What to send when (the outbox, the upload thread, heartbeat timing) lives
elsewhere; this module only speaks HTTP.
"""

import base64
import random
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from trainhub.client.transfer import (
    MultipartFile,
    Progress,
    redacted,
    stream_file,
    write_verified,
)
from trainhub.client.transport import (
    MAX_RETRY_AFTER_S,
    NEVER_SENT,
    NOT_ACTED_ON,
    USER_AGENT,
    Transport,
)
from trainhub.protocol import paths
from trainhub.protocol.documents import DatasetDocument, Meta
from trainhub.protocol.envelope import CreatedRecord, Envelope, Page
from trainhub.protocol.metrics import (
    MetricSeries,
    MetricsUpload,
    StoredEpochs,
    encode_epoch_metrics,
)
from trainhub.protocol.models import AgentRecord, Heartbeat, HeartbeatState
from trainhub.protocol.records import DatasetRecord, ModelRecord
from trainhub.protocol.users import Identity
from trainhub.protocol.weights import StoredWeights, WeightKind, WeightUpload

__all__ = [
    "ARCHIVE_CHECK_TIMEOUT_S",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT_S",
    "MAX_RETRY_AFTER_S",
    "NEVER_SENT",
    "NOT_ACTED_ON",
    "TUS",
    "USER_AGENT",
    "EpochValues",
    "HeartbeatState",
    "HubClient",
    "Identity",
    "StoredWeights",
]


T = TypeVar("T")
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 4
# The hub inspects a whole dataset archive before it answers its upload.
ARCHIVE_CHECK_TIMEOUT_S = 600.0

TUS = {"Tus-Resumable": "1.0.0"}
EpochValues = Mapping[str, float | int | None]


class HubClient:
    """Talk to one hub as one API key holder; synchronous, safe to share with one worker thread.

    `http` is an httpx.Client to send through (tests pass fastapi's TestClient); when omitted the
    client makes its own and `close()` closes it. Failed requests are tried `retries` more times;
    `clock`, `sleep` and `rng` are injectable so tests never wait.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        http: httpx.Client | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"url {url!r} must start with http:// or https://")
        if retries < 0 or timeout_s <= 0:
            raise ValueError("retries must be 0 or more and timeout_s more than 0")
        self.url = url.strip().rstrip("/")
        self._owns_http = http is None
        self._transport = Transport(
            self.url,
            api_key,
            http if http is not None else httpx.Client(),
            timeout_s=timeout_s,
            retries=retries,
            clock=clock,
            sleep=sleep,
            rng=rng or random.Random(),
        )

    def with_retries(
        self, retries: int, timeout_s: float | None = None, *, retry_log_level: int | None = None
    ) -> "HubClient":
        """Return a client that shares this one's connections but retries `retries` times.

        `retry_log_level` (default: this client's, WARNING) is the level of the line logged
        before each retry; a caller that reports the outcome itself lowers it.
        """
        transport = self._transport
        client = HubClient(
            self.url,
            transport.api_key,
            http=transport.http,
            timeout_s=transport.timeout_s if timeout_s is None else timeout_s,
            retries=retries,
            clock=transport.clock,
            sleep=transport.sleep,
            rng=transport.rng,
        )
        level = transport.retry_log_level if retry_log_level is None else retry_log_level
        client._transport.retry_log_level = level
        return client

    def close(self) -> None:
        """Close the HTTP connection pool if this client created it."""
        if self._owns_http:
            self._transport.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- endpoints ---------------------------------------------------------------------------

    def authenticate(self) -> Identity:
        """Check the API key; return whose it is (NotAuthenticated when the hub refuses it)."""
        return self._transport.call("POST", paths.AUTH, Envelope[Identity])

    def get_model(self, model_id: str) -> ModelRecord:
        """Return a model record."""
        return self._transport.call(
            "GET", _model_path(paths.MODEL, model_id), Envelope[ModelRecord]
        )

    def create_model(self, payload: Mapping[str, object]) -> str:
        """Create a model from a model document; return its new id.

        The document's shapes are in docs/protocol/hub-v1.md §5.4.
        """
        created = self._transport.call(
            "POST", paths.MODELS, Envelope[CreatedRecord], body=payload, idempotent=False
        )
        return created.id

    def update_model(self, model_id: str, patch: Mapping[str, object]) -> ModelRecord:
        """Merge `patch` into a model's document (objects merge, None removes); return it."""
        path = _model_path(paths.MODEL, model_id)
        return self._transport.call("PATCH", path, Envelope[ModelRecord], body=patch)

    def list_models(
        self, *, limit: int = 10, last_doc_id: str | None = None, public: bool | None = None
    ) -> Page[ModelRecord]:
        """Return one page of models, newest first (yours, or everyone's public ones)."""
        params = _page_params(limit, last_doc_id, public)
        return self._transport.call("GET", paths.MODELS, Envelope[Page[ModelRecord]], params=params)

    def iter_models(
        self, *, public: bool | None = None, page_size: int = 100
    ) -> Iterator[ModelRecord]:
        """Yield every model of every page, newest first, fetching pages as they are needed."""
        yield from _walk_pages(
            lambda cursor: self.list_models(limit=page_size, last_doc_id=cursor, public=public)
        )

    def upload_metrics(self, model_id: str, metrics: Mapping[int, EpochValues]) -> list[int]:
        """Store metrics per epoch (a re-sent epoch merges); return the epochs the hub stored.

        Each epoch is encoded as the stock clients do: a JSON string, NaN and Infinity allowed.
        """
        if not metrics:
            raise ValueError("metrics is empty; pass {epoch: {name: value}} for at least one epoch")
        upload = MetricsUpload(
            metrics={str(epoch): encode_epoch_metrics(dict(v)) for epoch, v in metrics.items()}
        )
        path = _model_path(paths.MODEL, model_id)
        stored = self._transport.call(
            "POST", path, Envelope[StoredEpochs], body=upload.model_dump()
        )
        return stored.epochs

    def get_metrics(self, model_id: str) -> list[MetricSeries]:
        """Return one series per metric name, keyed by epoch (non-finite values are None)."""
        path = _model_path(paths.MODEL_METRICS, model_id)
        return self._transport.call("GET", path, Envelope[list[MetricSeries]])

    def heartbeat(
        self,
        model_id: str,
        *,
        agent: str,
        agent_id: str | None = None,
        interval_s: float = 30.0,
        state: HeartbeatState = "running",
    ) -> str:
        """Tell the hub this trainer is alive (or finished/failed); return the agent id to reuse.

        `interval_s` is when the next beat is due, so the hub can judge when the trainer is gone.
        """
        beat = Heartbeat(agent=agent, agentId=agent_id, interval=interval_s, state=state)
        path = _model_path(paths.HEARTBEAT, model_id)
        answer = self._transport.call("POST", path, Envelope[AgentRecord], body=beat.model_dump())
        return answer.agentId

    def upload_weights(
        self,
        model_id: str,
        path: Path | str,
        *,
        epoch: int,
        final: bool = False,
        is_best: bool = False,
        map: float = 0.0,
        sha256: str | None = None,
        progress: Progress | None = None,
    ) -> StoredWeights:
        """Upload a checkpoint (`last.pt`) or, with final=True, the final weights (`best.pt`).

        The file is streamed from disk, never read whole; `sha256` (computed here when omitted)
        goes along and the hub refuses the upload when the bytes do not match it.
        `progress(n)` is called as each chunk of n file bytes has been handed to the network; a
        retry sends the file again and reports its bytes again. OSError when the file is missing
        or shrinks while it is sent; ValueError when it is empty or `sha256` is malformed.
        """
        upload = _weight_upload(epoch, final, is_best, map)
        file = MultipartFile.create(path, upload.fields(), upload.kind.filename, sha256, progress)
        route, transport = _model_path(paths.MODEL_UPLOAD, model_id), self._transport
        return transport.post_file(route, file, Envelope[StoredWeights], transport.timeout).data

    # --- datasets ------------------------------------------------------------------------------

    def create_dataset(self, name: str, filename: str, *, public: bool = False) -> str:
        """Create an empty dataset for the archive `filename` (coco8.zip); return its new id."""
        document = DatasetDocument(meta=Meta(name=name), filename=filename, public=public)
        created = self._transport.call(
            "POST",
            paths.DATASETS,
            Envelope[CreatedRecord],
            body=document.written(),
            idempotent=False,
        )
        return created.id

    def upload_dataset(
        self,
        dataset_id: str,
        path: Path | str,
        *,
        sha256: str | None = None,
        progress: Progress | None = None,
    ) -> Envelope[DatasetRecord]:
        """Upload a dataset archive (.zip, .tar, .tar.gz, .tgz); it replaces any earlier one.

        Streamed from disk as in `upload_weights`, with the same `sha256` and `progress`. The
        hub inspects the whole archive before it answers, so the read timeout is at least
        ARCHIVE_CHECK_TIMEOUT_S. Return the whole answer: `data` is the dataset (its `sha256`
        the hub's own), `message` what the hub says of the archive (its layout, or a warning).
        A refused archive raises ApiError (422) with the hub's reason.
        """
        source, transport = Path(path), self._transport
        file = MultipartFile.create(source, {}, source.name, sha256, progress)
        timeout = httpx.Timeout(
            transport.timeout_s, read=max(transport.timeout_s, ARCHIVE_CHECK_TIMEOUT_S)
        )
        route = _dataset_path(paths.DATASET_UPLOAD, dataset_id)
        return transport.post_file(route, file, Envelope[DatasetRecord], timeout)

    def delete_dataset(self, dataset_id: str, *, hard: bool = True) -> None:
        """Delete a dataset: for good with its archive, or with hard=False only hide it."""
        path = _dataset_path(paths.DATASET, dataset_id)
        params = {"hard": str(hard).lower()}
        self._transport.delete(path, params)

    def list_datasets(
        self, *, limit: int = 10, last_doc_id: str | None = None, public: bool = False
    ) -> Page[DatasetRecord]:
        """Return one page of datasets, newest first (yours, or everyone's public ones)."""
        params = _page_params(limit, last_doc_id, public)
        return self._transport.call(
            "GET", paths.DATASETS, Envelope[Page[DatasetRecord]], params=params
        )

    def iter_datasets(
        self, *, public: bool = False, page_size: int = 100
    ) -> Iterator[DatasetRecord]:
        """Yield every dataset of every page, newest first, fetching pages as they are needed."""
        yield from _walk_pages(
            lambda cursor: self.list_datasets(limit=page_size, last_doc_id=cursor, public=public)
        )

    # --- resumable uploads (tus 1.0, see server/api/uploads.py) --------------------------------

    def create_upload(
        self,
        model_id: str,
        *,
        size_bytes: int,
        sha256: str,
        epoch: int,
        final: bool = False,
        is_best: bool = False,
        map: float = 0.0,
    ) -> str:
        """Start a resumable weights upload of `size_bytes`; return its URL (to PATCH and HEAD)."""
        transport = self._transport
        upload = _weight_upload(epoch, final, is_best, map)
        fields = {"modelId": model_id, **upload.fields(), "sha256": sha256}
        metadata = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items()
        )
        headers = {
            **transport.headers(),
            **TUS,
            "Upload-Length": str(size_bytes),
            "Upload-Metadata": metadata,
        }
        url = self.url + paths.UPLOADS

        def attempt() -> httpx.Response:
            return transport.http.post(url, headers=headers, timeout=transport.timeout)

        response = transport.send(f"POST {url}", attempt, idempotent=False)
        return response.headers["location"]

    def upload_offset(self, upload_url: str) -> int:
        """Return how many bytes of a resumable upload the hub has kept."""
        transport = self._transport

        def attempt() -> httpx.Response:
            return transport.http.head(
                upload_url, headers={**transport.headers(), **TUS}, timeout=transport.timeout
            )

        response = transport.send(f"HEAD {upload_url}", attempt)
        return int(response.headers["upload-offset"])

    def append_upload(
        self, upload_url: str, path: Path | str, offset: int, *, progress: Progress | None = None
    ) -> int:
        """Send a file's bytes from `offset` to its end in one PATCH; return the new offset.

        Not retried here: after a failure, ask `upload_offset` where the hub stopped and resume.
        """
        transport = self._transport
        headers = {
            **transport.headers(),
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(Path(path).stat().st_size - offset),
        }

        def attempt() -> httpx.Response:
            body = stream_file(Path(path), offset, progress)
            try:
                request = transport.http.build_request(
                    "PATCH", upload_url, content=body, headers=headers, timeout=transport.timeout
                )
                return transport.http.send(request)
            finally:
                body.close()

        response = transport.send(f"PATCH {upload_url}", attempt, idempotent=False)
        return int(response.headers["upload-offset"])

    def download(self, url: str, dest_path: Path | str) -> str:
        """Download `url` (a signed file link, sent without the API key) to `dest_path`.

        The body goes to a temporary file next to `dest_path`, which is renamed into place only
        when complete and, if the answer's ETag is a sha256, only when it matches. Return the
        sha256 of the file. Non-2xx raises the matching ApiError; `dest_path` is then untouched.
        """
        transport = self._transport
        target = url if urlsplit(url).scheme else self.url + "/" + url.lstrip("/")
        if urlsplit(target).scheme not in ("http", "https"):
            raise ValueError(f"cannot download {url!r}: only http(s) URLs are supported")
        dest = Path(dest_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest: list[str] = []

        def attempt() -> httpx.Response:
            request = transport.http.build_request(
                "GET", target, headers={"User-Agent": USER_AGENT}, timeout=transport.timeout
            )
            for secret in ("x-api-key", "authorization"):  # the link is its own credential
                request.headers.pop(secret, None)
            response = transport.http.send(request, stream=True, follow_redirects=True)
            try:
                if response.is_success:
                    digest.append(write_verified(response, dest, target))
                else:
                    response.read()
            finally:
                response.close()
            return response

        transport.send(f"GET {redacted(target)}", attempt)
        return digest[-1]


def _model_path(template: str, model_id: str) -> str:
    return template.format(model_id=quote(model_id, safe=""))


def _dataset_path(template: str, dataset_id: str) -> str:
    return template.format(dataset_id=quote(dataset_id, safe=""))


def _page_params(limit: int, last_doc_id: str | None, public: bool | None) -> dict[str, str | int]:
    """Return the query of one page of a cursor list (docs/protocol/hub-v1.md §5.7)."""
    params: dict[str, str | int] = {"limit": limit}
    if last_doc_id is not None:
        params["last_doc_id"] = last_doc_id
    if public is not None:
        params["public"] = str(public)  # "True"/"False", as the stock clients send it
    return params


def _walk_pages(list_page: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Yield every result of a cursor list; `list_page(cursor)` fetches the page after `cursor`."""
    cursor: str | None = None
    while True:
        page = list_page(cursor)
        yield from page.results
        if not page.results or not page.lastRecordId or page.lastRecordId == cursor:
            return
        cursor = page.lastRecordId


def _weight_upload(epoch: int, final: bool, is_best: bool, map_value: float) -> WeightUpload:
    """Return what a weights upload says about its file (the stock clients' spelling)."""
    if epoch < 0:
        raise ValueError(f"epoch must be 0 or more, got {epoch}")
    kind = WeightKind.FINAL if final else WeightKind.CHECKPOINT
    return WeightUpload(kind, int(epoch), bool(is_best), float(map_value) if final else None)
