package audit

// actions are the audit actions with a name in the catalogue
// (audit.actions.<code>); another shows as its code.
var actions = map[string]bool{
	"sign_in":                true,
	"sign_in_failed":         true,
	"sign_out":               true,
	"command":                true,
	"firmware_bulk_update":   true,
	"visit":                  true,
	"policy_change":          true,
	"thresholds_change":      true,
	"import":                 true,
	"alarm_bulk":             true,
	"alarm_acknowledge":      true,
	"alarm_assign":           true,
	"alarm_comment":          true,
	"alarm_snooze":           true,
	"alarm_resolve":          true,
	"channel_create":         true,
	"channel_change":         true,
	"channel_delete":         true,
	"channel_test":           true,
	"route_create":           true,
	"route_change":           true,
	"route_delete":           true,
	"user_create":            true,
	"user_password":          true,
	"user_disable":           true,
	"user_enable":            true,
	"user_delete":            true,
	"user_role":              true,
	"user_preferences":       true,
	"token_create":           true,
	"token_revoke":           true,
	"preferences_change":     true,
	"tenant_defaults_change": true,
	"request":                true,
}

// outcomes are the outcomes with a name in the catalogue
// (audit.outcomes.<code>).
var outcomes = map[string]bool{
	"ok":                true,
	"bad_request":       true,
	"unauthorized":      true,
	"forbidden":         true,
	"not_found":         true,
	"conflict":          true,
	"too_large":         true,
	"too_many_requests": true,
	"unavailable":       true,
	"internal":          true,
}

// actionCodes are the known actions in the order the filter suggests them.
var actionCodes = []string{"sign_in", "sign_in_failed", "sign_out", "command", "firmware_bulk_update", "visit", "policy_change", "thresholds_change", "import", "alarm_bulk", "alarm_acknowledge", "alarm_assign", "alarm_comment", "alarm_snooze", "alarm_resolve", "channel_create", "channel_change", "channel_delete", "channel_test", "route_create", "route_change", "route_delete", "user_create", "user_password", "user_disable", "user_enable", "user_delete", "user_role", "user_preferences", "token_create", "token_revoke", "preferences_change", "tenant_defaults_change", "request"}
