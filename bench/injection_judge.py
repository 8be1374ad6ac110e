"""Measures the prompt-injection screen with its judge through a running `edgeway serve`.

The server runs with `--injection-judge MODEL --injection-judge-threshold 0
--injection-action flag`, so every text the rules and the classifier let through is
judged and its probability logged in `guard_events`; a text they flag is logged
without a judge. Each text is sent alone on its channel's path (a user message; a
tool result; a passage is sent as a tool result too: the judge's question does not
depend on the channel, only the thresholds below do), and its decision is read back
from the log. Thresholds are chosen per channel on benign texts of train.jsonl (never
on the independent set) for at most FPR false positives, then applied to
independent.jsonl.

Usage: injection_judge.py URL QUERY_LOG CORPUS_DIR OUT_JSONL [CALIBRATION_PER_CHANNEL] [BENIGN_PER_CHANNEL]
"""

import json
import random
import sqlite3
import sys
import time
import urllib.error
import urllib.request

FPR = 0.01
CHANNELS = ["user", "passage", "tool"]


def post(url, body):
    request = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def messages(text, channel):
    if channel == "user":
        return [{"role": "user", "content": text}]
    call = {"id": "call_1", "type": "function", "function": {"name": "fetch", "arguments": "{}"}}
    return [{"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": text}]


def decision(log, after_id, wanted):
    """The first guard event after `after_id` on the wanted channel: (id, flagged by screen, judge p)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        with sqlite3.connect(log) as db:
            rows = db.execute("SELECT id, evidence FROM guard_events WHERE detector = 'injection' AND id > ? "
                              "ORDER BY id", (after_id,)).fetchall()
        for row_id, evidence in rows:
            evidence = json.loads(evidence)
            if evidence.get("channel") == wanted:
                return rows[-1][0], "judge" not in evidence, evidence.get("judge")
        time.sleep(0.05)
    return after_id, False, None


def main():
    url, log, corpus, out = sys.argv[1:5]
    per_cal = int(sys.argv[5]) if len(sys.argv) > 5 else 60
    per_benign = int(sys.argv[6]) if len(sys.argv) > 6 else 100
    rng = random.Random(7)
    train = [json.loads(line) for line in open(f"{corpus}/train.jsonl")]
    independent = [json.loads(line) for line in open(f"{corpus}/independent.jsonl")]
    picked = []
    for channel in CHANNELS:
        benign = [dict(r, set="calibration") for r in train if r["channel"] == channel and not r["attack"]]
        picked += rng.sample(benign, min(per_cal, len(benign)))
    picked += [dict(r, set="independent") for r in independent if r["attack"]]
    for channel in CHANNELS:
        benign = [dict(r, set="independent") for r in independent if r["channel"] == channel and not r["attack"]]
        picked += rng.sample(benign, min(per_benign, len(benign)))
    last = 0
    start = time.time()
    with open(out, "w") as sink:
        for i, row in enumerate(picked):
            sent_as = "user" if row["channel"] == "user" else "tool"
            status = post(url, {"model": "auto", "max_tokens": 1, "messages": messages(row["text"], sent_as)})
            last, row["screen"], row["judge"] = decision(log, last, sent_as)
            row["status"] = status
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            print(f"{i + 1}/{len(picked)} {row['set']} {row['channel']} attack={row['attack']} "
                  f"screen={row['screen']} judge={row['judge']} {time.time() - start:.0f} s", file=sys.stderr)
    report(out)


def report(path):
    rows = [json.loads(line) for line in open(path)]
    print("| channel | threshold (≤ 1 % of train benign) | attacks | recall: screen | recall: screen or judge "
          "| benign | false positives: screen | screen or judge | judge AUROC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for channel in CHANNELS:
        calibration = sorted(r["judge"] or 0.0 for r in rows
                             if r["set"] == "calibration" and r["channel"] == channel and not r["screen"])
        allowed = int(len(calibration) * FPR)
        threshold = calibration[len(calibration) - allowed - 1] + 1e-6 if calibration else 0.5
        attacks = [r for r in rows if r["set"] == "independent" and r["channel"] == channel and r["attack"]]
        benign = [r for r in rows if r["set"] == "independent" and r["channel"] == channel and not r["attack"]]

        def flagged(r, judge=True):
            return r["screen"] or (judge and (r["judge"] or 0.0) >= threshold)

        def share(group, judge):
            return sum(flagged(r, judge) for r in group) / max(len(group), 1)

        judged_pos = [r["judge"] for r in attacks if r["judge"] is not None]
        judged_neg = [r["judge"] for r in benign if r["judge"] is not None]
        pairs = [(p > n) + 0.5 * (p == n) for p in judged_pos for n in judged_neg]
        auroc = sum(pairs) / len(pairs) if pairs else float("nan")
        print(f"| {channel} | {threshold:.3f} | {len(attacks)} | {share(attacks, False):.3f} | {share(attacks, True):.3f} "
              f"| {len(benign)} | {share(benign, False):.1%} | {share(benign, True):.1%} | {auroc:.3f} |")


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2])
    else:
        main()
