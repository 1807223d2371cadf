//go:build ovl_directcb && linux

package ovl

// Benchmark-only (build tag ovl_directcb): the bridges issue 4 asks to
// compare. The production bridge is the queue in bridge.c; this file adds
// the same queue with the callback timed, and the "direct" alternative in
// which the C callback calls the exported Go function below on the port's
// completion thread (so the thread waits for a free P on every batch).

/*
#include "bridge_direct.h"
*/
import "C"

import (
	"runtime/cgo"
	"time"
	"unsafe"
)

//export govlDirectDeliver
func govlDirectDeliver(h C.uintptr_t, items *C.ovl_completion, n C.size_t) {
	p := cgo.Handle(h).Value().(*Port)
	for _, it := range unsafe.Slice(items, int(n)) {
		p.deliver(uint64(uintptr(it.ctx)), int64(it.result), int32(it.os_error))
	}
}

// CallbackStats is how long the completion thread spent in the callback.
type CallbackStats struct {
	Calls, Items   uint64
	Total, Longest time.Duration
}

// newTimedPort makes a port whose callback is timed: the production queue
// bridge (direct false) or the exported-Go-callback one (direct true). The
// stats function may be called once the port is closed.
func newTimedPort(cfg Config, direct bool) (*Port, func() CallbackStats, error) {
	var t *C.govl_timed
	var h cgo.Handle
	var st CallbackStats
	cfg.CompletionThread = true // the bridges compared run on it
	p, err := newPort(cfg, !direct, func(p *Port) bridge {
		cb := C.ovl_callback(C.govl_timed_queue_callback)
		if direct {
			h = cgo.NewHandle(p)
			cb = C.ovl_callback(C.govl_direct_callback)
		}
		t = C.govl_timed_new(p.q, C.uintptr_t(h))
		return bridge{cb: cb, ud: unsafe.Pointer(t), onClose: func() {
			st = CallbackStats{
				Calls:   uint64(t.stats.calls),
				Items:   uint64(t.stats.items),
				Total:   time.Duration(t.stats.total_ns),
				Longest: time.Duration(t.stats.max_ns),
			}
			C.govl_timed_free(t)
			if direct {
				h.Delete()
			}
		}}
	})
	return p, func() CallbackStats { return st }, err
}
