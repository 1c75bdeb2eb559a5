package bolt

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// posfleet patch: with GroupCommit, concurrent writers share transactions,
// every write is stored, and deletes queued after puts of the same key win.
func TestGroupCommitConcurrent(t *testing.T) {
	h := new(Hook)
	h.SetOpts(logger, nil)
	require.NoError(t, h.Init(&Options{Path: filepath.Join(t.TempDir(), "g.db"), GroupCommit: true}))
	defer h.Stop()

	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl := &mqtt.Client{ID: fmt.Sprintf("cl%d", i), Properties: mqtt.ClientProperties{Clean: false}}
			h.OnSessionEstablished(cl, packets.Packet{})
			h.OnSubscribed(cl, pkf, []byte{0})
			if i%2 == 1 {
				h.OnClientExpired(cl) // a delete after the put
			}
			require.NoError(t, h.Flush())
		}(i)
	}
	wg.Wait()
	require.Less(t, h.Commits(), uint64(n), "writers did not share commits")

	clients, err := h.StoredClients()
	require.NoError(t, err)
	require.Len(t, clients, n/2)
	subs, err := h.StoredSubscriptions()
	require.NoError(t, err)
	require.Len(t, subs, n)
}

// posfleet patch: Stop commits what is still queued.
func TestGroupCommitStopFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	h := new(Hook)
	h.SetOpts(logger, nil)
	require.NoError(t, h.Init(&Options{Path: path, GroupCommit: true}))
	h.OnSessionEstablished(client, packets.Packet{})
	require.NoError(t, h.Stop())

	h = new(Hook)
	h.SetOpts(logger, nil)
	require.NoError(t, h.Init(&Options{Path: path}))
	defer h.Stop()
	clients, err := h.StoredClients()
	require.NoError(t, err)
	require.Len(t, clients, 1)
	require.NoError(t, h.Flush()) // without GroupCommit: nothing to do
}
