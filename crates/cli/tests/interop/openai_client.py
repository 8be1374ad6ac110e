"""Drives a running edgeway server with the official `openai` Python client.

Usage: python openai_client.py BASE_URL MODEL
Exits non-zero with a message on the first mismatch.
"""

import json
import sys
from typing import Literal

import openai
import pydantic


class Inspection(pydantic.BaseModel):
    """What an inspection box wants back: the client turns it into a strict JSON schema."""

    defect: bool
    kind: Literal["scratch", "crack", "stain", "none"]
    severity: int


def main() -> None:
    base_url, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0)

    ids = [m.id for m in client.models.list().data]
    assert model in ids, f"models.list() gave {ids}"

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    reply = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=24, seed=7)
    text = reply.choices[0].message.content
    assert "Paris" in text, f"chat answer: {text!r}"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0

    stream = client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=24, seed=7, stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert "".join(pieces) == text, f"stream {''.join(pieces)!r} != {text!r}"
    assert finish == reply.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == reply.usage.completion_tokens

    logprobs = client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=3, logprobs=True, top_logprobs=2
    )
    content = logprobs.choices[0].logprobs.content
    assert content and len(content[0].top_logprobs) == 2

    completion = client.completions.create(model=model, prompt="The capital of France is", max_tokens=6, temperature=0)
    assert "Paris" in completion.choices[0].text, completion.choices[0].text

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("an unknown model must fail")
    except openai.NotFoundError as error:
        assert error.status_code == 404

    try:
        client.chat.completions.create(model=model, messages=messages, temperature=5)
        raise AssertionError("a bad temperature must fail")
    except openai.BadRequestError as error:
        assert "temperature" in str(error)

    # Embeddings: the client asks for base64 by default and decodes it itself.
    embedded = client.embeddings.create(model="all-minilm-l6-v2", input=["a red apple", "a green apple", "tax law"])
    vectors = [item.embedding for item in embedded.data]
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2]), "similar texts must be closer"
    floats = client.embeddings.create(model="all-minilm-l6-v2", input="a red apple", encoding_format="float")
    assert abs(dot(floats.data[0].embedding, vectors[0]) - 1.0) < 1e-4
    assert embedded.usage.prompt_tokens > 0

    # Structured output: the client sends the model's JSON schema and parses the answer into it.
    parsed = client.chat.completions.parse(
        model=model, temperature=0, max_tokens=120, response_format=Inspection,
        messages=[{"role": "user", "content": "The camera shows a long scratch on the panel. Report it."}],
    )
    report = parsed.choices[0].message.parsed
    assert isinstance(report, Inspection), f"parse() gave {parsed.choices[0].message.content!r}"
    assert report.kind in ("scratch", "crack", "stain", "none")

    check_tools(client, model)

    print("openai client: all checks passed")


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                       "required": ["city", "unit"]},
    }},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }},
]


def check_tools(client, model: str) -> None:
    """A two-tool conversation round trip, and streamed parallel calls with distinct indices."""
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(
        model=model, messages=messages, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=80)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    calls = choice.message.tool_calls
    assert calls and calls[0].type == "function" and calls[0].function.name in ("get_weather", "get_time"), calls
    json.loads(calls[0].function.arguments)
    # The assistant message goes back as the SDK returned it, then one result per call.
    messages.append(choice.message.model_dump(exclude_none=True))
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21})})
    messages.append({"role": "user", "content": "And what time is it in Tokyo?"})
    second = client.chat.completions.create(
        model=model, messages=messages, tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}}, temperature=0, max_tokens=80)
    assert second.choices[0].message.tool_calls[0].function.name == "get_time", second
    # Once the results are in, the model may answer in text.
    third = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, temperature=0, max_tokens=30)
    assert third.choices[0].message.content is not None or third.choices[0].message.tool_calls, third

    # Streamed parallel calls: the SDK's stream helper joins the pieces by index.
    with client.chat.completions.stream(
        model=model, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=120,
        messages=[{"role": "user", "content": "Get the weather for Paris, Rome and Oslo."}],
    ) as stream:
        indices = [call.index for event in stream if event.type == "chunk"
                   for call in (event.chunk.choices[0].delta.tool_calls or [] if event.chunk.choices else [])]
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls
    assert len(streamed) >= 2, f"expected parallel calls, got {streamed}"
    assert indices == list(range(len(streamed))), indices
    assert len({call.id for call in streamed}) == len(streamed)
    for call in streamed:
        json.loads(call.function.arguments)


if __name__ == "__main__":
    main()
