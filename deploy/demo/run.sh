#!/usr/bin/env bash
# make demo: a local InfluxDB 1.8 (v2 API, Flux on), a provisioned fleet and
# `posfleet serve`, all on loopback, data under .data/demo. Ctrl-C stops
# everything this script started (by PID).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
data=$root/.data/demo
influxd=$root/.tools/bin/influxd
influx_port=${POSFLEET_DEMO_INFLUX_PORT:-18086}
http_addr=${POSFLEET_DEMO_HTTP:-127.0.0.1:8080}
mqtt_addr=${POSFLEET_DEMO_MQTT:-127.0.0.1:1883}
mkdir -p "$data/influxd"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping demo..."
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup INT TERM EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$influx_port" "$((influx_port+1))" "${http_addr##*:}" "${mqtt_addr##*:}"; do
  if port_busy "$p"; then
    echo "demo: port $p is in use; stop what uses it or set POSFLEET_DEMO_INFLUX_PORT / POSFLEET_DEMO_HTTP / POSFLEET_DEMO_MQTT" >&2
    exit 1
  fi
done

cat > "$data/influxd/influxd.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((influx_port+1))"
[meta]
  dir = "$data/influxd/meta"
[data]
  dir = "$data/influxd/data"
  wal-dir = "$data/influxd/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:$influx_port"
  log-enabled = false
  flux-enabled = true
[monitor]
  store-enabled = false
[logging]
  level = "warn"
CONF
echo "starting InfluxDB 1.8 on 127.0.0.1:$influx_port (log: $data/influxd/influxd.log)"
"$influxd" run -config "$data/influxd/influxd.conf" >"$data/influxd/influxd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  curl -sf -o /dev/null "http://127.0.0.1:$influx_port/ping" && break
  sleep 0.5
done
curl -sf -o /dev/null "http://127.0.0.1:$influx_port/ping" || { echo "demo: InfluxDB did not start; see $data/influxd/influxd.log" >&2; exit 1; }
curl -sf -o /dev/null -XPOST "http://127.0.0.1:$influx_port/query" --data-urlencode "q=CREATE DATABASE posfleet"

posfleet=(bin/posfleet --data-dir "$data/server")
if [ ! -f "$data/secrets.csv" ]; then
  "${posfleet[@]}" terminals import deploy/demo/terminals.csv --secrets-out "$data/secrets.csv"
fi

"${posfleet[@]}" serve --mqtt-addr "$mqtt_addr" --http-addr "$http_addr" \
  --influx-url "http://127.0.0.1:$influx_port" --influx-bucket posfleet/autogen \
  2> >(tee -a "$data/server.log" >&2) &
pids+=($!)
for _ in $(seq 1 60); do
  curl -sf -o /dev/null "http://$http_addr/healthz" && break
  sleep 0.5
done

cat <<MSG

posfleet demo is running
  web (health):  http://$http_addr/healthz   metrics: http://$http_addr/metrics
  login:         none yet: the web UI and its sign-in come with the health engine and UI
  MQTT:          tcp://$mqtt_addr   terminal credentials: $data/secrets.csv
  InfluxDB:      http://127.0.0.1:$influx_port  (bucket posfleet/autogen)
Press Ctrl-C to stop.
MSG
wait "${pids[1]}"
