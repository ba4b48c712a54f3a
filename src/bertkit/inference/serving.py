"""``bertkit serve``: a saved model behind HTTP (``POST /predict``, ``/health``, ``/info``, ``/metrics``,
and the page at ``/``).

The app knows no task by name: inputs become records through the task's ``to_record``, a micro-batch of
records is predicted with ``Predictor.predict_records`` on one worker thread, and each input is answered
with ``result(...).to_dict()``, so every family in ``TASKS`` is served as it is. A bad request is answered
with a 4xx JSON error naming the limit or the field; an unexpected failure with a generic 500, logged
and counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import ipaddress
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from bertkit.errors import BertkitError, InputLimitError
from bertkit.inference.batching import MicroBatcher
from bertkit.inference.predictor import Limits, Predictor, record_chars
from bertkit.inference.prometheus import CONTENT_TYPE, ServerMetrics
from bertkit.training.runtime import set_threads

log = logging.getLogger(__name__)

PATHS = ("/", "/predict", "/explain", "/health", "/info", "/metrics", "/docs", "/openapi.json")


def lone_surrogate(item: Any, depth: int = 0) -> str | None:
    """The first unpaired UTF-16 surrogate in the strings of ``item`` (nested lists and mappings)."""
    if isinstance(item, str):
        return next((c for c in item if "\ud800" <= c <= "\udfff"), None)
    if depth < 8 and isinstance(item, (list, tuple)):
        return next((c for x in item if (c := lone_surrogate(x, depth + 1)) is not None), None)
    if depth < 8 and isinstance(item, dict):
        return next(
            (c for x in (*item, *item.values()) if (c := lone_surrogate(x, depth + 1)) is not None), None
        )
    return None


@dataclass(frozen=True)
class ServeOptions:
    """How much one request may ask for, and how requests are batched (the ``bertkit serve`` flags)."""

    max_batch: int = 32  # inputs per model batch; 1 turns batching off
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others; 0: no batching
    max_request_bytes: int = 1_048_576
    max_texts: int = 64  # inputs per request
    max_chars: int = 20_000  # per input, as Predictor's Limits.max_chars counts them
    engine: str = "torch"
    threads: int = 0  # torch threads of the model's worker (0: as bertkit's runtime chooses)
    # /explain: integrated gradients cost n_steps forward and backward passes per target, so fewer
    # and shorter inputs than /predict, and one explanation at a time
    max_explain_texts: int = 4
    max_explain_chars: int = 2_000
    explain_steps: int = 50
    # bound to a loopback address: answer only requests addressed to it (a Host of localhost, 127.0.0.1
    # or ::1), so that a web page whose name is made to point at 127.0.0.1 (DNS rebinding) gets nothing
    loopback_hosts_only: bool = False


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[Any] = Field(
        description="inputs in the shape the model's task takes (see GET /info): a text, "
        '{"text": ..., "pair": ...}, {"question": ..., "context": ...}, a relation record, ...',
        examples=[["Alice went to Paris."]],
    )


class ExplainRequest(PredictRequest):
    method: str = Field("ig", pattern="^(ig|attention|occlusion)$", description="ig, occlusion or attention")


class PredictResponse(BaseModel):
    results: list[dict[str, Any]] = Field(description="one result per input, in input order")


class ErrorBody(BaseModel):
    error: str
    limit: str | None = Field(None, description="the limit exceeded, when one was")


class RequestError(Exception):
    """A request the server refuses: its HTTP status and the JSON error it is answered with."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message, **self.extra}, status_code=self.status)


class Service:
    """What the routes call: the predictor behind its micro-batcher, the limits and the metrics."""

    def __init__(self, predictor: Predictor, options: ServeOptions):
        self.predictor, self.options = predictor, options
        # the server's character limit is the predictor's own check, so both count characters alike
        predictor.limits = Limits(max_inputs=options.max_texts, max_chars=options.max_chars)
        self.metrics = ServerMetrics(options.max_batch)
        self.explaining = asyncio.Lock()
        # explanations run beside the batcher's worker on one model: captum hooks its embeddings and
        # attention maps switch its attention, so the two never touch the model at the same time
        self.model_lock = threading.Lock()
        self.batcher = MicroBatcher(
            self.run_batch,
            options.max_batch,
            options.max_wait_ms / 1000,
            on_batch=self.metrics.batch,
            init_worker=lambda: set_threads(options.threads),
        )

    def records(self, inputs: Sequence[Any]) -> list[Any]:
        """The records of a request's inputs; 413/422 naming the limit or the input that is wrong."""
        if len(inputs) > self.options.max_texts:
            raise RequestError(
                413,
                f"{len(inputs)} inputs in one request; the limit is {self.options.max_texts} (--max-texts)",
                limit="max_texts",
            )
        records = []
        for i, item in enumerate(inputs):
            if item is None:
                raise RequestError(422, f"input {i} is null")
            if (lone := lone_surrogate(item)) is not None:  # JSON's "\ud800" escapes decode to these
                raise RequestError(
                    422, f"input {i} holds an unpaired surrogate (U+{ord(lone):04X}), not text"
                )
            try:
                record = self.predictor.task.to_record(item)
                self.predictor.check_size(i, record)
            except InputLimitError as err:
                raise RequestError(422, f"{err} (--max-chars)", limit=err.limit) from None
            # to_record reads what the client sent: whatever it refuses is the client's mistake
            except (BertkitError, ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
                raise RequestError(422, f"input {i}: {err}") from None
            records.append(record)
        return records

    def run_batch(self, groups: list[Sequence[Any]]) -> list[list[dict[str, Any]]]:
        """One model call over the records of several requests; each request's results apart."""
        flat = [record for g, group in enumerate(groups) for record in apart(group, g)]
        with self.model_lock:
            predictions = self.predictor.predict_records(flat)
        task, out, begin = self.predictor.task, [], 0
        for group in groups:
            mine = predictions[begin : begin + len(group)]
            out.append([task.result(r, p).to_dict() for r, p in zip(group, mine)])
            begin += len(group)
        return out

    async def predict(self, inputs: Sequence[Any]) -> list[dict[str, Any]]:
        records = self.records(inputs)
        if not records:
            return []
        try:
            return await self.batcher.predict(records)
        except BertkitError as err:  # the task refused the input while encoding it
            raise RequestError(422, str(err)) from None

    async def explain(self, inputs: Sequence[Any], method: str) -> list[dict[str, Any]]:
        """One row per explained target (``bertkit explain``'s JSON lines), one request at a time."""
        limit = self.options.max_explain_texts
        if len(inputs) > limit:
            raise RequestError(
                413, f"{len(inputs)} inputs to explain; the limit is {limit}", limit="max_explain_texts"
            )
        records = self.records(inputs)
        for i, record in enumerate(records):
            if (size := record_chars(record)) > self.options.max_explain_chars:
                raise RequestError(
                    422,
                    f"input {i} has {size} characters; explanations take {self.options.max_explain_chars}",
                    limit="max_explain_chars",
                )
        async with self.explaining:
            try:
                return await asyncio.to_thread(self.explain_records, records, method)
            except BertkitError as err:  # a task that cannot be explained, or a refused input
                raise RequestError(422, str(err)) from None

    def explain_records(self, records: list[Any], method: str) -> list[dict[str, Any]]:
        from bertkit.inference.explain import ExplainOptions, explain_records

        predictor = self.predictor
        options = ExplainOptions(method=method, n_steps=self.options.explain_steps)
        with self.model_lock:
            predictions = predictor.predict_records(records)
            return explain_records(
                predictor.task, predictor.model, records, predictions, options, predictor.runtime.device
            )

    def info(self) -> dict[str, Any]:
        """What the page needs to draw a form and read results: the task, its labels, its inputs."""
        task = self.predictor.task
        return {
            "task": task.name,
            "labels": list(task.labels or []),
            "record": task.record_class.__name__,
            "record_fields": [f.name for f in dataclasses.fields(task.record_class)],
            "inputs": inspect.getdoc(task.to_record) or "",
            "config": jsonable(task.cfg),
            "max_length": task.model_cfg.max_length,
            "engine": self.options.engine,
            "limits": {
                "max_request_bytes": self.options.max_request_bytes,
                "max_texts": self.options.max_texts,
                "max_chars": self.options.max_chars,
            },
            "batching": {"max_batch": self.options.max_batch, "max_wait_ms": self.options.max_wait_ms},
        }


def apart(records: Sequence[Any], group: int) -> list[Any]:
    """The records of one request, kept out of other requests' documents: a task that reads
    neighbouring sentences of a document as context (``doc_id``) must not read another client's."""
    return [
        dataclasses.replace(r, doc_id=group) if dataclasses.is_dataclass(r) and hasattr(r, "doc_id") else r
        for r in records
    ]


def jsonable(value: Any) -> Any:
    data = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return json.loads(json.dumps(data, default=str))


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 415 unless it is plain JSON, and with 413 past ``limit`` bytes: by its
    Content-Length, and by the bytes actually read (a chunked body declares no length). Refusing other
    types keeps web pages from posting to the server: a form or ``text/plain`` post from another site
    needs no CORS preflight, a JSON one does (and gets no CORS headers here)."""
    # no Content-Type is read as JSON, as FastAPI does (scripts omit it; a browser always sends one)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise RequestError(415, f"send the body as JSON with Content-Type: application/json (got {media!r})")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise RequestError(415, f"Content-Encoding {encoding!r} is not supported: send the body uncompressed")
    declared = request.headers.get("content-length")
    too_big = f"the limit is {limit} bytes (--max-request-bytes)"
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {declared} bytes; {too_big}", limit="max_request_bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"request body over {limit} bytes; {too_big}", limit="max_request_bytes")
    return bytes(body)


def parse_inputs(body: bytes) -> list[Any]:
    return parse_request(body, PredictRequest, '{"inputs": [...]}').inputs


def parse_request(body: bytes, shape: type[PredictRequest], example: str) -> Any:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(422, f"the body is not valid JSON: {err}") from None
    try:
        return shape.model_validate(data)
    except ValidationError as err:
        fields = err.errors(include_url=False, include_context=False, include_input=False)
        raise RequestError(422, f"the body must be a JSON object {example}", fields=fields) from None


def page() -> str:
    return (files("bertkit.inference") / "static" / "index.html").read_text(encoding="utf-8")


def create_app(predictor: Predictor, options: ServeOptions = ServeOptions()) -> FastAPI:
    """The app serving ``predictor``; its model worker runs while the app's lifespan does."""
    service = Service(predictor, options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher.start()
        try:
            yield
        finally:
            service.batcher.stop()

    app = FastAPI(
        title=f"bertkit serve: {predictor.task.name}",
        description="Predictions of a fine-tuned bertkit model. The page at / tries it in a browser.",
        lifespan=lifespan,
    )
    app.state.service = service
    add_routes(app, service)
    add_error_handling(app, service)
    return app


def add_routes(app: FastAPI, service: Service) -> None:
    schema = {"content": {"application/json": {"schema": PredictRequest.model_json_schema()}}}
    html = page()

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}, 500: {"model": ErrorBody}},
        openapi_extra={"requestBody": {**schema, "required": True}},
    )
    async def predict(request: Request) -> Response:
        """One result per input, in order; a long text is windowed, never cut."""
        try:
            inputs = parse_inputs(await read_body(request, service.options.max_request_bytes))
            return JSONResponse({"results": await service.predict(inputs)})
        except RequestError as err:
            return err.response()

    @app.post(
        "/explain",
        response_model=PredictResponse,
        responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}, 500: {"model": ErrorBody}},
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": ExplainRequest.model_json_schema()}},
                "required": True,
            }
        },
    )
    async def explain(request: Request) -> Response:
        """Word attributions of the predictions (one result per explained target); bounded tighter than
        /predict (--max-explain-texts, --max-explain-chars)."""
        try:
            body = await read_body(request, service.options.max_request_bytes)
            asked = parse_request(body, ExplainRequest, '{"inputs": [...], "method": "ig"}')
            return JSONResponse({"results": await service.explain(asked.inputs, asked.method)})
        except RequestError as err:
            return err.response()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "task": service.predictor.task.name}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return service.info()

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(html)


def add_error_handling(app: FastAPI, service: Service) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.middleware("http")
    async def count_and_contain(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        try:
            if service.options.loopback_hosts_only and not is_loopback(
                host_name(request.headers.get("host", ""))
            ):
                shown = request.headers.get("host", "")
                message = f"this server answers requests to localhost only, not to Host {shown!r}"
                response: Response = JSONResponse({"error": message}, status_code=421)
            else:
                response = await call_next(request)
        except Exception:
            log.exception("unexpected error answering %s %s", request.method, request.url.path)
            service.metrics.server_error()
            response = JSONResponse({"error": "internal server error"}, status_code=500)
        path = request.url.path if request.url.path in PATHS else "other"
        seconds = time.perf_counter() - start if path == "/predict" else None
        service.metrics.request(path, response.status_code, seconds)
        return response


def host_name(header: str) -> str:
    """A Host header without its port: ``localhost:8000`` -> ``localhost``, ``[::1]:80`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> None:
    """Run ``app`` with uvicorn until interrupted."""
    import uvicorn

    if not is_loopback(host):
        log.warning(
            "binding to %s: the server is reachable from other machines, and it has no authentication", host
        )
    uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info")
