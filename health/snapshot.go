package health

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"

	"github.com/posfleet/posfleet"
)

// snapshotVersion changes whenever the snapshot layout does; Restore refuses
// other versions rather than guessing.
// Version 2 added bad_data: the flags' times moved from Since (13 flags)
// to Raised, and rejections are counted. Version 3 added fallback_rate and
// moved, and writes the flags' times as a slice (RaisedAt) so that a flag
// added later changes no layout. Restore reads versions 1 and 2 too.
const snapshotVersion = 3

type snapshotHeader struct {
	Version   int
	Terminals int
	Policy    []byte // YAML; empty when no policy was set
	Incidents []incidentSnap
}

type incidentSnap struct {
	Incident Incident
	Seen     []seenSnap // open incidents only
	LastFail int64
}

type seenSnap struct {
	Ref        posfleet.TerminalRef
	Base, Last uint32
}

// Snapshot writes the whole state (terminals, incidents, service records and
// the firmware policy) to w as a gob stream, one terminal at a time, so that
// the server can restart without losing flags that took hours of evidence.
// Terminals keep updating while it runs; each is written consistently.
func (e *Engine) Snapshot(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := gob.NewEncoder(bw)
	h := snapshotHeader{Version: snapshotVersion}
	if c := e.policy.Load(); c != nil {
		h.Policy = c.src.YAML()
	}
	for i := range e.shards {
		e.shards[i].mu.Lock()
		h.Terminals += len(e.shards[i].m)
		e.shards[i].mu.Unlock()
	}
	e.incMu.Lock()
	for _, ti := range e.tenants {
		for _, rec := range ti.list {
			inc := rec.Incident
			inc.Merchants = append([]string(nil), rec.Merchants...)
			inc.Terminals = append([]posfleet.TerminalRef(nil), rec.Terminals...)
			inc.Timeline = append([]IncidentMinute(nil), rec.Timeline...)
			var seen []seenSnap
			for ref, c := range rec.seen {
				seen = append(seen, seenSnap{Ref: ref, Base: c[0], Last: c[1]})
			}
			h.Incidents = append(h.Incidents, incidentSnap{Incident: inc, Seen: seen, LastFail: rec.lastFail})
		}
	}
	e.incMu.Unlock()
	if err := enc.Encode(&h); err != nil {
		return fmt.Errorf("health: snapshot header: %w", err)
	}
	// Terminals first seen after the count was taken are left for the next
	// snapshot; Restore reads exactly h.Terminals records.
	left := h.Terminals
	var err error
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			if left == 0 || err != nil {
				break
			}
			s.RaisedAt = s.raised[:]
			err = enc.Encode(s)
			s.RaisedAt = nil
			left--
		}
		sh.mu.Unlock()
		if err != nil {
			return fmt.Errorf("health: snapshot terminal: %w", err)
		}
	}
	if left > 0 {
		// Terminals cannot be removed, so this does not happen; keep the
		// stream readable if it ever does.
		for ; left > 0; left-- {
			if err := enc.Encode(&termState{}); err != nil {
				return fmt.Errorf("health: snapshot terminal: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("health: snapshot: %w", err)
	}
	return nil
}

// Restore replaces the engine's state with a snapshot written by Snapshot.
// On error the engine is left unchanged.
func (e *Engine) Restore(r io.Reader) error {
	dec := gob.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return fmt.Errorf("health: restore header: %w", err)
	}
	if h.Version != snapshotVersion && h.Version != 1 && h.Version != 2 {
		return fmt.Errorf("health: restore: snapshot version %d, want %d", h.Version, snapshotVersion)
	}
	var pol *compiledPolicy
	if len(h.Policy) > 0 {
		p, err := ParsePolicy(h.Policy)
		if err != nil {
			return fmt.Errorf("health: restore policy: %w", err)
		}
		pol = compilePolicy(p)
	}
	var maps [nShards]map[posfleet.TerminalRef]*termState
	for i := range maps {
		maps[i] = make(map[posfleet.TerminalRef]*termState, h.Terminals/nShards+1)
	}
	for n := 0; n < h.Terminals; n++ {
		s := &termState{}
		if err := dec.Decode(s); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("health: restore terminal %d of %d: %w", n+1, h.Terminals, err)
		}
		if s.Ref == (posfleet.TerminalRef{}) {
			continue
		}
		s.withholdCardData()
		s.fillLiveClock()
		switch h.Version {
		case 1:
			s.fromV1()
		case 2:
			if s.Raised != nil {
				copy(s.raised[:], s.Raised[:])
			}
			s.Raised = nil
		default:
			copy(s.raised[:], s.RaisedAt)
			s.RaisedAt = nil
		}
		maps[e.shardIndex(s.Ref)][s.Ref] = s
	}
	tenants := map[string]*tenantIncidents{}
	for _, is := range h.Incidents {
		ti := tenants[is.Incident.Tenant]
		if ti == nil {
			ti = &tenantIncidents{}
			tenants[is.Incident.Tenant] = ti
		}
		rec := &incidentRec{Incident: is.Incident, lastFail: is.LastFail}
		if rec.Open {
			rec.seen = map[posfleet.TerminalRef][2]uint32{}
			for _, x := range is.Seen {
				rec.seen[x.Ref] = [2]uint32{x.Base, x.Last}
			}
			rec.merchants = map[string]struct{}{}
			for _, m := range rec.Merchants {
				rec.merchants[m] = struct{}{}
			}
			if ti.open == nil {
				ti.open = map[string]*incidentRec{}
			}
			ti.open[rec.Host] = rec
		}
		ti.list = append(ti.list, rec)
	}
	for _, ti := range tenants {
		sortIncidentRecs(ti.list)
	}

	for i := range e.shards {
		e.shards[i].mu.Lock()
	}
	for i := range e.shards {
		// The feed's dirty list points at the old states: drop it, and
		// have the reader publish everything again.
		e.shards[i].clearChanges()
		e.shards[i].lost = e.shards[i].track
		e.shards[i].m = maps[i]
		for ref := range e.shards[i].prov {
			if _, heard := maps[i][ref]; heard {
				delete(e.shards[i].prov, ref)
			}
		}
	}
	e.policy.Store(pol)
	e.restoredAt.Store(ms(e.cfg.Now()))
	e.incMu.Lock()
	e.tenants = tenants
	e.publishIncidentsLocked()
	e.incMu.Unlock()
	for i := range e.shards {
		e.shards[i].mu.Unlock()
	}
	return nil
}

// fromV1 moves what a version 1 snapshot held under older names: the
// flags' times, and the last accepted message (every message then was).
func (s *termState) fromV1() {
	if s.Since != nil {
		copy(s.raised[:], s.Since[:])
	}
	s.Since = nil
	if s.AcceptedAt == 0 {
		s.AcceptedAt = s.LastSeen
	}
}

func sortIncidentRecs(l []*incidentRec) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].Start.Before(l[j-1].Start); j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// withholdCardData replaces visit notes and fault details that hold card
// data with posfleet.RedactedMarker: a snapshot written by a release whose
// guard missed some layouts must not bring them back to the pages.
func (s *termState) withholdCardData() {
	for i := range s.Service {
		s.Service[i].Note = posfleet.Redact(s.Service[i].Note)
	}
	for i := range s.Faults {
		s.Faults[i].Detail = posfleet.Redact(s.Faults[i].Detail)
	}
}
