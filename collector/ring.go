package collector

import "sync"

// ring keeps the latest n events of a kind for the vendor to look at.
type ring[T any] struct {
	mu   sync.Mutex
	buf  []T
	next int
	size int
}

func newRing[T any](size int) *ring[T] { return &ring[T]{size: size} }

func (r *ring[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) < r.size {
		r.buf = append(r.buf, v)
	} else {
		r.buf[r.next] = v
	}
	r.next = (r.next + 1) % r.size
}

// latest returns up to n events that keep says to keep, newest first.
func (r *ring[T]) latest(n int, keep func(T) bool) []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []T
	for i := 1; i <= len(r.buf) && len(out) < n; i++ {
		v := r.buf[(r.next-i+len(r.buf))%len(r.buf)]
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}
