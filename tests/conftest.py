"""Shared test settings: every test runs on one torch thread.

Tiny models run thousands of small ops; on a busy 2-core machine one thread avoids synchronisation stalls
(measured 10-25x faster than two here).
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
