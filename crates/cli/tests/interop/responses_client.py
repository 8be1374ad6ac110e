"""Drives a running edgeway server's Responses API with the official `openai`
client and with the OpenAI Agents SDK (`openai-agents`), unchanged.

Usage: python responses_client.py BASE_URL MODEL
Exits non-zero with a message on the first mismatch.
"""

import asyncio
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


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def check_client(client: openai.OpenAI, model: str) -> None:
    """Plain text, streamed text, structured output, a function-call round trip, and the 400s."""
    question = "What is the capital of France?"
    reply = client.responses.create(model=model, input=question, temperature=0, max_output_tokens=24)
    assert reply.object == "response" and reply.id.startswith("resp_"), reply
    assert reply.status in ("completed", "incomplete"), reply.status
    text = reply.output_text
    assert text.strip(), f"no text in {reply}"
    assert reply.usage.output_tokens > 0 and reply.usage.input_tokens > 0, reply.usage
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens

    # Instructions and typed items.
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": question}]}]
    typed = client.responses.create(
        model=model, instructions="Answer in one word.", input=items, temperature=0, max_output_tokens=8)
    assert typed.instructions == "Answer in one word." and typed.output_text.strip(), typed

    # Streamed: the stream helper checks the events' order and rebuilds the response from them.
    pieces, types = [], []
    with client.responses.stream(model=model, input=question, temperature=0, max_output_tokens=24) as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                pieces.append(event.delta)
        final = stream.get_final_response()
    assert "".join(pieces) == text, f"stream {''.join(pieces)!r} != {text!r}"
    assert final.output_text == text and final.id.startswith("resp_")
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] in ("response.completed", "response.incomplete"), types

    # stream=True hands out the raw events: numbered 0, 1, 2…
    raw = client.responses.create(model=model, input=question, temperature=0, max_output_tokens=8, stream=True)
    numbers = [event.sequence_number for event in raw]
    assert numbers == list(range(len(numbers))), numbers

    # Structured output: the client sends the model's schema as text.format and parses the answer into it.
    parsed = client.responses.parse(
        model=model, temperature=0, max_output_tokens=120, text_format=Inspection,
        input="The camera shows a long scratch on the panel. Report it.",
    )
    report = parsed.output_parsed
    assert isinstance(report, Inspection), f"parse() gave {parsed.output_text!r}"

    # A required call, its result sent back with the whole conversation, then the answer.
    conversation = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.responses.create(
        model=model, input=conversation, tools=[WEATHER], tool_choice="required", temperature=0,
        max_output_tokens=80)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather", first.output
    assert isinstance(json.loads(calls[0].arguments)["city"], str), calls[0].arguments
    conversation += [item.model_dump(exclude_none=True) for item in first.output]
    for call in calls:
        conversation.append({"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"})
    answer = client.responses.create(
        model=model, input=conversation, tools=[WEATHER], tool_choice="none", temperature=0, max_output_tokens=30)
    assert answer.output_text.strip(), answer

    # The same call streamed: the helper joins the arguments' pieces.
    with client.responses.stream(
        model=model, input="Weather in Rome?", tools=[WEATHER], tool_choice="required", temperature=0,
        max_output_tokens=80,
    ) as stream:
        done = [event.arguments for event in stream if event.type == "response.function_call_arguments.done"]
        final = stream.get_final_response()
    streamed = [item for item in final.output if item.type == "function_call"]
    assert streamed and done == [call.arguments for call in streamed], (done, streamed)
    json.loads(streamed[0].arguments)

    for bad, needle in (
        ({"previous_response_id": reply.id}, "stateless"),
        ({"tools": [{"type": "web_search"}]}, "web_search"),
    ):
        try:
            client.responses.create(model=model, input=question, **bad)
            raise AssertionError(f"{bad} must fail")
        except openai.BadRequestError as error:
            assert needle in str(error), error
    print("openai client: responses checks passed")


def check_agent(base_url: str, model: str) -> None:
    """A one-tool agent loop of the Agents SDK, which speaks the Responses API by default."""
    from agents import Agent, ModelSettings, Runner, function_tool, set_tracing_disabled
    from agents.models.openai_responses import OpenAIResponsesModel

    set_tracing_disabled(True)
    called, sent = [], []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        called.append(city)
        return f"It is sunny and 21 C in {city}."

    async def record(request) -> None:
        if request.url.path.endswith("/responses"):
            sent.append(json.loads(request.content))

    def make_agent() -> Agent:
        # One client per event loop: run_sync and asyncio.run each run their own.
        http_client = openai.DefaultAsyncHttpxClient(event_hooks={"request": [record]})
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, http_client=http_client)
        return Agent(
            name="weather",
            instructions="You tell people the weather. Call get_weather, then answer with what it says.",
            tools=[get_weather],
            model=OpenAIResponsesModel(model=model, openai_client=client),
            # Forced on the first turn; the SDK's reset_tool_choice (on by default) lifts it once the tool ran.
            model_settings=ModelSettings(tool_choice="required", temperature=0),
        )

    agent = make_agent()
    result = Runner.run_sync(agent, "What is the weather in Paris?", max_turns=4)
    assert called, "the agent never called its tool"
    assert isinstance(result.final_output, str) and result.final_output.strip(), result.final_output
    assert sent[0].get("tool_choice") == "required", sent[0]
    assert "tool_choice" not in sent[-1], f"reset_tool_choice should have lifted it: {sent[-1]}"
    kinds = [item.get("type") for item in sent[-1]["input"]]
    assert "function_call" in kinds and "function_call_output" in kinds, kinds
    print(f"agents: {len(sent)} model calls, tool called with {called}, final output {result.final_output!r}")

    # An agent without tools (the SDK sends `tools: []`).
    plain = Agent(
        name="plain", instructions="Answer in a few words.",
        model=OpenAIResponsesModel(
            model=model, openai_client=openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)),
        model_settings=ModelSettings(temperature=0, max_tokens=200),
    )
    plain_output = Runner.run_sync(plain, "What is the capital of France?").final_output
    assert isinstance(plain_output, str) and plain_output.strip(), plain_output

    # Streamed, the way the SDK's run_streamed drives the model.
    streamed_calls = len(called)

    async def run_streamed() -> str:
        run = Runner.run_streamed(make_agent(), "What is the weather in Oslo?", max_turns=4)
        async for _ in run.stream_events():
            pass
        return run.final_output

    final = asyncio.run(run_streamed())
    assert len(called) > streamed_calls, "the streamed agent never called its tool"
    assert isinstance(final, str) and final.strip(), final
    print("agents: checks passed")


def main() -> None:
    base_url, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0)
    check_client(client, model)
    check_agent(base_url, model)
    print("responses: all checks passed")


if __name__ == "__main__":
    main()
