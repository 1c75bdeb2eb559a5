package deps
import (
 _ "github.com/mochi-mqtt/server/v2"
 _ "github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
 _ "github.com/eclipse/paho.mqtt.golang"
 _ "github.com/influxdata/influxdb-client-go/v2"
 _ "github.com/a-h/templ"
 _ "go.etcd.io/bbolt"
 _ "github.com/tidwall/wal"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/alecthomas/kong"
 _ "github.com/alecthomas/kong-yaml"
 _ "golang.org/x/crypto/bcrypt"
 _ "golang.org/x/time/rate"
)
