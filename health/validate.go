package health

import "fmt"

// Validate reports a share or a significance outside 0..1; New takes any
// other zero or negative threshold for its default (DefaultConfig).
func (c Config) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"TxnFailureRate", c.TxnFailureRate}, {"IncidentShare", c.IncidentShare}, {"SuspectAlpha", c.SuspectAlpha},
		{"SilentUsualShare", c.SilentUsualShare}, {"SilentAlpha", c.SilentAlpha}} {
		if r.v < 0 || r.v > 1 {
			return fmt.Errorf("health: %s %v: want 0..1", r.name, r.v)
		}
	}
	if c.WearBatteryHealthPct < 0 || c.WearBatteryHealthPct > 100 {
		return fmt.Errorf("health: WearBatteryHealthPct %d: want 0..100", c.WearBatteryHealthPct)
	}
	return nil
}
