"""Configuration: the seed's defaults, and errors that name each bad variable."""

import pytest

from application.settings import ConfigurationError, load_settings

REQUIRED = {"CASOLA_WS_URL": "wss://queue.example", "CASOLA_CONFIG_ID": "cfg", "VLLM_MODEL": "org/model"}


def test_seed_defaults() -> None:
    settings = load_settings({**REQUIRED, "CASOLA_INSTANCE_ID": "w1"})
    assert settings.CASOLA_QUEUE_ID == "vllm-queue"
    assert settings.CASOLA_HEARTBEAT_INTERVAL == 60
    assert settings.CASOLA_MAX_JOBS == 1
    assert settings.CASOLA_LEASE_SECONDS == 30
    assert settings.renew_lease_after == 24
    assert settings.CASOLA_SHUTDOWN_GRACE_PERIOD == 5.0
    assert (settings.VLLM_HOST, settings.VLLM_PORT, settings.VLLM_STARTUP_TIMEOUT) == ("127.0.0.1", 8000, 120)
    assert (settings.VLLM_EXTRA_ARGS, settings.VLLM_SERVED_MODEL_NAME, settings.VLLM_SERVE_COMMAND) == (
        "",
        "default",
        "vllm",
    )
    assert settings.queue_url == "wss://queue.example/ws"
    assert settings.vllm_base_url == "http://127.0.0.1:8000"


def test_instance_id_defaults_to_the_container_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINER_ID", "abc123")
    assert load_settings(REQUIRED).CASOLA_INSTANCE_ID == "vast-abc123"


def test_queue_url_has_no_double_slash() -> None:
    assert load_settings({**REQUIRED, "CASOLA_WS_URL": "ws://q:1/"}).queue_url == "ws://q:1/ws"


def test_renew_after_can_be_set() -> None:
    assert load_settings({**REQUIRED, "CASOLA_RENEW_LEASE_AFTER": "5"}).renew_lease_after == 5


def test_empty_values_count_as_unset() -> None:
    assert load_settings({**REQUIRED, "CASOLA_MAX_JOBS": "", "CASOLA_API_URL": ""}).CASOLA_MAX_JOBS == 1


ERRORS = [
    ({}, "CASOLA_WS_URL: required, not set; CASOLA_CONFIG_ID: required, not set; VLLM_MODEL: required, not set"),
    ({"CASOLA_WS_URL": "https://q"}, "CASOLA_WS_URL='https://q': must start with ws:// or wss://"),
    ({"CASOLA_MAX_JOBS": "many"}, "CASOLA_MAX_JOBS='many': Input should be a valid integer"),
    ({"CASOLA_MAX_JOBS": "0"}, "CASOLA_MAX_JOBS='0': Input should be greater than or equal to 1"),
    ({"VLLM_PORT": "70000"}, "VLLM_PORT='70000': Input should be less than or equal to 65535"),
    ({"CASOLA_HEARTBEAT_INTERVAL": "0"}, "CASOLA_HEARTBEAT_INTERVAL='0': Input should be greater than 0"),
    ({"CASOLA_API_URL": "api.example"}, "CASOLA_API_URL='api.example': must start with http:// or https://"),
    (
        {"CASOLA_LEASE_SECONDS": "10", "CASOLA_RENEW_LEASE_AFTER": "10"},
        "CASOLA_RENEW_LEASE_AFTER (10.0) must be less than CASOLA_LEASE_SECONDS (10.0)",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), ERRORS)
def test_errors_name_the_variable(overrides: dict[str, str], message: str) -> None:
    environ = {**REQUIRED, **overrides} if overrides else {}
    with pytest.raises(ConfigurationError) as error:
        load_settings(environ)
    assert message in str(error.value)


def test_secrets_are_masked() -> None:
    settings = load_settings({**REQUIRED, "CASOLA_API_TOKEN": "tok-123456", "VLLM_API_KEY": "key-123456"})
    assert settings.api_token == "tok-123456"
    masked = settings.masked()
    assert masked["CASOLA_API_TOKEN"] == "***" and masked["VLLM_API_KEY"] == "***"
    assert "tok-123456" not in repr(masked) and "tok-123456" not in repr(settings)
