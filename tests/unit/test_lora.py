"""What a job may call a LoRA adapter, and whether an adapter fits the served model: tables, and a property that no
name the worker takes can leave the adapter root."""

import os
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.lora import adapter_config, lora_serve_args, made_for, name_problem

ROOT = PurePosixPath("/loras")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("sql-v2", None),
        ("Qwen2.5_sql+v1", None),
        ("../etc", "a path separator"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("sub/dir", "a path separator"),
        ("back\\slash", "a path separator"),
        ("tab\tname", "a control character"),
        ("", "not a plain name (letters, digits, '.', '_', '+', '-'; at most 128; not starting with a sign)"),
        (".hidden", "not a plain name (letters, digits, '.', '_', '+', '-'; at most 128; not starting with a sign)"),
        ("x" * 129, "not a plain name (letters, digits, '.', '_', '+', '-'; at most 128; not starting with a sign)"),
    ],
)
def test_what_may_name_an_adapter(name: str, problem: str | None) -> None:
    assert name_problem(name) == problem


@given(st.text(max_size=140))
def test_no_name_taken_leaves_the_root(name: str) -> None:
    if name_problem(name) is None:
        joined = PurePosixPath(os.path.normpath(ROOT / name))
        assert joined.parent == ROOT and joined.name == name


@pytest.mark.parametrize(
    ("base", "served", "fits"),
    [
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B", True),
        ("meta-llama/Llama-3.1-8B", "/models/Llama-3.1-8B/", True),
        ("tiny-chat-model", "/work/.cache/tiny-chat-model", True),
        ("meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-7B", False),
        (None, "anything", True),
    ],
)
def test_an_adapter_fits_the_model_it_was_made_for(base: str | None, served: str, fits: bool) -> None:
    assert made_for(base, served) is fits


def test_an_adapter_config_is_read_or_said_why_not() -> None:
    assert adapter_config('{"base_model_name_or_path": "m", "r": 8}') == ("m", 8)
    assert adapter_config('{"r": "8"}') == (None, None)
    with pytest.raises(ValueError, match=r"adapter_config\.json is not JSON"):
        adapter_config("{")
    with pytest.raises(ValueError, match="not a JSON object"):
        adapter_config("[]")


def test_lora_is_enabled_unless_the_extra_args_already_do() -> None:
    assert lora_serve_args("", None, None) == ["--enable-lora"]
    assert lora_serve_args("--dtype bfloat16", 2, 64) == ["--enable-lora", "--max-loras", "2", "--max-lora-rank", "64"]
    assert lora_serve_args("--enable-lora --max-lora-rank 8", 2, 64) == ["--max-loras", "2"]
