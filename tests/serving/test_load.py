"""A bounded load test on loopback: concurrent clients, 10 % malformed requests; no 5xx, no crash, no growth."""

import asyncio
import random

import httpx
import psutil
import pytest
from serving_toys import start_server, stop_server

MALFORMED = [
    ("json", {"prompt": ""}), ("json", {"prompt": "a", "num_frames": 6}), ("json", {"prompt": "a", "seed": -3}),
    ("json", {"prompt": "a", "colour": 1}), ("raw", b"{broken"), ("raw", b"\xff\xfe\xfd"),
    ("rollout", b"not a video"), ("json", {"prompt": "x" * 500}), ("json", ["a list"]),
]


async def client(url: str, rng: random.Random, count: int, statuses: list[int]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(count):
            if rng.random() < 0.1:
                kind, body = rng.choice(MALFORMED)
                if kind == "json":
                    answer = await http.post("/api/text-to-video", json=body)
                elif kind == "raw":
                    answer = await http.post("/api/text-to-video", content=body,
                                             headers={"content-type": "application/json"})
                else:
                    answer = await http.post("/api/rollout", files={"video": ("v.mp4", body)},
                                             data={"context_frames": "5"})
                assert 400 <= answer.status_code < 500 and "error" in answer.json(), answer.text
            else:
                body = {"prompt": rng.choice(["a red ball", "two balls collide", "a blue ball falls"]),
                        "seed": rng.randrange(1000), "num_frames": rng.choice([5, 9])}
                answer = await http.post("/api/text-to-video", json=body)
            statuses.append(answer.status_code)


def run_clients(url: str, clients: int, each: int, seed: int) -> list[int]:
    statuses: list[int] = []

    async def main() -> None:
        await asyncio.gather(*(client(url, random.Random(seed + i), each, statuses) for i in range(clients)))

    asyncio.run(main())
    return statuses


@pytest.mark.slow
def test_load_with_malformed_requests(tiny_checkpoint, tmp_path):
    server, url = start_server("--checkpoint", str(tiny_checkpoint), "--max-batch", "8", "--keep-videos", "16",
                               "--videos-dir", str(tmp_path))
    try:
        warm = run_clients(url, 8, 3, seed=0)
        rss_warm = psutil.Process(server.pid).memory_info().rss
        statuses = run_clients(url, 8, 20, seed=100)
        rss_after = psutil.Process(server.pid).memory_info().rss
        assert server.poll() is None, "the server died"
        assert httpx.get(f"{url}/api/health").json()["queued"] == 0
    finally:
        stop_server(server)
    statuses += warm
    assert not [s for s in statuses if s >= 500]
    assert sum(s == 200 for s in statuses) >= 0.8 * len(statuses)
    assert any(400 <= s < 500 for s in statuses)
    assert rss_after <= 1.10 * rss_warm, f"resident memory grew from {rss_warm >> 20} MiB to {rss_after >> 20} MiB"
    assert len(list(tmp_path.glob("*.mp4"))) <= 16
