"""No secret in any log line: values of TOKEN/KEY/SECRET/PASSWORD/AUTH variables are masked."""

import io
import json
import logging

from adapters.operator.log_format import JsonFormatter
from application.secrets import secret_values
from domain.untrusted import Masker


def test_secret_values_come_from_secret_names() -> None:
    environ = {"CASOLA_API_TOKEN": "tok-abcdef", "HF_TOKEN": "hf_xyz123", "VLLM_MODEL": "m", "MY_PASSWORD": "pw-12345"}
    assert sorted(secret_values(environ)) == ["hf_xyz123", "pw-12345", "tok-abcdef"]


def test_masker_masks_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(Masker(["tok-abcdef"])))
    logger = logging.getLogger("test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("header Bearer %s", "tok-abcdef")
    try:
        raise ValueError("bad token tok-abcdef")
    except ValueError:
        logger.exception("failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "header Bearer ***"
    assert "tok-abcdef" not in stream.getvalue()
    assert "bad token ***" in lines[1]["error"]
