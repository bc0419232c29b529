"""GPU checks before vLLM starts, from `nvidia-smi` (PROTOCOL.md): a bad host is told apart before it costs a job."""

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


@dataclass(frozen=True)
class GpuExpectations:
    name: str | None = None  # CASOLA_EXPECTED_GPU_NAME: contained in each GPU's name, any case
    vram_gb: float | None = None  # CASOLA_EXPECTED_VRAM_GB: each GPU has at least 90% of it


def gpu_failures(csv_rows: str, expected: GpuExpectations) -> list[str]:
    """Every failed check of every GPU row of `nvidia-smi --query-gpu=GPU_QUERY --format=csv,noheader,nounits`."""
    rows = [row for row in csv_rows.splitlines() if row.strip()]
    if not rows:
        return ["nvidia-smi lists no GPU"]
    return [failure for index, row in enumerate(rows) for failure in _row_failures(index, row, expected)]


def _row_failures(index: int, row: str, expected: GpuExpectations) -> list[str]:
    fields = [field.strip() for field in row.split(",")]
    if len(fields) != 7:
        return [f"GPU {index}: nvidia-smi row not understood: {row[:200]!r}"]
    name, total, used, utilization, ecc, power_limit, power_default = fields
    gpu = f"GPU {index} ({name})"
    failures = []
    if expected.name and expected.name.lower() not in name.lower():
        failures.append(f"{gpu}: not the expected {expected.name}")
    if expected.vram_gb and (_number(total) or 0) < MIN_VRAM_SHARE * expected.vram_gb * 1024:
        failures.append(f"{gpu}: {total} MiB of memory, expected {expected.vram_gb:g} GB")
    if (_number(used) or 0) >= MAX_USED_MIB or (_number(utilization) or 0) >= MAX_UTILIZATION_PCT:
        failures.append(f"{gpu}: busy ({used} MiB used, {utilization}% utilization): another workload holds it")
    if (_number(ecc) or 0) > 0:
        failures.append(f"{gpu}: {ecc} uncorrected ECC errors")
    limit, default = _number(power_limit), _number(power_default)
    if limit is not None and default and limit < MIN_POWER_SHARE * default:
        failures.append(f"{gpu}: power limited to {power_limit} W of {power_default} W")
    return failures


def _number(field: str) -> float | None:
    """A number, or None for nvidia-smi's `N/A` and `[Not Supported]`."""
    try:
        return float(field)
    except ValueError:
        return None


def failure_message(failures: list[str]) -> str:
    return FAILURE_PREFIX + "; ".join(failures)
