package health

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// The engine keeps its state in memory and in a snapshot file, written
// every so often and at shutdown, and read at start: 100,000 terminals
// restore in about a second, where rebuilding from InfluxDB would mean
// reading a day of every terminal's transactions. What arrived after the
// last snapshot before a crash is in InfluxDB but not in the engine: at
// most one snapshot interval of evidence, which the next messages replace
// within minutes.

// ErrDamagedSnapshot wraps the error of a snapshot file that exists but
// could not be restored. A server should start empty rather than stay down.
var ErrDamagedSnapshot = errors.New("health: damaged snapshot")

// LoadSnapshot restores the state saved at path by SaveSnapshot. A missing
// file is no error (the first start); a file that cannot be read back
// gives an error wrapping ErrDamagedSnapshot.
func (e *Engine) LoadSnapshot(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("health: snapshot: %w", err)
	}
	defer f.Close()
	start := time.Now()
	if err := e.Restore(f); err != nil {
		return fmt.Errorf("%w %s: %w", ErrDamagedSnapshot, path, err)
	}
	e.log.Info("health state restored", "file", path, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// SaveSnapshot writes the engine's state next to path and renames it
// over, so that a crash mid-write leaves the previous snapshot whole.
func (e *Engine) SaveSnapshot(path string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := e.Snapshot(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// RunSnapshots saves a snapshot to path every interval until ctx ends. A
// failed save is logged, not fatal: the next one, or the one at shutdown,
// tries again.
func (e *Engine) RunSnapshots(ctx context.Context, path string, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := e.SaveSnapshot(path); err != nil {
				e.log.Error("health snapshot", "err", err)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// LoadPolicyFile applies the firmware policy kept at path by
// WritePolicyFile. A missing file is no error: no policy yet.
func (e *Engine) LoadPolicyFile(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("health: firmware policy: %w", err)
	}
	if err := e.SetPolicy(b); err != nil {
		return fmt.Errorf("health: %s: %w", path, err)
	}
	return nil
}

// WritePolicyFile keeps an accepted firmware policy at path for the next
// start, renaming it over the old one.
func WritePolicyFile(path string, policy []byte) error {
	if err := os.WriteFile(path+".tmp", policy, 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
