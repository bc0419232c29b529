"""The worker's rules: jobs, leases, frames and the worker state machine, with no I/O."""
