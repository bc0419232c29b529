"""The fake vLLM's answers, route by route, in the shapes vLLM's OpenAI-compatible server gives them; and its
speech routes' multipart forms, read with the standard library's email parser."""

import email.parser
import email.policy
import time
from typing import Any


def completion(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    prompt_tokens = sum(len(str(message.get("content", "")).split()) + 4 for message in body.get("messages", []))
    max_tokens = body.get("max_tokens") or 512
    completion_tokens = min(tokens, max_tokens)
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(["word"] * completion_tokens)},
                "finish_reason": "length" if completion_tokens == max_tokens else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def text_completion(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    count = min(tokens, body.get("max_tokens") or 16)
    return {
        "id": f"cmpl-fake-{time.monotonic_ns()}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": " word" * count, "finish_reason": "length", "logprobs": None}],
        "usage": {"prompt_tokens": 2, "completion_tokens": count, "total_tokens": 2 + count},
    }


def score(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    documents = body.get("documents") or body.get("items") or body.get("text_2") or body.get("data_2")
    count = len(documents) if isinstance(documents, list) else 1
    data = [{"index": i, "object": "score", "score": 1.0 / (i + 2)} for i in range(count)]
    return {"id": "score-fake", "object": "list", "model": model, "data": data, "usage": {"prompt_tokens": count}}


def rerank(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    documents = body["documents"] if isinstance(body["documents"], list) else [body["documents"]]
    results = [
        {"index": i, "document": {"text": text}, "relevance_score": 1.0 / (i + 2)} for i, text in enumerate(documents)
    ]
    return {"id": "rerank-fake", "model": model, "usage": {"total_tokens": len(documents)}, "results": results}


def embeddings(body: dict[str, Any], model: str, tokens: int = 0) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return {
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))],
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
    }


def read_form(content: bytes, content_type: str) -> dict[str, Any]:
    """A multipart form's fields (a `name[]` field as a list under `name`), its `file` as what vLLM would see."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + content
    )
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if name == "file":
            form["file"] = {"filename": part.get_filename(), "content_type": part.get_content_type(), "data": data}
        elif isinstance(name, str) and name.endswith("[]"):
            form.setdefault(name[:-2], []).append(data.decode())
        elif isinstance(name, str):
            form[name] = data.decode()
    return form


LANGUAGES = ("en", "de", "fr", "es", "it", "ja", "zh")


def speech_refusal(route: str, form: dict[str, Any]) -> str | None:
    """vLLM's 400s for a speech route: audio it cannot decode (here: not a WAV), a language it does not know."""
    if not route.startswith("/v1/audio/"):
        return None
    if not form.get("file", {}).get("data", b"").startswith(b"RIFF"):
        return "Invalid or corrupted audio data"
    if form.get("language") not in (None, *LANGUAGES):
        return f"Unsupported language: {form['language']!r}. Language should be one of: {list(LANGUAGES)}."
    return None


def speech(form: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    """vLLM's speech-to-text answer: the text and the audio's duration; segments and words in verbose_json."""
    seconds = max(1, len(form["file"]["data"]) // 32000)  # 16 kHz, 16-bit mono
    text = " ".join(["word"] * min(tokens, int(form.get("max_completion_tokens") or tokens)))
    if form.get("response_format") != "verbose_json":
        return {"text": text, "usage": {"type": "duration", "seconds": seconds}}
    answer: dict[str, Any] = {"task": "transcribe", "language": form.get("language") or "en", "duration": seconds}
    answer |= {"text": text, "segments": [{"id": 0, "start": 0.0, "end": float(seconds), "text": text}]}
    if "word" in form.get("timestamp_granularities", []):
        answer["words"] = [{"word": "word", "start": 0.0, "end": 0.5}]
    return answer


def responses(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    """OpenAI's Response object, as vLLM's /v1/responses gives it."""
    count = min(tokens, body.get("max_output_tokens") or tokens)
    text = " ".join(["word"] * count)
    item = {"id": "msg-fake", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip
    return {
        "id": f"resp-fake-{time.monotonic_ns()}", "object": "response", "created_at": int(time.time()),
        "model": model, "status": "completed", "output": [item], "parallel_tool_calls": True,
        "tool_choice": "auto", "tools": [], "store": body.get("store", True),
        "usage": {"input_tokens": 3, "output_tokens": count, "total_tokens": 3 + count,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
    }  # fmt: skip


def messages(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    """Anthropic's Message object, as vLLM's /v1/messages gives it."""
    count = min(tokens, body["max_tokens"])
    return {
        "id": f"msg_fake{time.monotonic_ns()}", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": " ".join(["word"] * count)}],
        "stop_reason": "max_tokens" if count == body["max_tokens"] else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": count},
    }  # fmt: skip


def chat_batch(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    """One choice per conversation, indexed in order, as vLLM's /v1/chat/completions/batch answers."""
    answers = [completion({**body, "messages": conversation}, model, tokens) for conversation in body["messages"]]
    choices = [{**answer["choices"][0], "index": i} for i, answer in enumerate(answers)]
    usage = {name: sum(answer["usage"][name] for answer in answers) for name in answers[0]["usage"]}
    return {**answers[0], "choices": choices, "usage": usage}


def tokenize(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    words = str(body.get("prompt") or " ".join(str(m.get("content")) for m in body["messages"])).split()
    ids = [len(word) for word in words]
    return {"count": len(ids), "max_model_len": 512, "tokens": ids} | (
        {"token_strs": words} if body.get("return_token_strs") else {}
    )


def detokenize(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    return {"prompt": " ".join("x" * token for token in body["tokens"])}


def classify(body: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    inputs = body.get("input") or [body.get("messages")]
    count = len(inputs) if isinstance(inputs, list) and not isinstance(inputs[0], int) else 1
    data = [{"index": i, "label": "positive", "probs": [0.2, 0.8], "num_classes": 2} for i in range(count)]
    return {"id": "classify-fake", "object": "list", "created": int(time.time()), "model": model, "data": data,
            "usage": {"prompt_tokens": count, "total_tokens": count}}  # fmt: skip


ANSWERS = {
    "/v1/responses": responses,
    "/v1/messages": messages,
    "/v1/chat/completions/batch": chat_batch,
    "/tokenize": tokenize,
    "/detokenize": detokenize,
    "/classify": classify,
    "/v1/chat/completions": completion,
    "/v1/completions": text_completion,
    "/v1/embeddings": embeddings,
    "/v1/score": score,
    "/v1/rerank": rerank,
    "/v1/audio/transcriptions": speech,
    "/v1/audio/translations": speech,
}


def openapi_document(fields: dict[str, set[str]], other_paths: tuple[str, ...] = ("/health", "/v1/models")) -> Any:
    """An OpenAPI document as vLLM's FastAPI app gives it, for routes whose requests take `fields` (by route)."""
    schemas = {
        route.strip("/").replace("/", "_"): {"properties": {name: {} for name in names}}
        for route, names in fields.items()
    }
    paths: dict[str, Any] = {
        route: {
            "post": {
                "requestBody": {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
            }
        }
        for route, name in zip(fields, schemas, strict=True)
    }
    return {
        "openapi": "3.1.0",
        "paths": paths | {path: {"get": {}} for path in other_paths},
        "components": {"schemas": schemas},
    }
