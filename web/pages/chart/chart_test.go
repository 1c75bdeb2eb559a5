package chart_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/chart"
)

func TestLayout(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	end := start.Add(24 * time.Hour)
	at := func(h float64) time.Time { return start.Add(time.Duration(h * float64(time.Hour))) }
	zero, hundred := 0.0, 100.0
	for _, tc := range []struct {
		name   string
		c      chart.Chart
		empty  bool
		paths  []int // moves per path
		rects  int
		yTicks string
	}{
		{name: "no data", c: chart.Chart{Start: start, End: end, Lines: []chart.Series{{}}}, empty: true},
		{name: "line with a hole", c: chart.Chart{Start: start, End: end, Gap: time.Hour, Floor: &zero, Ceil: &hundred,
			Lines: []chart.Series{{Points: []chart.Point{{at(1), 80}, {at(1.5), 70}, {at(5), 60}, {at(5.5), 50}}}}},
			paths: []int{2}, yTicks: "0 25 50 75 100"},
		{name: "flat line", c: chart.Chart{Start: start, End: end, Lines: []chart.Series{{Points: []chart.Point{{at(1), -70}, {at(2), -70}}}}},
			paths: []int{1}, yTicks: "-71 -70.5 -70 -69.5 -69"},
		{name: "stacked bars", c: chart.Chart{Start: start, End: end, Bucket: time.Hour, Bars: []chart.Series{
			{Class: "a", Points: []chart.Point{{at(0), 3}, {at(1), 0}, {at(2), 1}}},
			{Class: "b", Points: []chart.Point{{at(0), 2}, {at(30), 9}}}}}, // the last is out of range
			rects: 3, yTicks: "0 2 4 6"},
		{name: "zero bars still draw", c: chart.Chart{Start: start, End: end, Bucket: time.Hour, Bars: []chart.Series{{Points: []chart.Point{{at(0), 0}}}}},
			yTicks: "0 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.c.Layout()
			if d.Empty != tc.empty {
				t.Fatalf("empty = %v", d.Empty)
			}
			for i, moves := range tc.paths {
				if got := strings.Count(d.Paths[i].D, "M"); got != moves {
					t.Errorf("path %d %q: %d moves, want %d", i, d.Paths[i].D, got, moves)
				}
			}
			if len(d.Rects) != tc.rects {
				t.Errorf("%d bars, want %d", len(d.Rects), tc.rects)
			}
			var ticks []string
			for _, y := range d.YTicks {
				ticks = append(ticks, y.Text)
			}
			if !tc.empty && strings.Join(ticks, " ") != tc.yTicks {
				t.Errorf("y ticks %v, want %s", ticks, tc.yTicks)
			}
		})
	}
}

func TestSVGEscapesTitles(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	c := chart.Chart{ID: "x", Title: `<b>"battery"</b>`, Start: start, End: start.Add(time.Hour),
		Lines: []chart.Series{{Label: "<i>", Points: []chart.Point{{start, 1}, {start.Add(time.Minute), 2}}}}}
	var b bytes.Buffer
	if err := chart.SVG(c).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<b>") || strings.Contains(b.String(), "<i>") || !strings.Contains(b.String(), `data-testid="chart-x"`) {
		t.Errorf("svg: %s", b.String())
	}
}

// TestLayoutInReadersZone: the time axis is in the reader's zone, on its
// round hours, and a week's ticks name its days in its language.
func TestLayoutInReadersZone(t *testing.T) {
	start := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC) // 09:00 in Shanghai
	pts := []chart.Point{{start.Add(time.Hour), 1}, {start.Add(2 * time.Hour), 2}}
	zh := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	day := chart.Chart{Start: start, End: start.Add(24 * time.Hour), Lines: []chart.Series{{Points: pts}}}
	var got []string
	for _, x := range day.LayoutFor(zh).XTicks {
		got = append(got, x.Text)
	}
	if want := "12:00 18:00 00:00 06:00"; strings.Join(got, " ") != want {
		t.Errorf("day ticks in Shanghai %v, want %s", got, want)
	}
	got = nil
	for _, x := range day.Layout().XTicks {
		got = append(got, x.Text)
	}
	if want := "06:00 12:00 18:00 00:00"; strings.Join(got, " ") != want {
		t.Errorf("day ticks in UTC %v, want %s", got, want)
	}
	week := chart.Chart{Start: start, End: start.Add(7 * 24 * time.Hour), Lines: []chart.Series{{Points: pts}}}
	ticks := week.LayoutFor(zh).XTicks
	if len(ticks) == 0 || ticks[0].Text != "3月3日" {
		t.Errorf("week ticks in Chinese %+v, want 3月3日 first", ticks)
	}
	bars := chart.Chart{Start: start, End: start.Add(24 * time.Hour), Bucket: time.Hour,
		Bars: []chart.Series{{Label: "x", Points: []chart.Point{{start, 3}}}}}
	if r := bars.LayoutFor(zh).Rects; len(r) != 1 || !strings.Contains(r[0].Title, "2026-03-02 09:00 UTC+8") {
		t.Errorf("bar title %+v, want Shanghai time", r)
	}
	rtt := chart.Chart{Start: start, End: start.Add(24 * time.Hour), Lines: []chart.Series{{Points: []chart.Point{{start, 2000}, {start.Add(time.Hour), 4000}}}}}
	var ys []string
	for _, y := range rtt.LayoutFor(zh).YTicks {
		ys = append(ys, y.Text)
	}
	if want := "2,000 2,500 3,000 3,500 4,000"; strings.Join(ys, " ") != want {
		t.Errorf("y ticks %v, want %s (with separators)", ys, want)
	}
	for _, m := range locale.Missing() {
		t.Errorf("missing message %s", m)
	}
}
