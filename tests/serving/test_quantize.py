"""torchao quantisation of the world model: int8 and int4 decode, and keep the batching identity."""

import numpy as np
import pytest
import torch
from serving_toys import tiny_pipeline

from worldmodel.serving.batched import BatchedDecoder, ClipRequest
from worldmodel.serving.quantize import quantize_pipeline


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantised_decoding_is_close_and_batch_invariant(mode):
    reference = tiny_pipeline()
    quantised = quantize_pipeline(tiny_pipeline(), mode)
    ids = torch.randint(0, 16, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, q_logits = (p.world_model(ids, router_stats=False).logits for p in (reference, quantised))
    assert not torch.equal(logits, q_logits)  # something was quantised
    assert torch.allclose(logits, q_logits, atol=0.5)
    decoder = BatchedDecoder(quantised)
    requests = [ClipRequest("a red ball", 1, 5, 3.0), ClipRequest("", 2, 5), ClipRequest("a blue ball", 3, 5, 2.0)]
    alone = [decoder([r])[0] for r in requests]
    for a, b in zip(alone, decoder(requests), strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="quantize must be one of int8, int4"):
        quantize_pipeline(tiny_pipeline(), "fp8")
