"""The queue port: the worker's one connection to the Casola queue."""
