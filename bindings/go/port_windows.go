package ovl

/*
#include "bridge.h"
*/
import "C"

// waker: on Windows the drainer goroutine blocks in a C wait on the queue's
// event (as go-winio's goroutine blocks in GetQueuedCompletionStatus); the
// callback sets the event.
type waker struct{}

// manualMode: never on Windows. The IOCP backend has no pollable handle
// (ovl_port_event returns OVL_ENOTSUP), so completions always come through
// the completion thread and the queue.
func manualMode(Config) bool { return false }

func (r *ring) startWaker() error { return nil }

func (r *ring) loop() {
	defer close(r.loopDone)
	for {
		if r.drain() {
			return
		}
		C.govl_wait(r.q)
	}
}

func (w *waker) close() {}
