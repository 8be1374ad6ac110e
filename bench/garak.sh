#!/usr/bin/env bash
# garak, the LLM vulnerability scanner, against `edgeway serve` through garak's
# own OpenAI-compatible generator (issue 7): the same probes on the model as it
# is (screens off) and behind edgeway's defences (injection screen set to
# block), with an API key both times. Prints attack success per probe and
# detector; garak's own reports (JSONL and HTML) stay in OUT.
#
# Usage: bench/garak.sh [PROBE_SPEC]
# Env:   PROMPTS (32 per probe), GENERATIONS (1), MAX_TOKENS (150, garak's default),
#        OUT (bench/out/garak), PORT (8094), MODEL (smollm2-135m)
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-probes.encoding.InjectBase64,probes.encoding.InjectROT13,probes.dan.DanInTheWild,probes.promptinject.HijackHateHumans,probes.promptinject.HijackLongPrompt}
prompts=${PROMPTS:-32}
generations=${GENERATIONS:-1}
max_tokens=${MAX_TOKENS:-150}
out=${OUT:-bench/out/garak}
port=${PORT:-8094}
model=${MODEL:-smollm2-135m}
mkdir -p "$out"
out=$(cd "$out" && pwd)

scripts/setup.sh
scripts/garak-venv.sh .venv-garak
cargo build --release
bin=target/release/edgeway
"$bin" model pull "$model" >/dev/null
key=ew-garak-bench-key

scan() { # NAME, then serve flags
  local name=$1
  shift
  rm -f "$out/$name".db*
  "$bin" serve --model "$model" --alias target --port "$port" --no-embeddings --api-key "$key" \
    --log-path "$out/$name.db" "$@" > "$out/$name-server.log" 2>&1 &
  local server=$!
  trap "kill $server 2>/dev/null || true" EXIT
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
  cat > "$out/$name.yaml" <<EOF
run:
  generations: $generations
  soft_probe_prompt_cap: $prompts
  seed: 1
reporting:
  report_dir: $out
plugins:
  target_type: openai.OpenAICompatible
  target_name: target
  generators:
    openai:
      OpenAICompatible:
        uri: http://127.0.0.1:$port/v1/
        max_tokens: $max_tokens
EOF
  rm -f "$out/$name".report.*
  OPENAICOMPATIBLE_API_KEY=$key XDG_DATA_HOME="$out/xdg" .venv-garak/bin/python -m garak \
    --config "$out/$name.yaml" --spec "$spec" --report_prefix "$name" --narrow_output \
    2>&1 | tr '\r' '\n' | grep -v '%|' | tee "$out/$name.txt"
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  trap - EXIT
}

scan undefended --injection-action off --extraction-action off
scan defended --injection-action block --extraction-action flag

# One table from garak's two reports. Attack success = garak's hits over every
# prompt sent; a prompt edgeway refused (400 prompt_injection) is one garak
# records with no answer ("nones") and counts here as a failed attack.
.venv-garak/bin/python - "$out" "$model" <<'EOF'
import json, sys
out, model = sys.argv[1], sys.argv[2]
def evals(name):
    rows = {}
    for line in open(f"{out}/{name}.report.jsonl"):
        entry = json.loads(line)
        if entry.get("entry_type") == "eval":
            rows[(entry["probe"], entry["detector"])] = entry
    return rows
plain, guarded = evals("undefended"), evals("defended")
print(f"\n{model} via edgeway serve, garak 0.17.1 OpenAICompatible generator\n")
print("| probe | detector | prompts | ASR undefended | ASR defended | refused by edgeway |")
print("|---|---|---|---|---|---|")
for key in sorted(plain):
    p, g = plain[key], guarded.get(key)
    def asr(e):
        sent = e["total_processed"]
        return f"{e['fails'] / sent:.0%} ({e['fails']}/{sent})" if sent else "-"
    print(f"| {key[0]} | {key[1]} | {p['total_processed']} | {asr(p)} | {asr(g) if g else '-'} | {g['nones'] if g else '-'} |")
EOF
echo "garak reports: $out/*.report.html"
