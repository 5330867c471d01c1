#!/usr/bin/env bash
# Installs what is missing, builds, and runs sluice on its embedded default: a private
# redis-server (own port and data directory, AOF on), sluice-mock as the demo provider, and
# `sluice serve` in the foreground. With OPENAI_API_KEY set, a real OpenAI deployment is added.
# Ctrl-C stops all three.
#
# Ports: SLUICE_PORT (8080), SLUICE_REDIS_PORT (6390), SLUICE_MOCK_PORT (9090),
# SLUICE_METRICS_PORT (8081: /metrics without a key, loopback only).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

port="${SLUICE_PORT:-8080}"
redis_port="${SLUICE_REDIS_PORT:-6390}"
mock_port="${SLUICE_MOCK_PORT:-9090}"
metrics_port="${SLUICE_METRICS_PORT:-8081}"
run="$root/.run"

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" build -DCMAKE_BUILD_TYPE=Release >/dev/null

mkdir -p "$run/redis"
for p in "$port" "$redis_port" "$mock_port" "$metrics_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is in use; set SLUICE_PORT, SLUICE_REDIS_PORT, SLUICE_MOCK_PORT or SLUICE_METRICS_PORT" >&2
        exit 1
    fi
done

# A key kept in .run/FILE: made once (PREFIX and 36 random hex characters), then read back.
kept_key() {
    if [ ! -s "$run/$1" ]; then
        (umask 077 && echo "$2$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$run/$1")
    fi
    cat "$run/$1"
}
# The demo key: SLUICE_API_KEY if set, else one kept in .run/api-key; the admin key (the
# dashboard's every-tenant view, /v1/admin/*): SLUICE_ADMIN_KEY if set, else .run/admin-key.
SLUICE_API_KEY="${SLUICE_API_KEY:-$(kept_key api-key sk-sluice-)}"
SLUICE_ADMIN_KEY="${SLUICE_ADMIN_KEY:-$(kept_key admin-key sk-admin-)}"
export SLUICE_API_KEY SLUICE_ADMIN_KEY

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$run/redis" --appendonly yes \
    --appendfsync always --save "" --protected-mode no --daemonize no \
    --logfile "$run/redis.log" &
pids+=($!)
"$root/build/sluice-mock" --listen "127.0.0.1:$mock_port" --latency-ms 200 --job-ms 10000 \
    >"$run/mock.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done

openai_provider=""
openai_model=""
if [ -n "${OPENAI_API_KEY:-}" ]; then
    openai_provider=', "openai": {"dialect": "openai", "base_url": "https://api.openai.com/v1",
        "api_key": "env:OPENAI_API_KEY", "timeout_ms": 120000}'
    openai_model=', "gpt-4o-mini": {"kind": "chat", "strategy": "ordered", "deployments": [
        {"provider": "openai", "model": "gpt-4o-mini", "rpm": 500, "tpm": 200000,
         "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}}]}'
fi
cat >"$run/sluice.json" <<JSON
{
  "listen": "127.0.0.1:$port",
  "redis": "redis://127.0.0.1:$redis_port/0",
  "keys": [{"key": "env:SLUICE_API_KEY", "tenant": "default"}],
  "admin_keys": ["env:SLUICE_ADMIN_KEY"],
  "metrics_listen": "127.0.0.1:$metrics_port",
  "blobs": {"dir": "$run/blobs", "allow_hosts": ["127.0.0.1"]},
  "providers": {
    "mock": {"dialect": "openai", "base_url": "http://127.0.0.1:$mock_port/v1",
             "poll_interval_ms": 1000},
    "mock-anthropic": {"dialect": "anthropic", "base_url": "http://127.0.0.1:$mock_port/anthropic/v1",
                       "default_max_tokens": 1024},
    "mock-gemini": {"dialect": "gemini", "base_url": "http://127.0.0.1:$mock_port/gemini/v1beta"},
    "mock-replicate": {"dialect": "replicate", "base_url": "http://127.0.0.1:$mock_port/replicate/v1",
                       "poll_interval_ms": 1000},
    "mock-fal": {"dialect": "fal", "base_url": "http://127.0.0.1:$mock_port/fal",
                 "poll_interval_ms": 1000}$openai_provider
  },
  "models": {
    "demo-chat": {"kind": "chat", "deployments": [
      {"provider": "mock", "model": "mock-gpt",
       "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}}]},
    "demo-claude": {"kind": "chat", "deployments": [
      {"provider": "mock-anthropic", "model": "claude-sonnet-4",
       "price": {"input_per_mtok": 3, "output_per_mtok": 15}}]},
    "demo-gemini": {"kind": "chat", "deployments": [
      {"provider": "mock-gemini", "model": "gemini-2.0-flash",
       "price": {"input_per_mtok": 0.10, "output_per_mtok": 0.40}}]},
    "demo-embed": {"kind": "embedding", "deployments": [
      {"provider": "mock", "model": "text-embedding-3-small", "price": {"input_per_mtok": 0.02}}]},
    "demo-image": {"kind": "image", "deployments": [
      {"provider": "mock-fal", "model": "fal-ai/flux/dev", "price": {"per_image": 0.025}}]},
    "demo-video": {"kind": "video", "deployments": [
      {"provider": "mock", "model": "sora-2", "price": {"per_video_second": 0.10}}]}$openai_model
  }
}
JSON

model="demo-chat"
[ -n "${OPENAI_API_KEY:-}" ] && model="gpt-4o-mini"
cat <<EOF

sluice is starting on http://127.0.0.1:$port (redis on $redis_port, sluice-mock on $mock_port).
State and logs are in $run. Press Ctrl-C to stop.

Submit a task (retried safely: every retry carries the same Idempotency-Key, so a 503 whose
outcome was unknown never makes a second task):
  KEY=\$(cat /proc/sys/kernel/random/uuid)
  ID=\$(curl -s --retry 3 --retry-all-errors http://127.0.0.1:$port/v1/tasks -H "Authorization: Bearer $SLUICE_API_KEY" -H "Idempotency-Key: \$KEY" -H 'Content-Type: application/json' -d '{"kind":"chat","input":{"model":"$model","messages":[{"role":"user","content":"Say hello"}]}}' | sed -n 's/.*"id":"\\(task_[a-z2-7]*\\)".*/\\1/p'); echo \$ID
Read it back:
  curl -s http://127.0.0.1:$port/v1/tasks/\$ID -H "Authorization: Bearer $SLUICE_API_KEY"

Or use the OpenAI-compatible endpoints (models: demo-chat, demo-claude, demo-gemini, demo-embed,
demo-image, demo-video; each served by the demo provider simulator in its own dialect):
  curl -s http://127.0.0.1:$port/v1/chat/completions -H "Authorization: Bearer $SLUICE_API_KEY" -d '{"model":"demo-claude","messages":[{"role":"user","content":"Hi"}]}'

Prometheus metrics (no key, on their own loopback address):
  curl -s http://127.0.0.1:$metrics_port/metrics

The dashboard: open http://127.0.0.1:$port/dashboard and enter the admin key (every tenant)
  $SLUICE_ADMIN_KEY
or the tenant's key above. The CLI in the same binary:
  SLUICE_URL=http://127.0.0.1:$port SLUICE_API_KEY=$SLUICE_API_KEY $root/build/sluice submit --model $model --prompt "Say hello" --wait
  SLUICE_URL=http://127.0.0.1:$port SLUICE_API_KEY=$SLUICE_ADMIN_KEY $root/build/sluice top

EOF
"$root/build/sluice" serve --config "$run/sluice.json" &
pids+=($!)
wait "${pids[-1]}"
