package firmwareclient

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posfleet/posfleet"
)

// Store is the on-disk outbox of one or more terminals: every message a
// terminal reports is written here, with its seq, before anything is sent,
// and removed only after the broker acknowledged it (PUBACK, which the
// server sends once the message is durable on its side).
//
// It is a bbolt file rather than an append-only log because the outbox is
// not strictly first-in first-out: when it is full, old heartbeats are
// dropped from the middle to make room for transactions, and bbolt's sorted
// keys, transactions and crash safety give that, the seq counter and the
// outbox in one atomic write. A firmware opens one Store per terminal (see
// Config.StoreDir); a simulator shares one Store between thousands of
// clients (see Config.Store), which costs one file descriptor instead of
// thousands and lets bbolt commit many terminals' writes in one fsync.
type Store struct {
	db *bolt.DB
}

// StoreOptions configures OpenStore.
type StoreOptions struct {
	// NoSync skips fsync on commit. A process crash loses nothing, a power
	// loss can lose the last writes. Meant for simulators; a terminal keeps
	// the default.
	NoSync bool
}

// Bucket and key names. Each terminal has a bucket named "{tenant}:{terminal}"
// under bucketTerminals holding:
//
//	meta   key "seq": the last seq used (8 bytes big-endian)
//	       key "pending": the command being carried out across a reboot (JSON)
//	q      seq -> record: the outbox, in seq order
//	c0..c2 seq -> nil: the outbox keys of each drop class, oldest first
//	cmds   command id -> time handled: commands already carried out
var (
	bucketTerminals = []byte("terminals")
	bucketMeta      = []byte("meta")
	bucketQueue     = []byte("q")
	bucketCmds      = []byte("cmds")
	keySeq          = []byte("seq")
	keyPending      = []byte("pending")
	classBuckets    = [numClasses][]byte{[]byte("c0"), []byte("c1"), []byte("c2")}
)

// OpenStore opens (creating if needed) the store file at path.
func OpenStore(path string, opts StoreOptions) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("firmwareclient: store directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		// Another process holding the file (a second copy of the firmware)
		// is an error to report, not to wait for.
		Timeout: time.Second,
		NoSync:  opts.NoSync,
		// The outbox is written and emptied continuously; without the
		// freelist sync the file is smaller and commits are cheaper.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("firmwareclient: open store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketTerminals)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("firmwareclient: init store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file. Clients using the store must be closed first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("firmwareclient: close store: %w", err)
	}
	return nil
}

// Drop classes: when the outbox is full, the lowest class goes first.
const (
	classHeartbeat = iota // periodic, the next one says the same
	classEvent            // faults, inventory, acks
	classTxn              // money: kept longest
	numClasses
)

func classOf(ch posfleet.Channel) int {
	switch ch {
	case posfleet.ChannelHeartbeat:
		return classHeartbeat
	case posfleet.ChannelTxn:
		return classTxn
	}
	return classEvent
}

// Channel codes of a record's first byte.
var channelCodes = []posfleet.Channel{
	posfleet.ChannelHeartbeat, posfleet.ChannelFault, posfleet.ChannelFirmware,
	posfleet.ChannelTxn, posfleet.ChannelAck,
}

func channelIndex(ch posfleet.Channel) int {
	for i, c := range channelCodes {
		if c == ch {
			return i
		}
	}
	return -1
}

// record is one outbox entry.
type record struct {
	seq     int64
	ch      posfleet.Channel
	payload []byte
}

func seqKey(seq int64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(seq))
	return k[:]
}

// outbox is one terminal's part of a Store, with the counters its limits
// are checked against. The counters live in memory (rebuilt at open) and
// are changed only under mu, after the write that justifies them committed.
type outbox struct {
	db   *bolt.DB
	name []byte

	mu     sync.Mutex
	count  [numClasses]int
	bytes  int64
	limits Limits
}

func (s *Store) outbox(ref posfleet.TerminalRef, limits Limits) (*outbox, error) {
	o := &outbox{db: s.db, name: []byte(ref.String()), limits: limits}
	err := s.db.Update(func(tx *bolt.Tx) error {
		tb, err := tx.Bucket(bucketTerminals).CreateBucketIfNotExists(o.name)
		if err != nil {
			return err
		}
		for _, n := range [][]byte{bucketMeta, bucketQueue, bucketCmds, classBuckets[0], classBuckets[1], classBuckets[2]} {
			if _, err := tb.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		return tb.Bucket(bucketQueue).ForEach(func(k, v []byte) error {
			if len(v) < 1 || int(v[0]) >= len(channelCodes) {
				return fmt.Errorf("corrupt outbox record %x", k)
			}
			o.count[classOf(channelCodes[v[0]])]++
			o.bytes += int64(len(v))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("firmwareclient: open outbox of %s: %w", ref, err)
	}
	return o, nil
}

func (o *outbox) bucket(tx *bolt.Tx) *bolt.Bucket {
	return tx.Bucket(bucketTerminals).Bucket(o.name)
}

// appended says what append did.
type appended struct {
	seq     int64
	stored  bool               // false: the message itself was dropped (outbox full of more important ones)
	dropped []posfleet.Channel // older messages dropped to make room
}

// errOutboxFull is the error of a message that could not be stored because
// the outbox is full of messages of its class or more important ones.
var errOutboxFull = errors.New("outbox full")

// append assigns the next seq, lets build produce the payload with it, and
// stores the record, dropping older messages of lower or equal class first
// when the outbox is over its limits. The seq is used even when the message
// is dropped: seqs are never reused, and the server counts the gap, which
// is the truth (a message was lost).
func (o *outbox) append(ch posfleet.Channel, build func(seq int64) ([]byte, error)) (appended, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	class := classOf(ch)
	var res appended
	var count [numClasses]int
	var bytes int64
	err := o.db.Batch(func(tx *bolt.Tx) error {
		// Batch may run this function again after a failed commit: start
		// from the committed counters each time.
		res, count, bytes = appended{}, o.count, o.bytes
		tb := o.bucket(tx)
		meta, q := tb.Bucket(bucketMeta), tb.Bucket(bucketQueue)
		var seq int64
		if v := meta.Get(keySeq); len(v) == 8 {
			seq = int64(binary.BigEndian.Uint64(v))
		}
		seq++
		if err := meta.Put(keySeq, seqKey(seq)); err != nil {
			return err
		}
		res.seq = seq
		payload, err := build(seq)
		if err != nil {
			return err
		}
		rec := make([]byte, 1+len(payload))
		rec[0] = byte(channelIndex(ch))
		copy(rec[1:], payload)
		size := int64(len(rec))
		for total(count)+1 > o.limits.MaxMessages || bytes+size > o.limits.MaxBytes {
			victim := -1
			for c := 0; c <= class; c++ {
				if count[c] > 0 {
					victim = c
					break
				}
			}
			if victim < 0 {
				return nil // nothing less important to give up: drop this one
			}
			cb := tb.Bucket(classBuckets[victim])
			k, _ := cb.Cursor().First()
			v := q.Get(k)
			if err := q.Delete(k); err != nil {
				return err
			}
			if err := cb.Delete(k); err != nil {
				return err
			}
			count[victim]--
			bytes -= int64(len(v))
			res.dropped = append(res.dropped, channelCodes[v[0]])
		}
		k := seqKey(seq)
		if err := q.Put(k, rec); err != nil {
			return err
		}
		if err := tb.Bucket(classBuckets[class]).Put(k, nil); err != nil {
			return err
		}
		count[class]++
		bytes += size
		res.stored = true
		return nil
	})
	if err != nil {
		return appended{}, fmt.Errorf("firmwareclient: store %s message: %w", ch, err)
	}
	o.count, o.bytes = count, bytes
	return res, nil
}

func total(c [numClasses]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// after returns up to n records with a seq greater than seq, in order.
func (o *outbox) after(seq int64, n int) ([]record, error) {
	var recs []record
	err := o.db.View(func(tx *bolt.Tx) error {
		c := o.bucket(tx).Bucket(bucketQueue).Cursor()
		for k, v := c.Seek(seqKey(seq + 1)); k != nil && len(recs) < n; k, v = c.Next() {
			recs = append(recs, record{
				seq:     int64(binary.BigEndian.Uint64(k)),
				ch:      channelCodes[v[0]],
				payload: append([]byte(nil), v[1:]...),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("firmwareclient: read outbox: %w", err)
	}
	return recs, nil
}

// remove deletes acknowledged records. A seq no longer there (dropped while
// in flight) is skipped.
func (o *outbox) remove(seqs []int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var count [numClasses]int
	var bytes int64
	err := o.db.Batch(func(tx *bolt.Tx) error {
		count, bytes = o.count, o.bytes
		tb := o.bucket(tx)
		q := tb.Bucket(bucketQueue)
		for _, seq := range seqs {
			k := seqKey(seq)
			v := q.Get(k)
			if v == nil {
				continue
			}
			class := classOf(channelCodes[v[0]])
			bytes -= int64(len(v))
			if err := q.Delete(k); err != nil {
				return err
			}
			if err := tb.Bucket(classBuckets[class]).Delete(k); err != nil {
				return err
			}
			count[class]--
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("firmwareclient: remove acknowledged messages: %w", err)
	}
	o.count, o.bytes = count, bytes
	return nil
}

// backlog returns the number of messages and bytes waiting.
func (o *outbox) backlog() (int, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return total(o.count), o.bytes
}

// maxHandledCommands bounds the remembered command IDs.
const maxHandledCommands = 100

// handled reports whether the command id was carried out already, and
// remembers it when not.
func (o *outbox) handled(id string, at time.Time) (bool, error) {
	seen := false
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := o.bucket(tx).Bucket(bucketCmds)
		if b.Get([]byte(id)) != nil {
			seen = true
			return nil
		}
		if b.Stats().KeyN >= maxHandledCommands {
			// Forget the oldest.
			var oldK []byte
			var oldT int64
			_ = b.ForEach(func(k, v []byte) error {
				if t := int64(binary.BigEndian.Uint64(v)); oldK == nil || t < oldT {
					oldK, oldT = append([]byte(nil), k...), t
				}
				return nil
			})
			if err := b.Delete(oldK); err != nil {
				return err
			}
		}
		return b.Put([]byte(id), seqKey(at.UnixNano()))
	})
	if err != nil {
		return false, fmt.Errorf("firmwareclient: remember command %s: %w", id, err)
	}
	return seen, nil
}

// pendingCommand is a command whose outcome is known only after a restart:
// a reboot, or an update whose Flash restarts the terminal.
type pendingCommand struct {
	Cmd posfleet.Command `json:"cmd"`
	// From is the firmware version before the update.
	From string `json:"from,omitempty"`
}

func (o *outbox) setPending(p *pendingCommand) error {
	err := o.db.Update(func(tx *bolt.Tx) error {
		meta := o.bucket(tx).Bucket(bucketMeta)
		if p == nil {
			return meta.Delete(keyPending)
		}
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return meta.Put(keyPending, b)
	})
	if err != nil {
		return fmt.Errorf("firmwareclient: save pending command: %w", err)
	}
	return nil
}

func (o *outbox) pending() (*pendingCommand, error) {
	var p *pendingCommand
	err := o.db.View(func(tx *bolt.Tx) error {
		v := o.bucket(tx).Bucket(bucketMeta).Get(keyPending)
		if v == nil {
			return nil
		}
		p = new(pendingCommand)
		return json.Unmarshal(v, p)
	})
	if err != nil {
		return nil, fmt.Errorf("firmwareclient: read pending command: %w", err)
	}
	return p, nil
}
