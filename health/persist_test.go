package health_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posfleet/posfleet/health"
)

func TestSnapshotFile(t *testing.T) {
	t.Run("missing file is a first start", func(t *testing.T) {
		e := health.New(health.DefaultConfig())
		if err := e.LoadSnapshot(filepath.Join(t.TempDir(), "none")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("damaged file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "health.snapshot")
		if err := os.WriteFile(path, []byte("not a snapshot"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := health.New(health.DefaultConfig()).LoadSnapshot(path)
		if !errors.Is(err, health.ErrDamagedSnapshot) {
			t.Fatalf("LoadSnapshot = %v, want ErrDamagedSnapshot", err)
		}
	})
	t.Run("round trip keeps the policy and leaves no temporary file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "health.snapshot")
		e := health.New(health.DefaultConfig())
		if err := e.SetPolicy([]byte(testPolicy)); err != nil {
			t.Fatal(err)
		}
		if err := e.SaveSnapshot(path); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temporary file left: %v", err)
		}
		back := health.New(health.DefaultConfig())
		if err := back.LoadSnapshot(path); err != nil {
			t.Fatal(err)
		}
		if len(back.Policy().Models) == 0 {
			t.Error("policy not restored")
		}
	})
	t.Run("RunSnapshots saves until its context ends", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "health.snapshot")
		e := health.New(health.DefaultConfig())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.RunSnapshots(ctx, path, 10*time.Millisecond) }()
		deadline := time.Now().Add(5 * time.Second)
		for _, err := os.Stat(path); err != nil; _, err = os.Stat(path) {
			if time.Now().After(deadline) {
				t.Fatal("no snapshot written")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestPolicyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	e := health.New(health.DefaultConfig())
	if err := e.LoadPolicyFile(path); err != nil || len(e.Policy().Models) != 0 {
		t.Fatalf("missing policy file: %v, %d models", err, len(e.Policy().Models))
	}
	if err := health.WritePolicyFile(path, []byte(testPolicy)); err != nil {
		t.Fatal(err)
	}
	if err := e.LoadPolicyFile(path); err != nil || len(e.Policy().Models) == 0 {
		t.Fatalf("LoadPolicyFile: %v, %d models", err, len(e.Policy().Models))
	}
	if err := health.WritePolicyFile(path, []byte("models: [")); err != nil {
		t.Fatal(err)
	}
	if err := health.New(health.DefaultConfig()).LoadPolicyFile(path); err == nil {
		t.Error("a bad policy file was accepted")
	}
}
