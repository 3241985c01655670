"""The HTTP API on a tiny model: answers, videos, and one clear 4xx JSON error for every kind of bad request."""

import io

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from worldmodel.serving.app import create_app
from worldmodel.video import write_video


@pytest.fixture
def client(service):
    with TestClient(create_app(service)) as c:
        yield c


def video_bytes(tmp_path, frames=9, size=32, suffix=".mp4") -> bytes:
    rng = np.random.default_rng(0)
    path = write_video(tmp_path / f"clip{suffix}", rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8))
    return path.read_bytes()


def test_health_and_page(client):
    info = client.get("/api/health").json()
    assert info["status"] == "ok" and info["frame_size"] == [32, 32] and info["default_frames"] == 9
    page = client.get("/")
    assert page.status_code == 200 and "<video" in page.text and "/app.js" in page.text
    assert "fetch(" in client.get("/app.js").text


def test_text_to_video_answers_with_a_playable_video_and_its_settings(client):
    body = {"prompt": "a red ball falls", "seed": 3, "num_frames": 5, "temperature": 0.8, "top_k": 4}
    answer = client.post("/api/text-to-video", json=body).json()
    assert answer["seed"] == 3 and answer["settings"]["num_frames"] == 5 and answer["settings"]["top_k"] == 4
    assert answer["settings"]["guidance_scale"] == 3.0 and "--seed 3" in answer["cli"]
    video = client.get(answer["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert len(list(container.decode(stream))) == 5
    again = client.post("/api/text-to-video", json=body).json()
    assert client.get(again["video"]).content == video.content  # same seed, same bytes


def test_rollout_continues_an_upload(client, tmp_path):
    files = {"video": ("clip.mp4", video_bytes(tmp_path), "video/mp4")}
    answer = client.post("/api/rollout", files=files, data={"context_frames": "5", "num_frames": "9", "seed": "2"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["settings"]["context_frames"] == 5 and answer.json()["seed"] == 2


def test_progress_of_unknown_request_and_old_videos(client):
    assert client.get("/api/progress/abcdefgh12").status_code == 404
    names = [client.post("/api/text-to-video", json={"prompt": "x", "seed": i, "num_frames": 1}).json()["video"]
             for i in range(5)]
    assert client.get(names[0]).status_code == 404 and client.get(names[-1]).status_code == 200  # keeps 4


LONG = "x" * 65
BAD_JSON = [
    ({"prompt": ""}, 422, "prompt must not be empty"),
    ({"prompt": " \t\n "}, 422, "prompt must not be empty"),
    ({"prompt": LONG}, 422, "over the model's limit of 64"),
    ({"prompt": "ä" * 33}, 422, "66 bytes"),
    ({}, 422, "prompt is required"),
    ({"prompt": 5}, 422, "prompt"),
    ({"prompt": "a", "num_frames": 6}, 422, "num_frames must be 1 + 4*k"),
    ({"prompt": "a", "num_frames": 0}, 422, "num_frames"),
    ({"prompt": "a", "num_frames": 10_000}, 422, "between 1 and 17"),
    ({"prompt": "a", "num_frames": "9"}, 422, "num_frames"),
    ({"prompt": "a", "num_frames": 9.0}, 422, "num_frames"),
    ({"prompt": "a", "seed": -1}, 422, "seed"),
    ({"prompt": "a", "seed": 2**64}, 422, "seed"),
    ({"prompt": "a", "seed": True}, 422, "seed"),
    ({"prompt": "a", "temperature": -1}, 422, "temperature"),
    ({"prompt": "a", "top_k": 0}, 422, "top_k"),
    ({"prompt": "a", "top_p": 1.5}, 422, "top_p"),
    ({"prompt": "a", "guidance_scale": "high"}, 422, "guidance_scale"),
    ({"prompt": "a", "steps": 3}, 422, "steps is not a known field"),
    (["a"], 422, "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_JSON)
def test_bad_json_bodies(client, body, status, message):
    answer = client.post("/api/text-to-video", json=body)
    assert answer.status_code == status and message in answer.json()["error"], answer.text


@pytest.mark.parametrize(("content", "headers", "status", "message"), [
    (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
    (b'{"prompt": "\xff\xfe"}', {"content-type": "application/json"}, 400, "UTF-8"),
    (b'{"prompt": "\\ud800"}', {"content-type": "application/json"}, 422, "lone surrogate"),
    (b'{"prompt": NaN}', {"content-type": "application/json"}, 422, "prompt"),
    (b'{"prompt": "a", "temperature": Infinity}', {"content-type": "application/json"}, 422, "temperature"),
    (b"x" * (2 * 2**20), {"content-type": "application/json"}, 413, "limit"),
])
def test_malformed_bodies(client, content, headers, status, message):
    answer = client.post("/api/text-to-video", content=content, headers=headers)
    assert answer.status_code == status and message in answer.json()["error"], answer.text


def test_rollout_bad_uploads(client, tmp_path):
    good = video_bytes(tmp_path)
    cases = [
        ({"video": ("a.mp4", b"not a video", "video/mp4")}, {"context_frames": "5"}, 422, "could not be decoded"),
        ({"video": ("a.mp4", b"", "video/mp4")}, {"context_frames": "5"}, 422, "empty"),
        ({"video": ("a.mp4", video_bytes(tmp_path, size=48), "video/mp4")}, {"context_frames": "5"}, 422,
         "48x48 pixels"),
        ({"video": ("a.mp4", video_bytes(tmp_path, frames=3), "video/mp4")}, {"context_frames": "5"}, 422,
         "fewer than context_frames=5"),
        ({"video": ("a.mp4", good, "video/mp4")}, {"context_frames": "4"}, 422, "context_frames must be 1 + 4*k"),
        ({"video": ("a.mp4", good, "video/mp4")}, {"context_frames": "9", "num_frames": "9"}, 422, "between 10"),
        ({"video": ("a.mp4", good, "video/mp4")}, {"context_frames": "five"}, 422, "context_frames"),
        ({"video": ("a.mp4", good, "video/mp4")}, {}, 422, "context_frames is required"),
        ({"video": ("a.mp4", good, "video/mp4")}, {"context_frames": "5", "colour": "red"}, 422, "colour"),
        ({"clip": ("a.mp4", good, "video/mp4")}, {"context_frames": "5"}, 422, "video is required"),
        ({"video": ("a.mp4", b"\0" * (2**20 + 10), "video/mp4")}, {"context_frames": "5"}, 413, "limit"),
    ]
    for files, data, status, message in cases:
        answer = client.post("/api/rollout", files=files, data=data)
        assert answer.status_code == status and message in answer.json()["error"], (data, answer.text)
    answer = client.post("/api/rollout", json={"context_frames": 5})
    assert answer.status_code == 415 and "multipart/form-data" in answer.json()["error"]


def test_unknown_paths_methods_and_request_ids(client):
    assert client.get("/api/nothing").json() == {"error": "there is nothing at /api/nothing"}
    assert client.get("/api/text-to-video").status_code == 405
    assert client.get("/videos/../../etc/passwd").status_code == 404
    answer = client.post("/api/text-to-video", json={"prompt": "a"}, headers={"X-Request-Id": "bad id!"})
    assert answer.status_code == 400 and "X-Request-Id" in answer.json()["error"]


def test_full_queue_answers_429(service, client):
    service.batcher.max_queue = 0
    answer = client.post("/api/text-to-video", json={"prompt": "a", "num_frames": 1})
    assert answer.status_code == 429 and "queue is full" in answer.json()["error"]
