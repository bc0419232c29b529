"""vLLM: its HTTP API for jobs and probes, its refusals, its process and its relayed output."""
