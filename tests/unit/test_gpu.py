"""The GPU checks (the reference worker's) as a table: one healthy host, then each way a host is bad."""

import pytest

from domain.gpu import GpuExpectations, failure_message, gpu_checks, gpu_snapshot

A100 = "NVIDIA A100-SXM4-80GB, 81920, 3, 0, 0, 400.00, 400.00"
EXPECT_A100 = GpuExpectations("a100", 80)


def gpu_failures(csv_rows: str, expected: GpuExpectations) -> list[str]:
    """What failed of `gpu_checks`, as the GPU check lists it."""
    return [found for passed, found in gpu_checks(csv_rows, expected) if not passed]


def test_a_healthy_host_passes_every_check() -> None:
    assert gpu_failures(f"{A100}\n{A100}\n", EXPECT_A100) == []
    assert gpu_failures("Tesla T4, 15360, 0, 0, [N/A], 70.00, 70.00", GpuExpectations()) == []


BAD = [
    ("NVIDIA H100 80GB HBM3, 81559, 3, 0, 0, 700, 700", "GPU 0 (NVIDIA H100 80GB HBM3): not the expected a100"),
    (
        "NVIDIA A100-SXM4-40GB, 40960, 3, 0, 0, 400, 400",
        "GPU 0 (NVIDIA A100-SXM4-40GB): 40960 MiB of memory, expected 80 GB",
    ),
    (
        "NVIDIA A100-SXM4-80GB, 81920, 600, 0, 0, 400, 400",
        "GPU 0 (NVIDIA A100-SXM4-80GB): busy (600 MiB used, 0% utilization)",
    ),
    (
        "NVIDIA A100-SXM4-80GB, 81920, 3, 35, 0, 400, 400",
        "GPU 0 (NVIDIA A100-SXM4-80GB): busy (3 MiB used, 35% utilization)",
    ),
    ("NVIDIA A100-SXM4-80GB, 81920, 3, 0, 2, 400, 400", "GPU 0 (NVIDIA A100-SXM4-80GB): 2 uncorrected ECC errors"),
    (
        "NVIDIA A100-SXM4-80GB, 81920, 3, 0, 0, 250, 400",
        "GPU 0 (NVIDIA A100-SXM4-80GB): power limited to 250 W of 400 W",
    ),
    ("", "nvidia-smi lists no GPU"),
    ("garbage", "GPU 0: nvidia-smi row not understood: 'garbage'"),
]


@pytest.mark.parametrize(("rows", "failure"), BAD)
def test_each_bad_host_is_told_apart(rows: str, failure: str) -> None:
    failures = gpu_failures(rows, EXPECT_A100)
    assert any(found.startswith(failure) for found in failures), failures


def test_every_failure_of_every_gpu_is_listed_in_one_message() -> None:
    rows = f"{A100}\nNVIDIA A100-SXM4-80GB, 81920, 900, 50, 4, 400, 400"
    failures = gpu_failures(rows, EXPECT_A100)
    assert [failure.split(":")[1].split("(")[0].strip() for failure in failures] == ["busy", "4 uncorrected ECC errors"]
    assert failure_message(failures).startswith("gpu_health_check failed: GPU 1 (NVIDIA A100-SXM4-80GB): busy")


def test_na_fields_skip_their_check() -> None:
    assert (
        gpu_failures("NVIDIA L4, 23034, 0, 0, N/A, [Not Supported], [Not Supported]", GpuExpectations("L4", 24)) == []
    )


def test_each_check_of_a_healthy_gpu_is_one_line_saying_what_it_found() -> None:
    assert gpu_checks(A100, EXPECT_A100) == [
        (True, "GPU 0 (NVIDIA A100-SXM4-80GB): is the expected a100"),
        (True, "GPU 0 (NVIDIA A100-SXM4-80GB): 81920 MiB of memory, expected 80 GB"),
        (True, "GPU 0 (NVIDIA A100-SXM4-80GB): idle (3 MiB used, 0% utilization)"),
        (True, "GPU 0 (NVIDIA A100-SXM4-80GB): 0 uncorrected ECC errors"),
        (True, "GPU 0 (NVIDIA A100-SXM4-80GB): power limit 400.00 W"),
    ]


def test_a_snapshot_reads_the_first_gpu_and_leaves_out_what_nvidia_smi_does_not_know() -> None:
    rows = "1024, 81920, 37, 55\n2048, 81920, 90, 70\n"
    assert gpu_snapshot(rows) == {
        "gpu_memory_used_mb": 1024, "gpu_memory_total_mb": 81920, "gpu_utilization_pct": 37, "gpu_temperature_c": 55
    }  # fmt: skip
    assert gpu_snapshot("1024, 81920, [N/A], N/A") == {"gpu_memory_used_mb": 1024, "gpu_memory_total_mb": 81920}
    assert gpu_snapshot("") == {}
