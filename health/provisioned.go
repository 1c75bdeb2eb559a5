package health

import "github.com/posfleet/posfleet"

// Provision tells the engine of provisioned terminals (from the registry,
// at start and after every import), so that a terminal that never
// connected is counted and listed: for a vendor it is a terminal to chase
// (a box not installed, a secret never entered, a wrong broker address).
// Terminals the engine has heard from are left as they are; the others
// cost a map entry each until their first message. Provision is safe to
// call again with terminals it already knows.
func (e *Engine) Provision(refs ...posfleet.TerminalRef) {
	for _, ref := range refs {
		sh := e.shard(ref)
		sh.mu.Lock()
		if _, heard := sh.m[ref]; !heard {
			if sh.prov == nil {
				sh.prov = map[posfleet.TerminalRef]struct{}{}
			}
			if _, known := sh.prov[ref]; !known && sh.track {
				sh.provDirty = append(sh.provDirty, ref)
			}
			sh.prov[ref] = struct{}{}
		}
		sh.mu.Unlock()
	}
}

// eachNeverConnected calls f for every provisioned terminal of tenant (""
// for all) that the engine has never heard from, under its shard's lock.
func (e *Engine) eachNeverConnected(tenant string, f func(ref posfleet.TerminalRef)) {
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for ref := range sh.prov {
			if tenant != "" && ref.Tenant != tenant {
				continue
			}
			if _, heard := sh.m[ref]; heard {
				// Heard from since (a restored snapshot): no longer a
				// terminal to chase.
				continue
			}
			f(ref)
		}
		sh.mu.Unlock()
	}
}
