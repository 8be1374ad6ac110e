#!/usr/bin/env python3
"""Switching between two local models, and generation speed with two models configured.

Run by bench/switch.sh (which builds edgeway and provides llama-cpp-python); prints Markdown
tables. Everything is measured in one run, interleaved round by round:

1. Switch time: `edgeway serve` with two [[models]] and `--max-loaded-models 1`. A switch is
   a 1-token request for the model that is not loaded (the pool unloads the other, loads
   this one, answers) minus a 1-token request for it once loaded. "cold": the model file
   was dropped from the page cache first (posix_fadvise DONTNEED); "cached": it was not.
   The anchor is llama-cpp-python (the same llama.cpp, same file, same context and threads)
   doing the same by hand: drop the loaded `Llama`, construct the other, answer 1 token,
   minus a 1-token answer on it once loaded. Ollama, which users compare this with, cannot
   be installed here; its documented behaviour is the same design (load on first request,
   `keep_alive` 5 min, `OLLAMA_MAX_LOADED_MODELS`), and it loads through the same llama.cpp.
2. Generation speed of the first model: a server with only it (the single-model path, no
   pool) against the two-model server (the pool's path), 128 tokens with `ignore_eos`,
   tokens/s from the server's own `timings`. Target: two-model ≥ 0.98× one-model.

Ratios are geometric means over rounds with a 95 % t-interval on the log ratios.
"""

import argparse
import gc
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23,
       11: 2.20, 12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13, 19: 2.09, 29: 2.05}


def t95(df):
    return T95.get(df) or T95[max(k for k in T95 if k <= df)] if df >= 1 else float("nan")


def ratio_ci(ratios):
    """Geometric mean of ratios and its 95 % interval."""
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), float("nan"), float("nan")
    half = t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def evict(path):
    """Drops the file's pages from the page cache (they must not be mapped by anyone)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`edgeway serve` as a child process on loopback."""

    def __init__(self, binary, args, log):
        self.port = free_port()
        self.log = open(log, "w")
        self.proc = subprocess.Popen([binary, "serve", "--port", str(self.port), "--threads", "2",
                                      "--no-embeddings", *args],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"edgeway serve exited early; see {log}")
            try:
                with urllib.request.urlopen(self.url("/health"), timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"edgeway serve not ready after 120 s; see {log}")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path, body):
        request = urllib.request.Request(self.url(path), json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as r:
            answer = json.load(r)
        return time.perf_counter() - started, answer

    def one_token(self, model):
        seconds, answer = self.post("/v1/completions", {"model": model, "prompt": "Hello", "max_tokens": 1,
                                                         "temperature": 0})
        assert answer["model"] == model, answer
        return seconds

    def loaded(self):
        with urllib.request.urlopen(self.url("/v1/models"), timeout=10) as r:
            return [m["id"] for m in json.load(r)["data"] if m.get("local") and m.get("loaded")]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class Anchor:
    """llama-cpp-python switching by hand between the same files."""

    def __init__(self, paths, ctx):
        from llama_cpp import Llama
        self.Llama, self.paths, self.ctx, self.llm, self.name = Llama, paths, ctx, None, None

    def one_token(self):
        started = time.perf_counter()
        self.llm.create_completion("Hello", max_tokens=1, temperature=0)
        return time.perf_counter() - started

    def switch_to(self, name):
        started = time.perf_counter()
        if self.llm is not None:
            self.llm.close()
            self.llm = None
            gc.collect()
        self.llm = self.Llama(model_path=self.paths[name], n_ctx=self.ctx, n_threads=2, n_threads_batch=2,
                              verbose=False)
        self.name = name
        self.llm.create_completion("Hello", max_tokens=1, temperature=0)
        return time.perf_counter() - started


def switch_round(server, anchor, paths, model, other):
    """One round for `model`: (edgeway cold, edgeway cached, anchor cold, anchor cached) switch seconds."""
    server.one_token(model)
    base = min(server.one_token(model) for _ in range(2))
    server.one_token(other)
    evict(paths[model])
    cold = server.one_token(model) - base
    server.one_token(other)
    cached = server.one_token(model) - base
    server.one_token(other)  # leaves `model` unloaded, its pages unmapped, for the anchor's cold load

    anchor.switch_to(model)
    anchor_base = min(anchor.one_token() for _ in range(2))
    anchor.switch_to(other)
    evict(paths[model])
    anchor_cold = anchor.switch_to(model) - anchor_base
    anchor.switch_to(other)
    anchor_cached = anchor.switch_to(model) - anchor_base
    anchor.switch_to(other)
    return cold, cached, anchor_cold, anchor_cached


def generation_rate(server, model, tokens):
    _, answer = server.post("/v1/completions", {"model": model, "prompt": "Once upon a time", "max_tokens": tokens,
                                                "temperature": 0, "ignore_eos": True})
    return answer["timings"]["predicted_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edgeway", required=True)
    parser.add_argument("--small", required=True, help="the first model's GGUF")
    parser.add_argument("--large", required=True, help="the second model's GGUF")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--json")
    args = parser.parse_args()
    paths = {"small": args.small, "large": args.large}
    work = tempfile.mkdtemp(prefix="edgeway-bench-switch-")
    config = os.path.join(work, "two.toml")
    with open(config, "w") as f:
        for tier, name in enumerate(["small", "large"]):
            f.write(f'[[models]]\nname = "{name}"\nmodel = "{paths[name]}"\ntier = {tier}\nctx_size = {args.ctx}\n\n')
    two = Server(args.edgeway, ["--config", config, "--max-loaded-models", "1", "--keep-alive", "-1",
                                "--log-path", os.path.join(work, "two.db")], os.path.join(work, "two.log"))
    anchor = Anchor(paths, args.ctx)
    anchor.switch_to("large")

    rows = {"small": [], "large": []}
    for round_ in range(args.rounds):
        for model, other in (("small", "large"), ("large", "small")):
            rows[model].append(switch_round(two, anchor, paths, model, other))
        print(f"switch round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    anchor.llm.close()

    # Generation: one-model server vs the two-model server, the small model loaded in both.
    one = Server(args.edgeway, ["--model", args.small, "--alias", "small", "--ctx-size", str(args.ctx),
                                "--log-path", os.path.join(work, "one.db")], os.path.join(work, "one.log"))
    two.one_token("small")
    generation_rate(one, "small", 16)
    generation_rate(two, "small", 16)
    rates = []
    for round_ in range(args.rounds * 2):
        first, second = (one, two) if round_ % 2 == 0 else (two, one)
        a = generation_rate(first, "small", args.tokens)
        b = generation_rate(second, "small", args.tokens)
        one_rate, two_rate = (a, b) if first is one else (b, a)
        rates.append((one_rate, two_rate))
    one.stop()
    two.stop()

    print(f"\n## Switching models: unload + load + 1 token, minus 1 token on the loaded model "
          f"({args.rounds} rounds, ctx {args.ctx}, 2 threads)\n")
    print("| model | cache | edgeway (s) | llama-cpp-python (s) | edgeway ÷ anchor (95 % CI) |")
    print("|---|---|---:|---:|---|")
    result = {"switch": {}, "generation": {}}
    for model in ("small", "large"):
        for index, cache in ((0, "cold"), (1, "cached")):
            ours = [row[index] for row in rows[model]]
            theirs = [row[index + 2] for row in rows[model]]
            ratio, low, high = ratio_ci([max(a, 1e-3) / max(b, 1e-3) for a, b in zip(ours, theirs)])
            print(f"| {model} ({os.path.basename(paths[model])}) | {cache} | {statistics.median(ours):.3f} | "
                  f"{statistics.median(theirs):.3f} | {ratio:.2f}× ({low:.2f}–{high:.2f}) |")
            result["switch"][f"{model}/{cache}"] = {"edgeway_s": ours, "anchor_s": theirs,
                                                    "ratio": [ratio, low, high]}
    ratio, low, high = ratio_ci([two_rate / one_rate for one_rate, two_rate in rates])
    print(f"\n## Generation of the first model, {args.tokens} tokens ({len(rates)} interleaved pairs)\n")
    print("| server | tokens/s (median) |")
    print("|---|---:|")
    print(f"| one model (no pool) | {statistics.median(r[0] for r in rates):.1f} |")
    print(f"| two models (pool, max 1 loaded) | {statistics.median(r[1] for r in rates):.1f} |")
    print(f"\ntwo-model ÷ one-model: **{ratio:.3f}×** (95 % CI {low:.3f}–{high:.3f}); target ≥ 0.98×")
    result["generation"] = {"pairs": rates, "ratio": [ratio, low, high]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
