"""Fills a query log (its schema made by edgeway) with synthetic requests over the last week.

Usage: dashboard_rows.py QUERY_LOG ROWS
"""

import random
import sqlite3
import sys
import time


def main():
    path, rows = sys.argv[1], int(sys.argv[2])
    rng = random.Random(5)
    now = int(time.time() * 1000)
    week = 7 * 86_400_000
    routes = [("edge", "qwen2.5-0.5b", 0.0), ("edge", "smollm2", 0.0), ("cloud", "gpt-4o-mini", 0.0004)]
    domains = ["code", "customer-service", "finance", "general", None]
    conn = sqlite3.connect(path)

    def row():
        roll = rng.random()
        ts = now - int(rng.random() * week)
        if roll < 0.03:
            return (ts, f"key_{rng.randint(1, 20)}", "chat", rng.choice(domains), None, "none", "refused", None,
                    None, 0, 0, 0, None, 2.0, 0.0, None, None, "rate_limited", "quota", None, None)
        route, model, price = routes[0] if roll < 0.55 else routes[1] if roll < 0.8 else routes[2]
        prompt, completion = rng.randint(20, 800), rng.randint(5, 300)
        ttft = rng.lognormvariate(5.5, 0.6)
        latency = ttft + completion * rng.uniform(30, 60)
        status = "ok" if rng.random() > 0.01 else "upstream_error"
        fallback = "cloud" if route == "edge" and rng.random() < 0.02 else None
        return (ts, f"key_{rng.randint(1, 20)}", "chat", rng.choice(domains), rng.random(), route, "score", model,
                fallback, prompt, completion, rng.randint(0, prompt), ttft, latency, price * (prompt + completion) / 1000,
                rng.uniform(1, 80), "cpu-time-model", status, None, None, None)

    conn.executemany(
        "INSERT INTO queries (ts_ms, key_id, endpoint, domain, score, route, reason, model, fallback_from, "
        "prompt_tokens, completion_tokens, cached_tokens, ttft_ms, latency_ms, cost, energy_j, energy_source, "
        "status, error, prompt_text, answer_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row() for _ in range(rows)),
    )
    conn.commit()
    print(f"{rows:,} rows written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
