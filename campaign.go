package posfleet

import "time"

// A campaign rolls one firmware version out to a chosen set of terminals of
// one model in waves: a canary first, then growing shares, each followed by
// a soak time. After each soak a gate compares the payment KPIs of the
// terminals just updated with those of the same model not yet updated, over
// the same hours; a gate that fails pauses the campaign, raises an alarm
// and notifies with the evidence. An operator then resumes, aborts, or rolls
// the updated terminals back to the version each ran before. A campaign
// whose gates all pass finishes by itself.
//
// Updates go out at most MaxInFlight at once and only inside each
// terminal's maintenance window; a terminal that is offline gets its update
// when it comes back, inside its window.

// CampaignState is where a campaign is in its life.
type CampaignState string

const (
	// CampaignRunning: waves are being sent or soaking.
	CampaignRunning CampaignState = "running"
	// CampaignPaused: a gate failed or an operator paused it; nothing is
	// sent until it is resumed, aborted or rolled back.
	CampaignPaused CampaignState = "paused"
	// CampaignFinished: every wave was sent and passed its gate.
	CampaignFinished CampaignState = "finished"
	// CampaignAborted: stopped for good; terminals keep what they run.
	CampaignAborted CampaignState = "aborted"
	// CampaignRollingBack: the updated terminals are being sent their
	// previous version; CampaignRolledBack once all have answered.
	CampaignRollingBack CampaignState = "rolling_back"
	CampaignRolledBack  CampaignState = "rolled_back"
)

// CampaignStates lists the states in life order.
var CampaignStates = []CampaignState{CampaignRunning, CampaignPaused, CampaignFinished, CampaignAborted, CampaignRollingBack, CampaignRolledBack}

// Ended reports whether the campaign can no longer change.
func (s CampaignState) Ended() bool {
	return s == CampaignFinished || s == CampaignAborted || s == CampaignRolledBack
}

// CampaignAction is what an operator may do to a campaign.
type CampaignAction string

const (
	CampaignPause    CampaignAction = "pause"
	CampaignResume   CampaignAction = "resume"
	CampaignAbort    CampaignAction = "abort"
	CampaignRollback CampaignAction = "rollback"
)

// CampaignSpec is what the operator asks for when creating a campaign.
type CampaignSpec struct {
	Name  string `json:"name"`
	Model string `json:"model"`
	// Target is the firmware version to install, Package where terminals
	// download it from and its SHA-256 (hex).
	Target  string          `json:"target"`
	Package FirmwarePackage `json:"package"`
	// Select chooses the terminals among the tenant's of Model; empty
	// fields select everything.
	Select CampaignSelector `json:"select"`
	// Waves: the first is the canary. Each names a count or a percentage
	// of the selected terminals (cumulative: 1, 10, 50, 100 means up to
	// 1%, then 10% ... of them updated) and its soak time.
	Waves []WaveSpec `json:"waves"`
	// MaxInFlight bounds the updates sent and not yet answered
	// (installed or failed) at any time.
	MaxInFlight int `json:"max_in_flight"`
	// Window is when a terminal may be sent its update.
	Window MaintenanceWindow `json:"window"`
	// Rollback are the packages of the versions the chosen terminals run
	// now, for a rollback; a version without one here takes the firmware
	// policy's package when the policy's target for the model is that
	// version.
	Rollback []RollbackPackage `json:"rollback,omitempty"`
}

// RollbackPackage is the package of a version a rollback returns
// terminals to.
type RollbackPackage struct {
	Version string          `json:"version"`
	Package FirmwarePackage `json:"package"`
}

// FirmwarePackage is where a firmware image is downloaded from.
type FirmwarePackage struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
}

// CampaignSelector chooses terminals; each non-empty field must match.
type CampaignSelector struct {
	Regions   []string `json:"regions,omitempty"`
	Merchants []string `json:"merchants,omitempty"`
	// Versions: the firmware versions the terminals run now; empty means
	// every version but the target.
	Versions []string `json:"versions,omitempty"`
	// Terminals: an explicit list of terminal IDs.
	Terminals []string `json:"terminals,omitempty"`
}

// WaveSpec is one wave: Count terminals, or Percent of the selection
// (cumulative), then Soak before its gate.
type WaveSpec struct {
	Count   int      `json:"count,omitempty"`
	Percent float64  `json:"percent,omitempty"`
	Soak    Duration `json:"soak"`
}

// Duration is a time.Duration written as "30m" or "2h" in JSON.
type Duration time.Duration

// MarshalText writes d as time.Duration's String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads "30m", "2h", "1h30m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return Errorf(Invalid, "invalid_duration", "duration %q: want e.g. 30m or 2h", b)
	}
	*d = Duration(v)
	return nil
}

// Window modes.
const (
	// WindowLearned: outside the hours in which the terminal usually
	// sells, learned from its own transactions; a terminal with too little
	// history falls back to Start–End.
	WindowLearned = "learned"
	// WindowFixed: between Start and End in the window's time zone.
	WindowFixed = "fixed"
	// WindowAny: at any time (a lab or a fleet that trades round the clock
	// and accepts the risk).
	WindowAny = "any"
)

// MaintenanceWindow is when a terminal may get its update.
type MaintenanceWindow struct {
	Mode string `json:"mode"`
	// Start and End are "HH:MM" local times; End before Start wraps past
	// midnight (02:00–05:00, 22:00–06:00).
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
	// Zone is the IANA zone of Start and End (and of the learned hours
	// shown on the page); empty means the tenant's default zone.
	Zone string `json:"zone,omitempty"`
}

// Campaign is a campaign as lists, pages and the API show it.
type Campaign struct {
	ID     string        `json:"id"`
	Tenant string        `json:"tenant"`
	Spec   CampaignSpec  `json:"spec"`
	State  CampaignState `json:"state"`
	// Wave is the index in Spec.Waves of the wave being sent or soaked
	// (the last one once finished).
	Wave int `json:"wave"`
	// SoakUntil is when the current wave's gate is judged (zero while its
	// updates are still being sent).
	SoakUntil time.Time `json:"soak_until,omitzero"`
	// Reason says why the campaign is paused or ended, in words.
	Reason    string    `json:"reason,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Waves are the waves' progress, one per Spec.Waves.
	Waves []WaveProgress `json:"waves"`
	// Gates are the gates judged so far, oldest first.
	Gates []GateResult `json:"gates"`
}

// CampaignTerminalState is where one terminal is in a campaign.
type CampaignTerminalState string

const (
	// CTPending: chosen for a later wave.
	CTPending CampaignTerminalState = "pending"
	// CTQueued: in the current wave, waiting for its window, a free slot
	// or its connection.
	CTQueued CampaignTerminalState = "queued"
	// CTSent: the update command went out; no progress yet.
	CTSent        CampaignTerminalState = "sent"
	CTDownloading CampaignTerminalState = "downloading"
	CTInstalled   CampaignTerminalState = "installed"
	CTFailed      CampaignTerminalState = "failed"
	// CTOffline: in the current wave but not connected; it is sent its
	// update when it comes back, inside its window.
	CTOffline CampaignTerminalState = "offline"
	// CTRolledBack: returned to its previous version by a rollback.
	CTRolledBack CampaignTerminalState = "rolled_back"
)

// CampaignTerminalStates lists the states in the order the page counts them.
var CampaignTerminalStates = []CampaignTerminalState{CTPending, CTQueued, CTSent, CTDownloading, CTInstalled, CTFailed, CTOffline, CTRolledBack}

// WaveProgress counts a wave's terminals by state.
type WaveProgress struct {
	Index     int                           `json:"index"`
	Size      int                           `json:"size"`
	Counts    map[CampaignTerminalState]int `json:"counts"`
	StartedAt time.Time                     `json:"started_at,omitzero"`
	// DoneAt is when the last of its terminals answered (installed or
	// failed); the soak starts then.
	DoneAt time.Time `json:"done_at,omitzero"`
}

// CampaignTerminal is one terminal of a campaign.
type CampaignTerminal struct {
	Terminal string                `json:"terminal"`
	Wave     int                   `json:"wave"`
	State    CampaignTerminalState `json:"state"`
	// From is the version it ran when chosen: what a rollback returns it to.
	From      string    `json:"from"`
	CommandID string    `json:"command_id,omitempty"`
	SentAt    time.Time `json:"sent_at,omitzero"`
	DoneAt    time.Time `json:"done_at,omitzero"`
	Detail    string    `json:"detail,omitempty"`
}

// CampaignEvent is one line of a campaign's timeline.
type CampaignEvent struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // created, wave_started, gate_passed, gate_failed, paused, resumed, aborted, rollback, finished ...
	By   string    `json:"by,omitempty"`
	Wave int       `json:"wave"`
	Text string    `json:"text,omitempty"`
}

// KPI names: what a gate compares between the updated terminals and the
// not-yet-updated ones.
type KPI string

const (
	// KPIDeclines: declined or failed sales among sales (the approval rate
	// seen from the other side).
	KPIDeclines KPI = "declines"
	// KPIDeviceFailures: transactions failed by the terminal or its
	// network, among transactions.
	KPIDeviceFailures KPI = "device_failures"
	// KPIAmountMismatch: approved sales charged another amount than
	// entered, among approved sales.
	KPIAmountMismatch KPI = "amount_mismatch"
	// KPIReceiptFailures: approved transactions whose receipt failed.
	KPIReceiptFailures KPI = "receipt_failures"
	// KPICrashBoots: crash and watchdog boots per terminal-hour.
	KPICrashBoots KPI = "crash_boots"
	// KPIUpdateFailures: failed installs among updates sent.
	KPIUpdateFailures KPI = "update_failures"
	// KPIOffline: terminals offline or silent after updating, among
	// terminals.
	KPIOffline KPI = "offline"
)

// KPIs lists the KPIs in the order the page shows them.
var KPIs = []KPI{KPIDeclines, KPIDeviceFailures, KPIAmountMismatch, KPIReceiptFailures, KPICrashBoots, KPIUpdateFailures, KPIOffline}

// KPICounts are one terminal's cumulative counters: the health engine
// keeps them from every message; a gate takes their difference over the
// soak.
type KPICounts struct {
	Txns           uint32 `json:"txns"`
	Sales          uint32 `json:"sales"`
	ApprovedSales  uint32 `json:"approved_sales"`
	Approved       uint32 `json:"approved"`
	DeviceFailures uint32 `json:"device_failures"`
	Mismatches     uint32 `json:"mismatches"`
	ReceiptFails   uint32 `json:"receipt_failures"`
	CrashBoots     uint32 `json:"crash_boots"`
}

// GateResult is one gate's verdict.
type GateResult struct {
	Wave   int       `json:"wave"`
	At     time.Time `json:"at"`
	Passed bool      `json:"passed"`
	// From and To are the hours compared (the soak).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Updated and Baseline are how many terminals each cohort had.
	Updated  int          `json:"updated"`
	Baseline int          `json:"baseline"`
	Metrics  []GateMetric `json:"metrics"`
}

// GateMetric is one KPI compared.
type GateMetric struct {
	KPI KPI `json:"kpi"`
	// Events and Exposure per cohort: e.g. 37 mismatches among 41
	// approved sales; exposure of crash_boots is terminal-hours.
	UpdatedEvents    int64   `json:"updated_events"`
	UpdatedExposure  float64 `json:"updated_exposure"`
	BaselineEvents   int64   `json:"baseline_events"`
	BaselineExposure float64 `json:"baseline_exposure"`
	// UpdatedRate and BaselineRate are events per unit of exposure.
	UpdatedRate  float64 `json:"updated_rate"`
	BaselineRate float64 `json:"baseline_rate"`
	// Enough is false when a cohort had too little exposure to judge: the
	// metric neither passes nor fails the gate.
	Enough bool `json:"enough"`
	// Worse: the updated terminals are worse by at least the minimum
	// effect, beyond chance; Worse on any metric fails the gate.
	Worse bool `json:"worse"`
	// PValue is the one-sided test's, after the correction for testing
	// several KPIs (for the API; pages say it in words).
	PValue float64 `json:"p_value"`
	// BaselineLeftOut is how many baseline terminals were left out as
	// broken on their own (far beyond chance for the rest of the
	// baseline: a unit of a known fee-bug version, a failing reader);
	// the baseline's figures above are without them.
	BaselineLeftOut int `json:"baseline_left_out,omitempty"`
}

// CampaignPreview is what a spec would do, shown before it is created.
type CampaignPreview struct {
	// Selected is how many terminals the spec selects, by the version
	// each runs now.
	Selected int            `json:"selected"`
	Versions map[string]int `json:"versions"`
	// WaveSizes is how many terminals each wave adds.
	WaveSizes []int `json:"wave_sizes"`
	// WithoutHistory is how many selected terminals have too little
	// transaction history for a learned window (they use Start–End).
	WithoutHistory int `json:"without_history"`
}
