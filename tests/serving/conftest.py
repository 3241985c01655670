"""Tiny served models for the serving tests: random weights, 32x32 frames, seconds to build."""

import pytest
from serving_toys import tiny_pipeline

from worldmodel.serving.service import Limits, Service


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The tiny pipeline saved as a checkpoint folder."""
    path = tmp_path_factory.mktemp("tiny-checkpoint")
    tiny_pipeline().save_pretrained(str(path))
    return path


@pytest.fixture
def service(tmp_path):
    """A tiny :class:`Service` (batches of up to 4, 1 MiB uploads, 8 waiting requests)."""
    svc = Service(tiny_pipeline(), "tiny", max_batch=4, max_queue=8, batch_timeout=0.05, videos_dir=tmp_path,
                  limits=Limits(max_upload_bytes=2**20, keep_videos=4))
    yield svc
    svc.close()
