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
command -v curl >/dev/null || { echo "demo: curl is needed (apt-get install curl)" >&2; exit 1; }

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
mkdir -p "$data/server"
if [ ! -f "$data/fleet.csv" ]; then
  # A simulated fleet of 300 terminals with the field's failures mixed in;
  # the labels file says which terminal should get which flag.
  bin/posterm provision -n 300 --tenant demo --out "$data/fleet.csv"
  "${posfleet[@]}" terminals import "$data/fleet.csv" --secrets-out "$data/secrets.csv" >/dev/null
fi
# The demo's firmware policy, with update packages (a demo data directory
# from before they had one gets them too). The server imports it into its
# database at the first start and renames it policy.yaml.imported: it is
# not copied again then (the server would ignore it, and say so).
if [ ! -f "$data/server/policy.yaml.imported" ] &&
  { [ ! -f "$data/server/policy.yaml" ] || ! grep -q 'sha256:' "$data/server/policy.yaml"; }; then
  cp deploy/demo/policy.yaml "$data/server/policy.yaml"
fi
if [ ! -f "$data/login.txt" ]; then
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20)
  POSFLEET_PASSWORD=$password "${posfleet[@]}" users add admin --admin >/dev/null
  printf 'admin %s\n' "$password" > "$data/login.txt"
  chmod 600 "$data/login.txt"
fi
read -r login_user login_password < "$data/login.txt"

# Campaign soaks of minutes, not hours: the simulated day runs 60 times
# faster than the real one.
"${posfleet[@]}" serve --mqtt-addr "$mqtt_addr" --http-addr "$http_addr" \
  --influx-url "http://127.0.0.1:$influx_port" --influx-bucket posfleet/autogen \
  --campaign-min-soak 2m --log-level warn 2> >(tee -a "$data/server.log" >&2) &
pids+=($!)
for _ in $(seq 1 60); do
  curl -sf -o /dev/null "http://$http_addr/healthz" && break
  sleep 0.5
done

# The simulated fleet: a shop's day runs in 24 minutes (time scale 60);
# heartbeats every 20 s. Its outbox and the firmware updates installed
# persist, so seq numbers go on and updated terminals stay updated across
# runs. At the first run each terminal reports two days of trading history
# (shops in Shanghai, open 08:00-23:00, a tenth round the clock), so that
# the charts show the shops' hours from the start.
bin/posterm simulate --fleet "$data/fleet.csv" --broker "tcp://$mqtt_addr" \
  --time-scale 60 --heartbeat 20s --store-dir "$data/terminals" --progress 10s \
  --zone Asia/Shanghai --history 48h --history-rate 0.25 \
  2>"$data/posterm.log" &
pids+=($!)

cat <<MSG

posfleet demo is running
  web:       http://$http_addr/   login: $login_user / $login_password
  API:       http://$http_addr/api/v1/fleet (with the signed-in session; or a token, made while it runs: bin/posfleet --data-dir $data/server tokens create NAME --admin)
  MQTT:      tcp://$mqtt_addr   300 simulated terminals (log: $data/posterm.log)
  InfluxDB:  http://127.0.0.1:$influx_port  (bucket posfleet/autogen)
  metrics:   http://$http_addr/metrics (signed in as the administrator)   health: http://$http_addr/healthz
Flags appear within minutes as the simulated day goes on.
Firmware campaigns: the Firmware page, or POST a spec from deploy/demo/campaigns/
to /api/v1/campaigns (a token as above), e.g.
  curl -H "Authorization: Bearer TOKEN" -H 'Content-Type: application/json' \
    --data @deploy/demo/campaigns/a920-2.5.0-fee.json http://$http_addr/api/v1/campaigns
2.5.2 is good, 2.5.0 adds a 0.6% fee and 2.5.1 crashes under load: those two pause after the canary.
Press Ctrl-C to stop.
MSG
wait "${pids[1]}"
