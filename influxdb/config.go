package influxdb

import (
	"errors"
	"time"
)

// DefaultConfig returns where posfleet looks for InfluxDB unless told
// otherwise.
func DefaultConfig() Config {
	return Config{
		// InfluxDB's own default port, on the same host: the simplest
		// installation (deploy/) runs both side by side.
		URL: "http://127.0.0.1:8086",
		// InfluxDB 1.8's database/retention-policy form, which 2.x maps
		// to a bucket too (DBRP): one default for both.
		Bucket: "posfleet/autogen",
		// The client's own default; a write that takes longer has failed
		// and is retried from the spool.
		Timeout: 30 * time.Second,
	}
}

// Validate reports what Open cannot do without: a URL and a bucket.
func (c Config) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("influxdb: no URL configured")
	case c.Bucket == "":
		return errors.New("influxdb: no bucket configured (InfluxDB 1.8: database/retention-policy)")
	}
	return nil
}
