"""worldmodel.serving: ``worldmodel serve``, a local HTTP server with dynamic batching, a web page and quantisation.

- :mod:`~worldmodel.serving.batched`: several clips, each with its own prompt, seed and settings, in one loop;
- :mod:`~worldmodel.serving.batcher`: the queue that groups requests arriving together into batches;
- :mod:`~worldmodel.serving.service` and :mod:`~worldmodel.serving.app`: the loaded model and its FastAPI routes;
- :mod:`~worldmodel.serving.quantize`: torchao int8 / int4 weights.

In Python: ``create_app(Service.from_checkpoint(quantize="int8"))`` is an ASGI app to run with uvicorn.
"""
