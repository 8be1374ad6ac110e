"""Drives a running edgeway server with the frameworks people build on:
langchain-openai, llama-index's OpenAI-like LLM and litellm (as a client
library). Each gets plain chat, streaming, structured output and tools.

Usage: python framework_clients.py BASE_URL MODEL
Exits non-zero with a message on the first mismatch.
"""

import json
import os
import sys
import time
from typing import Literal

# litellm fetches its price list from the internet at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pydantic


class Inspection(pydantic.BaseModel):
    """What an inspection box wants back."""

    defect: bool
    kind: Literal["scratch", "crack", "stain", "none"]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

REPORT = "The camera shows a long scratch on panel 7. Report it."


def check_langchain(base: str, model: str) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=base, api_key="unused", model=model, temperature=0, max_tokens=40)
    reply = llm.invoke("Say hello in one word.")
    assert isinstance(reply.content, str) and reply.content, reply
    streamed = "".join(chunk.content for chunk in llm.stream("Count to three."))
    assert streamed, "langchain: empty stream"

    report = llm.with_structured_output(Inspection).invoke(REPORT)
    assert isinstance(report, Inspection), report

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return f"sunny in {city}"

    called = llm.bind_tools([get_weather], tool_choice="required").invoke("What is the weather in Paris?")
    assert called.tool_calls and called.tool_calls[0]["name"] == "get_weather", called
    assert isinstance(called.tool_calls[0]["args"].get("city"), str), called.tool_calls
    print("langchain-openai: ok")


def check_llama_index(base: str, model: str) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.core.prompts import PromptTemplate
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model=model, api_base=base, api_key="unused", is_chat_model=True, is_function_calling_model=True,
        context_window=2048, temperature=0, max_tokens=40,
        # llama-index's own default is 60 s, less than a busy 2-core box may need.
        timeout=600,
    )
    completed = llm.complete("Say hello in one word.")
    assert str(completed), completed
    chatted = llm.chat([ChatMessage(role="user", content="Say hello in one word.")])
    assert chatted.message.content, chatted
    streamed = "".join(delta.delta or "" for delta in llm.stream_chat([ChatMessage(role="user", content="Count to three.")]))
    assert streamed, "llama-index: empty stream"

    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return f"sunny in {city}"

    weather = FunctionTool.from_defaults(fn=get_weather)
    response = llm.chat_with_tools([weather], user_msg="What is the weather in Paris?", tool_required=True)
    calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    assert calls[0].tool_name == "get_weather" and isinstance(calls[0].tool_kwargs.get("city"), str), calls

    # Structured prediction on a function-calling model goes through a required tool call.
    report = llm.structured_predict(Inspection, PromptTemplate("{text}"), text=REPORT)
    assert isinstance(report, Inspection), report
    print("llama-index-llms-openai-like: ok")


def check_litellm(base: str, model: str) -> None:
    import litellm

    common = {"model": f"openai/{model}", "api_base": base, "api_key": "unused", "temperature": 0}
    reply = litellm.completion(messages=[{"role": "user", "content": "Say hello in one word."}], max_tokens=20, **common)
    assert reply.choices[0].message.content, reply
    assert reply.usage.completion_tokens > 0, reply.usage
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in litellm.completion(
            messages=[{"role": "user", "content": "Count to three."}], max_tokens=20, stream=True, **common)
    )
    assert streamed, "litellm: empty stream"

    structured = litellm.completion(
        messages=[{"role": "user", "content": REPORT}], response_format=Inspection, max_tokens=60, **common)
    Inspection.model_validate_json(structured.choices[0].message.content)

    called = litellm.completion(
        messages=[{"role": "user", "content": "What is the weather in Paris?"}], tools=[WEATHER_TOOL],
        tool_choice="required", max_tokens=60, **common)
    calls = called.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather", called
    assert isinstance(json.loads(calls[0].function.arguments).get("city"), str), calls
    assert called.choices[0].finish_reason == "tool_calls", called
    print("litellm: ok")


def main() -> None:
    base, model = sys.argv[1], sys.argv[2]
    for check in (check_langchain, check_llama_index, check_litellm):
        started = time.monotonic()
        print(f"{check.__name__}: starting", flush=True)
        check(base, model)
        print(f"{check.__name__}: {time.monotonic() - started:.1f} s", flush=True)
    print("framework clients: all checks passed")


if __name__ == "__main__":
    main()
