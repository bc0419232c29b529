"""The worker's use cases: the service that drives the domain through its ports."""
