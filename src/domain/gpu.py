"""GPU checks before vLLM starts, from `nvidia-smi`, as the reference Casola worker makes them: a bad host is told
apart before it costs a job."""

from dataclasses import dataclass

GPU_QUERY = (
    "gpu_name,memory.total,memory.used,utilization.gpu,ecc.errors.uncorrected.aggregate.total,"
    "power.limit,power.default_limit"
)
MAX_USED_MIB = 500  # more: another workload holds the GPU
MAX_UTILIZATION_PCT = 10
MIN_VRAM_SHARE = 0.9
MIN_POWER_SHARE = 0.7
FAILURE_PREFIX = "gpu_health_check failed: "
SNAPSHOT_QUERY = "memory.used,memory.total,utilization.gpu,temperature.gpu"
SNAPSHOT_FIELDS = ("gpu_memory_used_mb", "gpu_memory_total_mb", "gpu_utilization_pct", "gpu_temperature_c")


@dataclass(frozen=True)
class GpuExpectations:
    name: str | None = None  # CASOLA_EXPECTED_GPU_NAME: contained in each GPU's name, any case
    vram_gb: float | None = None  # CASOLA_EXPECTED_VRAM_GB: each GPU has at least 90% of it


def gpu_checks(csv_rows: str, expected: GpuExpectations) -> list[tuple[bool, str]]:
    """Every check of every GPU row of `nvidia-smi --query-gpu=GPU_QUERY --format=csv,noheader,nounits`, as
    (passed, what it found): one log line each."""
    rows = [row for row in csv_rows.splitlines() if row.strip()]
    if not rows:
        return [(False, "nvidia-smi lists no GPU")]
    return [check for index, row in enumerate(rows) for check in _row_checks(index, row, expected)]


def _row_checks(index: int, row: str, expected: GpuExpectations) -> list[tuple[bool, str]]:
    fields = [field.strip() for field in row.split(",")]
    if len(fields) != 7:
        return [(False, f"GPU {index}: nvidia-smi row not understood: {row[:200]!r}")]
    name, total, used, utilization, ecc, power_limit, power_default = fields
    gpu = f"GPU {index} ({name})"
    checks = []
    if expected.name:
        found = expected.name.lower() in name.lower()
        checks.append((found, f"{gpu}: {'is' if found else 'not'} the expected {expected.name}"))
    if expected.vram_gb:
        enough = (_number(total) or 0) >= MIN_VRAM_SHARE * expected.vram_gb * 1024
        checks.append((enough, f"{gpu}: {total} MiB of memory, expected {expected.vram_gb:g} GB"))
    idle = (_number(used) or 0) < MAX_USED_MIB and (_number(utilization) or 0) < MAX_UTILIZATION_PCT
    load = f"{used} MiB used, {utilization}% utilization"
    checks.append((idle, f"{gpu}: idle ({load})" if idle else f"{gpu}: busy ({load}): another workload holds it"))
    errors = _number(ecc)
    checks.append((not errors, f"{gpu}: {ecc} uncorrected ECC errors" if errors is not None else f"{gpu}: ECC {ecc}"))
    limit, default = _number(power_limit), _number(power_default)
    capped = limit is not None and bool(default) and limit < MIN_POWER_SHARE * (default or 0)
    power = f"power limited to {power_limit} W of {power_default} W" if capped else f"power limit {power_limit} W"
    checks.append((not capped, f"{gpu}: {power}"))
    return checks


def gpu_snapshot(csv_rows: str) -> dict[str, float]:
    """The first GPU's `SNAPSHOT_QUERY` row as system metrics fields; one nvidia-smi does not know is left out."""
    rows = csv_rows.strip().splitlines()
    values = [_number(field.strip()) for field in rows[0].split(",")] if rows else []
    return {name: value for name, value in zip(SNAPSHOT_FIELDS, values, strict=False) if value is not None}


def _number(field: str) -> float | None:
    """A number, or None for nvidia-smi's `N/A` and `[Not Supported]`."""
    try:
        return float(field)
    except ValueError:
        return None


def failure_message(failures: list[str]) -> str:
    return FAILURE_PREFIX + "; ".join(failures)
