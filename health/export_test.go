package health

import "github.com/posfleet/posfleet"

// PlantServiceNote stores a visit note as it is, past MarkServiced's guard:
// the tests use it to stand for a snapshot an older release wrote.
func PlantServiceNote(e *Engine, ref posfleet.TerminalRef, note string) {
	sh := e.shard(ref)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s := sh.m[ref]; s != nil {
		s.Service = append(s.Service, ServiceRecord{By: "crew", Note: note})
	}
}
