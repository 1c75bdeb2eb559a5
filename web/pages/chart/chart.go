// Package chart draws time series as server-rendered SVG: no script, no
// library, readable with JavaScript off, styled by posfleet.css classes
// (the CSP allows no inline styles).
package chart

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet/locale"
)

// Point is one value at a time.
type Point struct {
	At    time.Time
	Value float64
}

// Series is one line, or one layer of stacked bars.
type Series struct {
	Label  string
	Class  string // a css class: line-a, bar-approved, ...
	Points []Point
}

// Chart is a line chart (Lines) or a stacked bar chart (Bars, one bar per
// Bucket from Start) over [Start, End).
type Chart struct {
	ID, Title, Unit string
	Start, End      time.Time
	Lines           []Series
	// Gap breaks a line where two points are further apart than it: a
	// terminal that was off is a hole, not a straight line.
	Gap    time.Duration
	Bars   []Series
	Bucket time.Duration
	// Floor and Ceil widen the value axis to include them when set (a
	// battery chart shows 0–100 whatever the values).
	Floor, Ceil *float64
}

// Geometry of the drawing in viewBox units.
const (
	W, H                   = 480.0, 160.0
	left, right, top, foot = 44.0, 8.0, 8.0, 20.0
)

// Path is one drawn line.
type Path struct {
	D, Class, Label string
}

// Rect is one drawn bar segment.
type Rect struct {
	X, Y, W, H string
	Class      string
	Title      string
}

// Tick is one axis label.
type Tick struct {
	X, Y, Text string
	Anchor     string
}

// Drawing is a chart laid out for the template.
type Drawing struct {
	Chart
	Empty   bool
	Paths   []Path
	Rects   []Rect
	YTicks  []Tick
	XTicks  []Tick
	Grid    []string // y of horizontal grid lines
	X1, X2  string   // where the grid lines start and end
	ViewBox string
	Legend  []Series
}

func f(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// Layout computes the drawing of c with its times in UTC, in English.
func (c Chart) Layout() Drawing { return c.LayoutFor(context.Background()) }

// LayoutFor computes the drawing of c for the reader of ctx: the time axis
// in its zone (ticks on its round hours and days) and language.
func (c Chart) LayoutFor(ctx context.Context) Drawing {
	loc := locale.From(ctx)
	d := Drawing{Chart: c, X1: f(left), X2: f(W - right), ViewBox: "0 0 " + f(W) + " " + f(H)}
	lo, hi := math.Inf(1), math.Inf(-1)
	n := 0
	for _, s := range c.Lines {
		for _, p := range s.Points {
			lo, hi = min(lo, p.Value), max(hi, p.Value)
			n++
		}
	}
	var stacks []float64
	if len(c.Bars) > 0 && c.Bucket > 0 {
		stacks = make([]float64, int(c.End.Sub(c.Start)/c.Bucket))
		for _, s := range c.Bars {
			for _, p := range s.Points {
				if i := int(p.At.Sub(c.Start) / c.Bucket); i >= 0 && i < len(stacks) {
					// A zero is a count too: no mismatch in an hour is news.
					stacks[i] += max(p.Value, 0)
					n++
				}
			}
		}
		lo, hi = 0, max(hi, 1)
		for _, v := range stacks {
			hi = max(hi, v)
		}
	}
	if n == 0 {
		d.Empty = true
		return d
	}
	if c.Floor != nil {
		lo = min(lo, *c.Floor)
	}
	if c.Ceil != nil {
		hi = max(hi, *c.Ceil)
	}
	if hi-lo < 1e-9 {
		lo, hi = lo-1, hi+1
	}
	lo, hi, step := niceRange(lo, hi)
	if stacks != nil && step < 1 {
		// Bars count things: no half transactions on the axis.
		hi, step = math.Ceil(hi), 1
	}
	span := c.End.Sub(c.Start).Seconds()
	x := func(t time.Time) float64 { return left + (W-left-right)*t.Sub(c.Start).Seconds()/span }
	y := func(v float64) float64 { return top + (H-top-foot)*(1-(v-lo)/(hi-lo)) }
	for v := lo; v <= hi+step/2; v += step {
		d.Grid = append(d.Grid, f(y(v)))
		d.YTicks = append(d.YTicks, Tick{X: f(left - 4), Y: f(y(v) + 4), Text: label(loc, v, step), Anchor: "end"})
	}
	// Time labels: every 6 h over a day, every day over a week.
	every := 6 * time.Hour
	format := func(t time.Time) string { return t.Format("15:04") }
	if c.End.Sub(c.Start) > 48*time.Hour {
		every = 24 * time.Hour
		format = func(t time.Time) string {
			return loc.T("chart.day", "Weekday", loc.T("chart.weekday."+strings.ToLower(t.Weekday().String()[:3])), "Month", int(t.Month()), "Day", t.Day())
		}
	}
	// Round hours and midnights of the reader's zone, not of UTC.
	_, off := c.Start.In(loc.Zone).Zone()
	shift := time.Duration(off) * time.Second
	for t := c.Start.Add(shift).Truncate(every).Add(-shift); !t.After(c.End); t = t.Add(every) {
		if t.Before(c.Start) {
			continue
		}
		d.XTicks = append(d.XTicks, Tick{X: f(x(t)), Y: f(H - 5), Text: format(t.In(loc.Zone)), Anchor: "middle"})
	}
	for _, s := range c.Lines {
		var b strings.Builder
		var prev time.Time
		for i, p := range s.Points {
			cmd := "L"
			if i == 0 || (c.Gap > 0 && p.At.Sub(prev) > c.Gap) {
				cmd = "M"
			}
			fmt.Fprintf(&b, "%s%s %s ", cmd, f(x(p.At)), f(y(p.Value)))
			prev = p.At
		}
		if len(s.Points) == 1 {
			// A lone point still shows: a short tick.
			fmt.Fprintf(&b, "l2 0")
		}
		d.Paths = append(d.Paths, Path{D: strings.TrimSpace(b.String()), Class: s.Class, Label: s.Label})
		d.Legend = append(d.Legend, s)
	}
	if stacks != nil {
		bw := (W - left - right) / float64(len(stacks))
		base := make([]float64, len(stacks))
		for _, s := range c.Bars {
			for _, p := range s.Points {
				i := int(p.At.Sub(c.Start) / c.Bucket)
				if i < 0 || i >= len(stacks) || p.Value <= 0 {
					continue
				}
				y0, y1 := y(base[i]), y(base[i]+p.Value)
				base[i] += p.Value
				d.Rects = append(d.Rects, Rect{X: f(left + bw*float64(i) + bw*0.1), Y: f(y1), W: f(bw * 0.8), H: f(y0 - y1), Class: s.Class,
					Title: loc.T("chart.bar", "At", loc.Minute(p.At), "Label", s.Label, "Value", label(loc, p.Value, 1))})
			}
			d.Legend = append(d.Legend, s)
		}
	}
	return d
}

// niceRange widens [lo, hi] to round numbers with 3 to 5 steps.
func niceRange(lo, hi float64) (float64, float64, float64) {
	raw := (hi - lo) / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if mag*m >= raw {
			step = mag * m
			break
		}
	}
	return math.Floor(lo/step) * step, math.Ceil(hi/step) * step, step
}

// label is a value on the axis: whole numbers with the reader's thousands
// separators (3,000 ms), others with up to two decimals.
func label(loc *locale.Locale, v, step float64) string {
	if step >= 1 || v == math.Trunc(v) {
		return loc.Int(int64(math.Round(v)))
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
