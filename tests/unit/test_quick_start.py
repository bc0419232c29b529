"""No time lost on the worker's side of vLLM's start: vLLM's own "it answers" line wakes the wait for it, the served
surface is read while the worker registers, and a vLLM the worker launched before its service existed keeps the
lines it said meanwhile, with their times."""

import asyncio

from application.supervisor import VllmSupervisor
from application.timings import Timings
from domain.surface import VllmSurface
from tests.conftest import eventually
from tests.fakes.memory import FakeLauncher
from tests.unit.test_service import FAST_TIMINGS, bed

AN_HOUR = Timings(**{**FAST_TIMINGS.__dict__, "readiness_interval": 3600.0})


async def test_vllms_line_that_it_answers_wakes_the_wait_for_it() -> None:
    running = bed(timings=AN_HOUR)
    running.probe.healthy = False
    running.start()
    await eventually(lambda: running.probe.checks >= 1, 5, "the first /health")
    running.probe.healthy = True
    running.service.vllm.said("INFO:     Application startup complete.")
    await running.registered()  # at its interval, the worker would ask /health again in an hour
    running.service.request_shutdown()
    assert await running.exit_code() == 0


async def test_a_line_that_is_not_its_answering_line_does_not_wake_it() -> None:
    running = bed(timings=AN_HOUR)
    running.probe.healthy = False
    running.start()
    await eventually(lambda: running.probe.checks >= 1, 5, "the first /health")
    running.probe.healthy = True
    running.service.vllm.said("INFO Loading weights took 0.31 seconds")
    await asyncio.sleep(0)  # control passes to the waiting service, which must not ask again
    assert running.probe.checks == 1 and not running.queue.of_type("register")
    running.service.request_shutdown()
    assert await running.exit_code() == 0


async def test_the_worker_registers_while_the_surface_is_read_and_a_job_waits_for_it() -> None:
    running = bed()
    running.probe.describing.clear()
    running.probe.described = VllmSurface("0.33.0", paths=frozenset({"/v1/completions"}), fields={})
    running.start()
    await running.registered()
    running.job("chat")
    await eventually(lambda: running.service.worker.running, 5, "the job taken")
    assert running.inference.requests == [] and running.heartbeats.sent == [("starting", None)]
    running.probe.describing.set()
    await eventually(lambda: running.queue.of_type("job_error"), 5, "the job's error")
    refused = running.queue.of_type("job_error")[0].error
    assert refused.startswith("unsupported_job_type: openai/chat-completion: this vLLM (0.33.0")
    running.service.request_shutdown()
    assert await running.exit_code() == 0


async def test_lines_said_before_the_service_exists_are_its_start_up_phases_at_their_times() -> None:
    launcher = FakeLauncher()
    supervisor = VllmSupervisor(launcher, ["vllm", "serve", "tiny"], 1.0)
    await supervisor.start()  # vLLM first; the worker's service is built after
    assert launcher.process is not None
    launcher.process.on_line("INFO Loading weights took 0.31 seconds")
    running = bed()
    supervised = asyncio.create_task(supervisor.run(running.service))
    await running.registered()
    said = [message or "" for status, message in running.heartbeats.sent if status == "starting"]
    assert any(message.startswith("vLLM starting: weights loaded (") for message in said), said
    running.service.request_shutdown()
    assert await asyncio.wait_for(supervised, 5) == 0
    assert launcher.launched == [["vllm", "serve", "tiny"]] and launcher.process.stopped
