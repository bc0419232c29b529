"""Leases of persisted jobs: when the worker must renew them, given `now`."""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Lease:
    """A job lease, renewed every `renew_after` seconds of its `seconds`-long term."""

    seconds: float
    renew_after: float
    renewed_at: float

    def due(self, now: float) -> bool:
        return now - self.renewed_at >= self.renew_after

    def renewed(self, now: float) -> "Lease":
        return replace(self, renewed_at=now)


def default_renew_after(lease_seconds: float) -> float:
    """The seed's default: renew after 80% of the lease."""
    return lease_seconds * 0.8
