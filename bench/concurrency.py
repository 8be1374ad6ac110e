"""Drives OpenAI-compatible servers with N concurrent streaming chats and prints one table.

The same client, prompts and settings for every server: a shared system prompt, user prompts of
mixed lengths (short, medium, long, drawn with a fixed seed), `max_tokens` generated with
`ignore_eos`, so each request makes the same number of tokens on every server. Servers are run
one after another (never at once: the box has two cores), level by level, so that drift in the
machine's speed affects both alike.

Usage: concurrency.py --server NAME=URL [--server NAME=URL ...] [--levels 1,4,8,16] [--rounds 3]
                      [--requests-per-stream 2] [--max-tokens 64] [--json OUT]
"""

import argparse
import asyncio
import json
import random
import statistics
import time

import httpx

SYSTEM = (
    "You are the assistant of a factory's maintenance team. Answer briefly and precisely, "
    "name the part and the step, and say when a task needs a second person or a lockout. "
) * 4

TOPICS = [
    "the conveyor belt drifting to one side",
    "a pneumatic cylinder that moves too slowly",
    "a label printer that skips every other label",
    "a motor that trips its breaker after ten minutes",
    "a camera that sees glare on shiny parts",
    "a torque wrench that needs calibration",
]


def prompts(count, seed=7):
    """`count` user prompts, each different from every other of this seed: a third short, a third
    medium, a third long. Only the system prompt is shared, as in real traffic; a prompt repeated
    whole would measure which server happens to keep that prompt's cache, not scheduling."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        topic = rng.choice(TOPICS)
        machine = f"Machine {rng.randint(100, 999)}-{i}: "
        kind = i % 3
        if kind == 0:
            out.append(f"{machine}what should I check first for {topic}?")
        elif kind == 1:
            out.append(f"{machine}write a checklist for {topic}. " + "Include safety steps and tools. " * 12)
        else:
            log = " ".join(f"[{t:04d}] sensor {rng.randint(1, 9)} reads {rng.random():.3f}" for t in range(60))
            out.append(f"{machine}here is the log for {topic}: {log}. What does it show?")
    return out


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def one_request(client, url, model, prompt, max_tokens):
    """Streams one chat; returns (ttft_s, [gaps_s], tokens)."""
    body = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
    }
    start = time.perf_counter()
    first = None
    last = None
    gaps = []
    tokens = 0
    async with client.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers={"connection": "close"}
    ) as response:
        if response.status_code != 200:
            text = await response.aread()
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {text[:200]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or []
            if not choices or not choices[0].get("delta", {}).get("content"):
                continue
            now = time.perf_counter()
            if first is None:
                first = now
            else:
                gaps.append(now - last)
            last = now
            tokens += 1
    return (first - start) if first else float("nan"), gaps, tokens


async def level(url, model, streams, requests_per_stream, max_tokens, texts):
    """`streams` clients, each sending `requests_per_stream` requests back to back."""
    # A new connection per request: llama-server (cpp-httplib) closes kept-alive connections on its
    # own schedule, and a request sent on one it has just closed fails; both servers alike.
    limits = httpx.Limits(max_connections=streams + 4, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:
        # One untimed request warms the server (first-use allocations, page cache).
        await one_request(client, url, model, texts[0], 4)
        results = []

        async def worker(index):
            for r in range(requests_per_stream):
                prompt = texts[(index * requests_per_stream + r) % len(texts)]
                results.append(await one_request(client, url, model, prompt, max_tokens))

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(streams)))
        wall = time.perf_counter() - start
    tokens = sum(r[2] for r in results)
    return {
        "streams": streams,
        "requests": len(results),
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "ttfts": [r[0] for r in results],
        "gaps": [g for r in results for g in r[1]],
    }


T975 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(values):
    """Mean and the half-width of its 95 % t interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", action="append", required=True, help="NAME=URL")
    parser.add_argument("--model", default="bench", help="the model field sent")
    parser.add_argument("--levels", default="1,4,8,16")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per level, servers alternating")
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--json")
    args = parser.parse_args()
    servers = [s.split("=", 1) for s in args.server]
    levels = [int(x) for x in args.levels.split(",")]
    runs = []
    for streams in levels:
        for round_ in range(args.rounds):
            # New prompts for every level and round, the same for both servers.
            texts = prompts(48, seed=1000 * streams + round_)
            order = servers if round_ % 2 == 0 else list(reversed(servers))
            for name, url in order:
                row = asyncio.run(level(url, args.model, streams, args.requests_per_stream, args.max_tokens, texts))
                row.update(server=name, round=round_)
                runs.append(row)
                print(f"  {name:>12} x{streams:<3} round {round_ + 1}: {row['tokens_per_s']:7.1f} tok/s", flush=True)
    print()
    print(
        f"{args.rounds} rounds per level, {args.max_tokens} tokens per request, "
        f"{args.requests_per_stream} requests per stream; percentiles over every request of every round"
    )
    print()
    print("| streams | server | tokens/s (95 % CI) | TTFT p50 (ms) | TTFT p99 (ms) | ITL p50 (ms) | ITL p99 (ms) |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for streams in levels:
        for name, _ in servers:
            mine = [r for r in runs if r["server"] == name and r["streams"] == streams]
            mean, half = interval([r["tokens_per_s"] for r in mine])
            ttfts = [t for r in mine for t in r["ttfts"]]
            gaps = [g for r in mine for g in r["gaps"]]
            row = {
                "streams": streams,
                "server": name,
                "tokens_per_s": mean,
                "tokens_per_s_ci": half,
                "ttft_p50_ms": percentile(ttfts, 50) * 1000,
                "ttft_p99_ms": percentile(ttfts, 99) * 1000,
                "itl_p50_ms": percentile(gaps, 50) * 1000,
                "itl_p99_ms": percentile(gaps, 99) * 1000,
            }
            summary.append(row)
            print(
                f"| {streams} | {name} | {mean:.1f} ± {half:.1f} | {row['ttft_p50_ms']:.0f} | "
                f"{row['ttft_p99_ms']:.0f} | {row['itl_p50_ms']:.1f} | {row['itl_p99_ms']:.1f} |"
            )
    if len(servers) == 2:
        (a, _), (b, _) = servers
        print()
        print(f"| streams | {a} ÷ {b} tokens/s (95 % CI over rounds) | {a} ÷ {b} TTFT p99 |")
        print("|---|---|---|")
        for streams in levels:
            ratios = []
            for round_ in range(args.rounds):
                ra = next(r for r in runs if r["server"] == a and r["streams"] == streams and r["round"] == round_)
                rb = next(r for r in runs if r["server"] == b and r["streams"] == streams and r["round"] == round_)
                ratios.append(ra["tokens_per_s"] / rb["tokens_per_s"])
            mean, half = interval(ratios)
            sa = next(r for r in summary if r["server"] == a and r["streams"] == streams)
            sb = next(r for r in summary if r["server"] == b and r["streams"] == streams)
            print(f"| {streams} | {mean:.2f}× ± {half:.2f} | {sa['ttft_p99_ms'] / sb['ttft_p99_ms']:.2f}× |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "runs": runs}, f, indent=2)


if __name__ == "__main__":
    main()
