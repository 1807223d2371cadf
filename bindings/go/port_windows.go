package ovl

/*
#include "bridge.h"
*/
import "C"

// waker: on Windows the drainer goroutine blocks in a C wait on the queue's
// event (as go-winio's goroutine blocks in GetQueuedCompletionStatus); the
// callback sets the event.
type waker struct{}

func (p *Port) startWaker() error { return nil }

func (p *Port) loop() {
	defer close(p.loopDone)
	for {
		if p.drain() {
			return
		}
		C.govl_wait(p.q)
	}
}

func (w *waker) close() {}
