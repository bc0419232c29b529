"""The machine the worker runs on: the GPU, the event loop, what runs beside the service."""
