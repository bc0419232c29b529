"""What runs on a developer's machine: a local queue, its OpenAI-compatible REST front, the one-shot test job."""
