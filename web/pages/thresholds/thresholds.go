// Package thresholds is the Thresholds page: every threshold of
// PROTOCOL.md §2 with its default, a tenant's override and its models'
// overrides, validation errors next to the field, and the history of
// changes with who made them and what they changed.
package thresholds

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
)

// View is the page's content.
type View struct {
	Frame layout.Page
	// Tenant is the tenant shown ("" until an administrator picks one);
	// Tenants, for an administrator, are those with overrides.
	Tenant     string
	Tenants    []string
	AllTenants bool
	Version    int64
	// Models are the tenant's models with overrides: one column each.
	Models []string
	Rows   []Row
	// Problems are refusals not about one field of the table.
	Problems      []string
	Notice, Error string
	History       []Version
}

// Row is one threshold.
type Row struct {
	Name, Flag, Unit string
	Min, Max         float64
	Integer          bool
	TenantOnly       bool
	Default          float64
	Tenant           Cell
	Models           []Cell // in View.Models' order
}

// Has tells whether field is one of the row's cells.
func (r Row) Has(field string) bool {
	if r.Tenant.Field == field {
		return true
	}
	for _, c := range r.Models {
		if c.Field == field {
			return true
		}
	}
	return false
}

// Cell is one value of the form: the field's path in the document, its
// value as typed or stored ("" for none), and why it was refused.
type Cell struct {
	Field, Value, Error string
	Disabled            bool
}

// Version is one version of the history.
type Version struct {
	Version int64
	At      time.Time
	By      string
	Changes []Change
}

// Change is one value a version changed.
type Change struct {
	Field    string
	From, To *float64
}

// unitKeys names each unit in the catalogue.
var unitKeys = map[string]string{"ratio": "ratio", "probability": "probability", "count": "count", "s": "seconds",
	"ms": "millis", "dBm": "dbm", "%": "percent", "°C": "celsius", "km": "km", "times": "times", "days": "days"}

func unitLabel(ctx context.Context, unit string) string {
	if k, ok := unitKeys[unit]; ok {
		return locale.T(ctx, "thresholds.unit."+k)
	}
	return unit
}

// nameKey is a threshold's catalogue key: its name with "_" for ".".
func nameKey(name string) string { return strings.ReplaceAll(name, ".", "_") }

// label is a threshold's description in the reader's language.
func label(ctx context.Context, name string) string {
	return locale.T(ctx, "thresholds.name."+nameKey(name))
}

func flagLabel(ctx context.Context, flag string) string {
	switch flag {
	case "incident", "suspect":
		return locale.T(ctx, "thresholds.group."+flag)
	}
	return locale.T(ctx, "flag."+flag)
}

// num is a value as people write it in the document.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// numPtr is a value of the history, or "–" for none.
func numPtr(v *float64) string {
	if v == nil {
		return "–"
	}
	return num(*v)
}

func modelField(i int, name string) string { return "m." + strconv.Itoa(i) + "." + name }

func modelKey(i int) string { return "model." + strconv.Itoa(i) }

func removeKey(i int) string { return "remove." + strconv.Itoa(i) }

func step(r Row) string {
	if r.Integer {
		return "1"
	}
	return "any"
}
