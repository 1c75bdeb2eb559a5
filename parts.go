package posfleet

// What a crew brings to a visit: the parts and tools each maintenance flag
// may need, so that one trip fixes it. Data, not rules: edit the tables.

// FlagParts lists what to bring for each maintenance flag. hardware_fault
// brings what its faulty components need (ComponentParts) on top.
var FlagParts = map[FlagName][]string{
	FlagOffline:         {"power adapter", "network cable", "spare SIM card"},
	FlagReceiptFailures: {"paper rolls", "printer cleaning kit"},
	FlagTxnFailures:     {"test chip card", "test contactless card", "spare SIM card"},
	FlagHardwareFault:   {"cleaning card"},
	FlagTamper:          {"spare terminal", "tamper-evident bag"},
	FlagWeakNetwork:     {"spare SIM card", "external antenna", "network cable"},
	FlagBattery:         {"battery", "charger"},
	FlagClockSkew:       {"clock battery"},
	FlagUpdateFailed:    {"firmware package on USB", "USB cable"},
	// A worn chip reader; skimming shows the same way, and the crew
	// checks the card slot for an overlay.
	FlagFallbackRate: {"chip reader", "cleaning card", "test chip card"},
	// The worn parts themselves come from the forecast (WearParts).
	FlagWearDue: {"cleaning card"},
}

// WearParts lists what to bring for a part wear_due forecasts worn out.
var WearParts = map[string][]string{
	WearPrinterHead: {"printer head", "paper rolls"},
	WearChipReader:  {"chip reader", "test chip card"},
	WearBattery:     {"battery"},
}

// ComponentParts lists what to bring for a faulty component of a
// hardware_fault.
var ComponentParts = map[string][]string{
	ComponentPrinter:       {"paper rolls", "printer cleaning kit"},
	ComponentMSR:           {"cleaning card", "stripe reader"},
	ComponentICC:           {"cleaning card", "chip reader"},
	ComponentNFC:           {"contactless reader"},
	ComponentKeypad:        {"keypad"},
	ComponentDisplay:       {"display"},
	ComponentBattery:       {"battery"},
	ComponentModem:         {"spare SIM card", "external antenna"},
	ComponentSecureElement: {"spare terminal", "tamper-evident bag"},
	ComponentStorage:       {"spare terminal"},
	ComponentClock:         {"clock battery"},
	ComponentApp:           {"firmware package on USB"},
}

// PartsFor returns what to bring for a flag with its evidence, each part
// once, in the tables' order.
func PartsFor(name FlagName, ev Evidence) []string {
	var out []string
	add := func(ps []string) {
		for _, p := range ps {
			if !containsString(out, p) {
				out = append(out, p)
			}
		}
	}
	add(FlagParts[name])
	if wd, ok := ev.(*WearDueEvidence); ok {
		for _, f := range wd.Parts {
			add(WearParts[f.Part])
		}
	}
	if hf, ok := ev.(*HardwareFaultEvidence); ok {
		for _, f := range hf.Faults {
			add(ComponentParts[f.Component])
		}
	}
	return out
}

// MergeParts adds to parts those of more it lacks, keeping the order.
func MergeParts(parts []string, more ...string) []string {
	for _, p := range more {
		if !containsString(parts, p) {
			parts = append(parts, p)
		}
	}
	return parts
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
