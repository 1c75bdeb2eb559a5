package posfleet

// ThresholdSource says where the value of a threshold came from: the
// defaults of PROTOCOL.md §2, the tenant's override, or the override for the
// tenant's terminals of one model. The most specific wins.
type ThresholdSource string

// The sources of a threshold's value, least specific first.
const (
	ThresholdDefault ThresholdSource = "default"
	ThresholdTenant  ThresholdSource = "tenant"
	ThresholdModel   ThresholdSource = "model"
)

// AppliedThreshold is a threshold a rule judged by: its name (as the
// thresholds document spells it, "txn_failures.rate"), its value in the
// threshold's unit (Unit: "ratio" is a share, 0.2 for 20%; "count", "s",
// "ms", "dBm", "%", "°C", "km", "probability", "times"), where the value
// came from and, for a model's override, the model.
type AppliedThreshold struct {
	Model  string          `json:"model,omitempty"`
	Name   string          `json:"name"`
	Source ThresholdSource `json:"source"`
	Unit   string          `json:"unit"`
	Value  float64         `json:"value"`
}
