"""Drives a running edgeway server with the official `ollama` Python client.

Usage: python ollama_client.py HOST MODEL EMBEDDING_MODEL
(HOST as `ollama.Client(host=...)` takes it, e.g. http://127.0.0.1:8080)
Exits non-zero with a message on the first mismatch.
"""

import json
import sys
from typing import Literal

import httpx
import ollama
import pydantic


class Inspection(pydantic.BaseModel):
    """What an inspection box wants back: its JSON schema goes in `format`."""

    defect: bool
    kind: Literal["scratch", "crack", "stain", "none"]
    severity: int


def main() -> None:
    host, model, embedding_model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = ollama.Client(host=host)

    # The probe and the version: the client library has no call for them, tools send them raw.
    assert httpx.get(host + "/").text == "Ollama is running"
    version = httpx.get(host + "/api/version").json()["version"]
    assert tuple(int(part) for part in version.split(".")) >= (0, 12, 0), f"version {version}"

    listed = {m.model: m for m in client.list().models}
    assert f"{model}:latest" in listed and f"{embedding_model}:latest" in listed, f"list() gave {list(listed)}"
    assert listed[f"{model}:latest"].details.format == "gguf"
    assert listed[f"{model}:latest"].size > 0 and listed[f"{model}:latest"].modified_at is not None

    shown = client.show(model)
    assert "completion" in shown.capabilities, shown.capabilities
    context = [v for k, v in shown.modelinfo.items() if k.endswith(".context_length")]
    assert context and context[0] > 0, shown.modelinfo
    assert "embedding" in client.show(embedding_model).capabilities

    running = [m.model for m in client.ps().models]
    assert f"{model}:latest" in running, f"ps() gave {running}"

    # Ollama's load call: no prompt, nothing generated.
    loaded = client.generate(model=model)
    assert loaded.done and loaded.done_reason == "load", loaded

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    options = {"temperature": 0, "num_predict": 24, "seed": 7}
    reply = client.chat(model=model, messages=messages, options=options, stream=False)
    text = reply.message.content
    assert "Paris" in text, f"chat answer: {text!r}"
    assert reply.message.role == "assistant" and reply.done
    assert reply.done_reason in ("stop", "length"), reply.done_reason
    assert reply.eval_count > 0 and reply.prompt_eval_count > 0 and reply.total_duration > 0, reply

    pieces, last = [], None
    for part in client.chat(model=f"{model}:latest", messages=messages, options=options, stream=True):
        pieces.append(part.message.content)
        last = part
    assert "".join(pieces) == text, f"stream {''.join(pieces)!r} != {text!r}"
    assert last.done and last.done_reason == reply.done_reason and last.eval_count == reply.eval_count, last

    generated = client.generate(model=model, prompt="What is the capital of France?", options=options)
    assert "Paris" in generated.response, f"generate answer: {generated.response!r}"
    streamed = "".join(p.response for p in client.generate(
        model=model, prompt="What is the capital of France?", options=options, stream=True))
    assert streamed == generated.response, f"stream {streamed!r} != {generated.response!r}"

    # Structured output: the model's JSON schema in `format`, the answer validated against it.
    report = client.chat(
        model=model, stream=False, format=Inspection.model_json_schema(),
        options={"temperature": 0, "num_predict": 120},
        messages=[{"role": "user", "content": "The camera shows a long scratch on the panel. Report it."}],
    )
    inspection = Inspection.model_validate_json(report.message.content)
    assert inspection.kind in ("scratch", "crack", "stain", "none")
    as_json = client.generate(model=model, prompt="Give the capital of France as a JSON object with the key city.",
                              format="json", options={"temperature": 0, "num_predict": 100})
    assert as_json.done_reason == "stop", f"cut short: {as_json.response!r}"
    assert isinstance(json.loads(as_json.response), dict), as_json.response

    # Tools: Ollama's shape (no tool_choice, calls with object arguments, `tool` results named
    # by function). A 135M model rarely calls on its own; any call it makes must be well formed.
    def get_weather(city: str) -> str:
        """Current weather in a city.

        Args:
          city: The city's name
        """
        return f"sunny in {city}"

    asked = client.chat(model=model, stream=False, tools=[get_weather], options={"temperature": 0, "num_predict": 60},
                        messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    for call in asked.message.tool_calls or []:
        assert call.function.name == "get_weather" and isinstance(call.function.arguments["city"], str), call
    history = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"},
    ]
    answered = client.chat(model=model, stream=False, tools=[get_weather], messages=history,
                           options={"temperature": 0, "num_predict": 30})
    assert answered.done and (answered.message.content or answered.message.tool_calls), answered

    embedded = client.embed(model=embedding_model, input=["a red apple", "a green apple", "tax law"])
    vectors = embedded.embeddings
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2]), "similar texts must be closer"
    assert embedded.prompt_eval_count > 0
    legacy = client.embeddings(model=embedding_model, prompt="a red apple").embedding
    assert abs(dot(legacy, vectors[0]) - 1.0) < 1e-4

    try:
        client.chat(model="no-such-model", messages=messages)
        raise AssertionError("an unknown model must fail")
    except ollama.ResponseError as error:
        assert error.status_code == 404 and error.error == "model 'no-such-model' not found", error
    try:
        client.chat(model=model, messages=messages, options={"temperature": 5}, stream=False)
        raise AssertionError("a bad temperature must fail")
    except ollama.ResponseError as error:
        assert error.status_code == 400 and "temperature" in error.error, error

    print("ollama client: all checks passed")


if __name__ == "__main__":
    main()
