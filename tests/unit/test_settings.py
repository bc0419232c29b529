"""Configuration: the seed's defaults, and errors that name each bad variable."""

import pytest

from adapters.queue.websocket import WebSocketQueue
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
    assert load_settings({**REQUIRED, "CASOLA_WS_URL": "wss://q:1/"}).queue_url == "wss://q:1/ws"


def test_renew_after_can_be_set_below_the_lease_and_only_there() -> None:
    assert load_settings({**REQUIRED, "CASOLA_LEASE_SECONDS": "10"}).renew_lease_after == 8  # 80% by default
    assert load_settings({**REQUIRED, "CASOLA_RENEW_LEASE_AFTER": "5"}).renew_lease_after == 5
    with pytest.raises(ConfigurationError, match=r"CASOLA_RENEW_LEASE_AFTER \(30.0\) must be less than"):
        load_settings({**REQUIRED, "CASOLA_RENEW_LEASE_AFTER": "30"})


def test_empty_values_count_as_unset() -> None:
    assert load_settings({**REQUIRED, "CASOLA_MAX_JOBS": "", "CASOLA_API_URL": ""}).CASOLA_MAX_JOBS == 1


ERRORS = [
    ({}, "CASOLA_WS_URL: required, not set; CASOLA_CONFIG_ID: required, not set; VLLM_MODEL: required, not set"),
    ({"CASOLA_WS_URL": "https://q"}, "CASOLA_WS_URL='https://q': must start with ws:// or wss://"),
    ({"CASOLA_MAX_JOBS": "many"}, "CASOLA_MAX_JOBS='many': Input should be a valid integer"),
    ({"CASOLA_MAX_JOBS": "0"}, "CASOLA_MAX_JOBS='0': Input should be greater than or equal to 1"),
    ({"VLLM_PORT": "70000"}, "VLLM_PORT='70000': Input should be less than or equal to 65535"),
    ({"CASOLA_HEARTBEAT_INTERVAL": "0"}, "CASOLA_HEARTBEAT_INTERVAL='0': Input should be greater than 0"),
    ({"CASOLA_API_URL": "api.example"}, "CASOLA_API_URL='api.example': must be an http:// or https:// URL"),
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


TRANSPORT = [
    # (variables, accepted)
    ({"CASOLA_WS_URL": "wss://queue.example"}, True),
    ({"CASOLA_WS_URL": "ws://127.0.0.1:8765"}, True),
    ({"CASOLA_WS_URL": "ws://localhost:8765"}, True),
    ({"CASOLA_WS_URL": "ws://[::1]:8765"}, True),
    ({"CASOLA_WS_URL": "ws://queue.example"}, False),
    ({"CASOLA_WS_URL": "ws://10.0.0.5"}, False),
    ({"CASOLA_API_URL": "http://api.example"}, False),
    ({"CASOLA_API_URL": "http://127.0.0.1:9000"}, True),
    ({"CASOLA_WS_URL": "ws://queue.example", "CASOLA_ALLOW_INSECURE_TRANSPORT": "1"}, True),
]


@pytest.mark.parametrize(("variables", "accepted"), TRANSPORT)
def test_the_token_goes_in_clear_only_to_loopback_or_when_the_operator_opts_out(
    variables: dict[str, str], accepted: bool
) -> None:
    if accepted:
        load_settings({**REQUIRED, **variables})
        return
    with pytest.raises(ConfigurationError, match="would send the token in clear; use wss:// or https://"):
        load_settings({**REQUIRED, **variables})


def test_the_queue_path_goes_before_the_query() -> None:
    settings = load_settings({**REQUIRED, "CASOLA_WS_URL": "wss://queue.example/base/?region=us"})
    assert settings.queue_url == "wss://queue.example/base/ws?region=us"


def test_url_credentials_are_masked_in_the_logged_configuration_and_in_errors() -> None:
    variables = {"CASOLA_WS_URL": "wss://queue.example/?token=s3cret", "CASOLA_API_URL": "https://u:pw0rd@api.x"}
    masked = load_settings({**REQUIRED, **variables}).masked()
    assert "s3cret" not in str(masked) and "pw0rd" not in str(masked)
    with pytest.raises(ConfigurationError) as error:
        load_settings({**REQUIRED, "CASOLA_WS_URL": "https://u:pw0rd@queue.example"})
    assert "pw0rd" not in str(error.value)


def test_a_silent_queue_is_noticed_within_the_keepalive() -> None:
    assert load_settings(REQUIRED).CASOLA_QUEUE_KEEPALIVE == 15
    queue = WebSocketQueue("ws://127.0.0.1:1", None, keepalive=15)
    assert queue.ping_interval + queue.ping_timeout + queue.close_timeout == 15  # ping, pong awaited, close awaited


@pytest.mark.parametrize(
    ("variables", "base_url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"VLLM_HOST": "::1"}, "http://[::1]:8000"),
        ({"VLLM_SCHEME": "https", "VLLM_HOST": "vllm.internal", "VLLM_PORT": "443"}, "https://vllm.internal:443"),
        ({"VLLM_SCHEME": "https", "VLLM_HOST": "2001:db8::5"}, "https://[2001:db8::5]:8000"),
    ],
)
def test_vllms_address_is_a_url_with_ipv6_bracketed(variables: dict[str, str], base_url: str) -> None:
    assert load_settings({**REQUIRED, **variables}).vllm_base_url == base_url


@pytest.mark.parametrize(
    ("variables", "refused"),
    [
        ({"VLLM_HOST": "10.0.0.5"}, True),
        ({"VLLM_HOST": "vllm.internal"}, True),
        ({"VLLM_HOST": "::1"}, False),
        ({"VLLM_HOST": "localhost"}, False),
        ({"VLLM_HOST": "10.0.0.5", "VLLM_SCHEME": "https"}, False),
        ({"VLLM_HOST": "10.0.0.5", "CASOLA_ALLOW_INSECURE_TRANSPORT": "1"}, False),
    ],
)
def test_vllms_api_key_goes_in_clear_only_to_loopback(variables: dict[str, str], refused: bool) -> None:
    environ = {**REQUIRED, "VLLM_API_KEY": "sk-vllm-key-123", **variables}
    if not refused:
        assert load_settings(environ).vllm_api_key == "sk-vllm-key-123"
        return
    with pytest.raises(ConfigurationError, match="VLLM_API_KEY: http:// to a VLLM_HOST that is not loopback") as error:
        load_settings(environ)
    assert "sk-vllm-key-123" not in str(error.value)


def test_vllms_read_timeout_defaults_to_the_jobs_own_limit() -> None:
    assert load_settings(REQUIRED).vllm_read_timeout == load_settings(REQUIRED).request_timeout
    assert load_settings({**REQUIRED, "VLLM_READ_TIMEOUT": "90"}).vllm_read_timeout == 90
