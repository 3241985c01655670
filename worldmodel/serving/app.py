"""The HTTP face of the server: FastAPI routes, request checks and JSON errors.

FastAPI + uvicorn, not LitServe: LitServe batches requests that share one ``predict`` signature, but a clip
here is a whole autoregressive loop whose batch must share a decoding shape (frame counts), keep each request's
own generator and report progress and queue position while it waits. That logic is ours either way
(:mod:`worldmodel.serving.batcher`), and FastAPI gives the rest (routing, pydantic checks, multipart uploads,
files) without LitServe's worker processes and its copy of the model per worker.

Every error answer is ``{"error": "one sentence"}`` with a 4xx status (413 too large, 415 wrong content type,
422 a field out of range or of the wrong type, 429 queue full).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from worldmodel.pipelines.sampling import SamplingParams
from worldmodel.serving.batched import ClipRequest
from worldmodel.serving.batcher import QueueFull
from worldmodel.serving.limits import BodyLimit, BodyTooLarge
from worldmodel.serving.service import Service
from worldmodel.serving.uploads import UploadError, read_context

PAGE = Path(__file__).resolve().parent / "page"
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
VIDEO_NAME = re.compile(r"[0-9a-f]{32}\.mp4")
MAX_SEED = 2**63 - 1


class Sampling(BaseModel):
    """Settings shared by both routes; each route's defaults are the CLI's (the settings measured best)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0, le=MAX_SEED)
    num_frames: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=10, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=1, le=1_000_000)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)


class TextToVideoBody(Sampling):
    """``POST /api/text-to-video`` JSON body; only the prompt is required."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str
    guidance_scale: float = Field(3.0, ge=0, le=50, allow_inf_nan=False)
    top_k: int | None = Field(5, ge=1, le=1_000_000)  # as `worldmodel generate`; null samples from every code


class RolloutForm(Sampling):
    """``POST /api/rollout`` form fields besides the ``video`` file (strings, converted)."""

    context_frames: int = Field(ge=1)
    prompt: str = ""
    guidance_scale: float = Field(1.0, ge=0, le=50, allow_inf_nan=False)
    temperature: float = Field(0.0, ge=0, le=10, allow_inf_nan=False)  # greedy, as `worldmodel rollout`


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer ``{"error": message}``."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def sentence(err: dict[str, Any]) -> str:
    """One sentence for one pydantic error: which input, what was expected, what came."""
    loc = [str(p) for p in err.get("loc", ()) if p != "body"]
    field = ".".join(loc) or "the request body"
    kind = err.get("type", "")
    if kind == "json_invalid":
        return f"the request body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
    if kind == "missing":
        return f"{field} is required"
    if kind == "extra_forbidden":
        return f"{field} is not a known field"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "the request body must be a JSON object"
    got = repr(err.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    return f"{field}: {err.get('msg', 'invalid value')[0].lower()}{err.get('msg', 'invalid value')[1:]}, got {got}"


def create_app(service: Service) -> FastAPI:
    """The FastAPI app serving ``service``: the API, the generated videos and the page."""
    app = FastAPI(title="worldmodel", summary="text to video and physics rollouts, batched", docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=service.limits.max_upload_bytes + 64 * 1024)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        return error(400 if first.get("type") == "json_invalid" else 422, sentence(first))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error(404, f"there is nothing at {request.url.path}")
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}")
        if isinstance(exc.__cause__, BodyTooLarge):
            return error(413, f"the request body is over the {service.limits.max_upload_bytes}-byte limit")
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            return error(400, "the request body is not valid UTF-8")
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error ({type(exc).__name__}); the server keeps running")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """200 with the model's limits and the queue once the model is loaded (it is loaded before serving)."""
        return {"status": "ok", **service.info()}

    @app.get("/api/progress/{job_id}")
    async def progress(job_id: str) -> JSONResponse:
        """Queue position or decoding progress of a waiting request (sent with an ``X-Request-Id`` header)."""
        status = service.batcher.status(job_id)
        if status is None:
            return error(404, f"no waiting request has the id {job_id[:64]!r}")
        return JSONResponse(status)

    async def run(request: Request, clip: ClipRequest) -> JSONResponse:
        """Queue a checked clip request, wait for its batch, answer with the video and settings."""
        job_id = request.headers.get("x-request-id")
        if job_id is not None and not REQUEST_ID.fullmatch(job_id):
            return error(400, "the X-Request-Id header must be 8 to 64 letters, digits, '-' or '_'")
        try:
            job = service.submit(clip, job_id)
        except QueueFull as err:
            return error(429, str(err), {"Retry-After": "1"})
        except ValueError as err:  # the id is in use
            return error(409, str(err))
        name = await asyncio.wrap_future(job.future)
        return JSONResponse(service.answer(job, name))

    def checked(prompt: str, settings: Sampling, guidance_scale: float, context: Any = None,
                required: bool = True) -> ClipRequest:
        """A :class:`ClipRequest` after the model-dependent checks (prompt bytes, frame counts)."""
        service.check_prompt(prompt, required)
        num_frames = service.check_frames(settings.num_frames or service.default_frames)
        sampling = SamplingParams(settings.temperature, settings.top_k, settings.top_p)
        return ClipRequest(prompt, settings.seed, num_frames, guidance_scale, sampling, context)

    @app.post("/api/text-to-video")
    async def text_to_video(body: TextToVideoBody, request: Request) -> JSONResponse:
        """Generate a clip from a prompt; answers ``{"video", "seed", "settings", "cli", "batch"}``."""
        try:
            clip = checked(body.prompt, body, body.guidance_scale)
        except ValueError as err:
            return error(422, str(err))
        return await run(request, clip)

    @app.post("/api/rollout")
    async def rollout(request: Request) -> JSONResponse:
        """Continue an uploaded video (multipart: ``video`` file, ``context_frames``, ``num_frames``, ``seed``)."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(415, "POST /api/rollout expects multipart/form-data with a 'video' file field")
        try:
            form = await request.form(max_files=1, max_fields=16)
        except HTTPException as err:
            return error(400, f"the multipart body could not be read ({err.detail})")
        try:
            items = form.multi_items()
            names = [k for k, _ in items]
            repeated = sorted({k for k in names if names.count(k) > 1})
            if repeated:
                return error(422, f"the form field {repeated[0]!r} is given more than once")
            video = form.get("video")
            if not isinstance(video, UploadFile):
                return error(422, "video is required: a video file field (mp4, mkv, webm, ...)")
            fields = {k: v for k, v in items if k != "video"}
            if any(not isinstance(v, str) for v in fields.values()):
                return error(422, "only the video field may be a file")
            try:
                settings = RolloutForm.model_validate(fields)
            except ValidationError as err:
                return error(422, sentence(err.errors()[0]))
            try:
                service.check_frames(settings.context_frames, "context_frames")
                total = settings.num_frames or service.default_frames
                service.check_frames(total, "num_frames", low=settings.context_frames + 1)
                data = await video.read(service.limits.max_upload_bytes + 1)
                if len(data) > service.limits.max_upload_bytes:
                    return error(413, f"the uploaded video is over the {service.limits.max_upload_bytes}-byte limit")
                frames = await run_in_threadpool(read_context, data, settings.context_frames, service.frame_size)
                clip = checked(settings.prompt, settings, settings.guidance_scale, frames, required=False)
            except (UploadError, ValueError) as err:
                return error(422, str(err))
        finally:
            await form.close()
        return await run(request, clip)

    @app.get("/videos/{name}", response_model=None)
    async def video(name: str) -> FileResponse | JSONResponse:
        """A generated mp4 (H.264 yuv420p)."""
        path = service.store.path(name) if VIDEO_NAME.fullmatch(name) else None
        if path is None or not path.is_file():
            return error(404, f"there is no video {name[:64]!r} (the server keeps the newest "
                              f"{service.limits.keep_videos})")
        return FileResponse(path, media_type="video/mp4")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    @app.get("/app.js", include_in_schema=False)
    async def script() -> FileResponse:
        return FileResponse(PAGE / "app.js", media_type="text/javascript")

    return app
