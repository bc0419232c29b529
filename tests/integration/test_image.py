"""The image, built with a small base and a fake vLLM, runs one job. Needs a Docker daemon; skipped without one."""

import asyncio

import pytest

from adapters.local_queue import LocalQueue, chat_job
from tests.integration.conftest import ROOT, chat

pytestmark = pytest.mark.slow


def docker_or_skip() -> None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as error:  # any failure to reach a daemon means: nothing to build with here
        pytest.skip(f"no Docker daemon answers ({type(error).__name__}): the image test needs one")


async def test_the_image_runs_a_job_through_entrypoint(queue: LocalQueue) -> None:
    docker_or_skip()
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.image import DockerImage

    image = DockerImage(path=ROOT, tag="worker-vllm:test", buildargs={"BASE_IMAGE": "python:3.11-slim"})
    with image:
        container = (
            DockerContainer(str(image))
            .with_kwargs(network_mode="host")
            .with_volume_mapping(str(ROOT / "testbed"), "/app/testbed", "ro")
            .with_envs(
                CASOLA_WS_URL=queue.url,
                CASOLA_CONFIG_ID="image-test",
                VLLM_MODEL="tiny",
                VLLM_PORT="18123",
                ENTRYPOINT_VLLM_COMMAND="python3 -m testbed.fake_vllm serve tiny --port 18123",
            )
        )
        with container:
            await queue.wait_for_type("register", timeout=120)
            await queue.push(chat_job("image-job", chat()))
            result = await queue.wait_for_type("job_result", "image-job", timeout=60)
            assert result["result"]["status"] == "success"
            await asyncio.to_thread(container.stop)
