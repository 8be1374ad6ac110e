"""Soak: mixed traffic against a running `edgeway serve` for a long time, with cloud faults,
sampling the server's memory, descriptors, threads and query-log size every few seconds.

Traffic (weights): chat 40, streamed chat 25, embeddings 15, chat with retrieval 10, a key over
its quota 5, a malformed body 5. Every answer must be whole (a stream ends with [DONE]) or a
well-formed error (a JSON body with error.message); anything else is counted as broken. Every
FAULT_EVERY seconds the cloud process is killed and started again 30 s later.

Writes OUT/soak.csv and OUT/soak.svg and prints a table: the samples at the end of warm-up
and at the end, and their difference.

Usage: soak.py --url URL --pid PID --log DB --key KEY --limited-key KEY --cloud-cmd "..."
               [--duration 3600] [--fault-every 300] [--workers 4] [--out DIR]
"""

import argparse
import asyncio
import json
import os
import random
import shlex
import subprocess
import time

import httpx

WEIGHTS = [("chat", 40), ("stream", 25), ("embed", 15), ("rag", 10), ("quota", 5), ("malformed", 5)]
QUESTIONS = [
    "What should I check when the belt drifts?",
    "How often is the belt tension checked?",
    "Say hello.",
    "Explain what a PLC does in one sentence.",
    "Write a Python function that adds two numbers.",
    "What is 17 times 23?",
]


def sample(pid, log):
    status = open(f"/proc/{pid}/status").read()
    field = lambda name: int(next(l for l in status.splitlines() if l.startswith(name)).split()[1])
    log_bytes = sum(os.path.getsize(p) for p in (log, log + "-wal") if os.path.exists(p))
    return {
        "rss_mib": field("VmRSS:") / 1024,
        "threads": field("Threads:"),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "log_mib": log_bytes / 2**20,
    }


def well_formed_error(response):
    try:
        return bool(response.json()["error"]["message"])
    except Exception:
        return False


async def one(client, kind, args, rng, counts):
    """Sends one request of `kind`; returns whether its answer was whole or a well-formed error."""
    question = rng.choice(QUESTIONS)
    headers = {"Authorization": f"Bearer {args.key}"}
    chat = {"messages": [{"role": "user", "content": question}], "max_tokens": 24}
    if kind == "stream":
        chat["stream"] = True
        async with client.stream("POST", "/v1/chat/completions", json=chat, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                return well_formed_error(response)
            lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
            if bool(lines) and lines[-1] == "data: [DONE]":
                return True
            # A stream cut by a failure after it started (the cloud killed mid-answer) must end
            # with an error event in OpenAI's shape: a well-formed error, counted apart.
            if lines and '"error"' in lines[-1]:
                try:
                    if json.loads(lines[-1][6:])["error"]["message"]:
                        counts["stream_error_events"] = counts.get("stream_error_events", 0) + 1
                        return True
                except (ValueError, KeyError, TypeError):
                    pass
            # What a broken stream ended with, for the report.
            counts.setdefault("errors", []).append(f"stream ended without [DONE]: {lines[-2:]!r}"[:300])
            return False
    if kind == "embed":
        response = await client.post("/v1/embeddings", json={"input": [question, question[::-1]]}, headers=headers)
        return len(response.json().get("data", [])) == 2 if response.status_code == 200 else well_formed_error(response)
    if kind == "rag":
        chat["collection"] = "manuals"
    if kind == "quota":
        headers = {"Authorization": f"Bearer {args.limited_key}"}
    if kind == "malformed":
        response = await client.post(
            "/v1/chat/completions", content=b'{"messages": [', headers={**headers, "content-type": "application/json"}
        )
        return response.status_code == 400 and well_formed_error(response)
    response = await client.post("/v1/chat/completions", json=chat, headers=headers)
    if response.status_code == 200:
        return response.json()["choices"][0]["message"]["content"] is not None
    if well_formed_error(response):
        return True
    counts.setdefault("errors", []).append(f"{kind}: HTTP {response.status_code} {response.text[:200]!r}")
    return False


async def traffic(args, deadline, counts):
    rng = random.Random(11)
    kinds = [k for k, w in WEIGHTS for _ in range(w)]
    async with httpx.AsyncClient(base_url=args.url, timeout=httpx.Timeout(300.0)) as client:

        async def worker():
            while time.monotonic() < deadline:
                kind = rng.choice(kinds)
                try:
                    ok = await one(client, kind, args, rng, counts)
                except (httpx.HTTPError, ValueError, KeyError) as error:
                    ok = False
                    counts.setdefault("errors", []).append(f"{kind}: {error!r}"[:200])
                counts[kind] = counts.get(kind, 0) + 1
                if not ok:
                    counts["broken"] = counts.get("broken", 0) + 1

        await asyncio.gather(*(worker() for _ in range(args.workers)))


async def sampler(args, deadline, rows, start):
    while time.monotonic() < deadline:
        row = sample(args.pid, args.log)
        row["t_s"] = round(time.monotonic() - start, 1)
        rows.append(row)
        await asyncio.sleep(args.every)


async def faults(args, deadline, counts):
    cloud = subprocess.Popen(shlex.split(args.cloud_cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(min(args.fault_every, max(0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                break
            cloud.kill()
            cloud.wait()
            counts["cloud_faults"] = counts.get("cloud_faults", 0) + 1
            await asyncio.sleep(30)
            cloud = subprocess.Popen(shlex.split(args.cloud_cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        cloud.kill()
        cloud.wait()


def svg(rows, path):
    """RSS, descriptors and threads over time, each scaled to its own maximum."""
    width, height, pad = 720, 300, 40
    t_max = max(r["t_s"] for r in rows) or 1
    series = [("rss_mib", "#1f77b4", "RSS (MiB)"), ("fds", "#d62728", "open fds"), ("threads", "#2ca02c", "threads")]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">']
    parts.append(f'<text x="{pad}" y="20">edgeway serve under soak: each line scaled to its maximum (labelled)</text>')
    for i, (key, colour, label) in enumerate(series):
        top = max(r[key] for r in rows) or 1
        points = " ".join(
            f"{pad + (width - 2 * pad) * r['t_s'] / t_max:.1f},{height - pad - (height - 2 * pad) * r[key] / top:.1f}"
            for r in rows
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        parts.append(f'<text x="{pad + 200 * i}" y="{height - 10}" fill="{colour}">{label}: max {top:.0f}</text>')
    parts.append(f'<text x="{width - pad}" y="{height - pad + 15}" text-anchor="end">{t_max:.0f} s</text>')
    parts.append("</svg>")
    open(path, "w").write("\n".join(parts))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--limited-key", required=True)
    parser.add_argument("--cloud-cmd", required=True)
    parser.add_argument("--duration", type=float, default=3600)
    parser.add_argument("--warmup", type=float, default=None, help="seconds of warm-up (default a tenth)")
    parser.add_argument("--fault-every", type=float, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--every", type=float, default=10)
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    start = time.monotonic()
    deadline = start + args.duration
    rows, counts = [], {}

    async def run():
        await asyncio.gather(traffic(args, deadline, counts), sampler(args, deadline, rows, start), faults(args, deadline, counts))

    asyncio.run(run())
    rows.append({**sample(args.pid, args.log), "t_s": round(time.monotonic() - start, 1)})
    with open(os.path.join(args.out, "soak.csv"), "w") as f:
        f.write("t_s,rss_mib,fds,threads,log_mib\n")
        for r in rows:
            f.write(f"{r['t_s']},{r['rss_mib']:.1f},{r['fds']},{r['threads']},{r['log_mib']:.2f}\n")
    svg(rows, os.path.join(args.out, "soak.svg"))
    warmup = args.warmup if args.warmup is not None else args.duration / 10
    warm = next((r for r in rows if r["t_s"] >= warmup), rows[0])
    end = rows[-1]
    sent = sum(v for k, v in counts.items() if k in dict(WEIGHTS))
    print(f"{args.duration:.0f} s, {args.workers} clients, {sent} requests, {counts.get('broken', 0)} broken, "
          f"{counts.get('stream_error_events', 0)} streams ended by an error event, "
          f"{counts.get('cloud_faults', 0)} cloud faults; per kind: "
          + ", ".join(f"{k} {counts.get(k, 0)}" for k, _ in WEIGHTS))
    print()
    print(f"| sample | time (s) | RSS (MiB) | open fds | threads | query log (MiB) |")
    print("|---|---|---|---|---|---|")
    for name, r in (("end of warm-up", warm), ("end", end)):
        print(f"| {name} | {r['t_s']:.0f} | {r['rss_mib']:.1f} | {r['fds']} | {r['threads']} | {r['log_mib']:.2f} |")
    print(
        f"| growth | | {end['rss_mib'] - warm['rss_mib']:+.1f} | {end['fds'] - warm['fds']:+d} | "
        f"{end['threads'] - warm['threads']:+d} | {end['log_mib'] - warm['log_mib']:+.2f} |"
    )
    for error in counts.get("errors", [])[:10]:
        print("error:", error)
    with open(os.path.join(args.out, "soak.json"), "w") as f:
        json.dump({"counts": {k: v for k, v in counts.items() if k != "errors"}, "errors": counts.get("errors", []), "samples": rows}, f, indent=2)


if __name__ == "__main__":
    main()
