package ovl

/*
#include "bridge.h"
*/
import "C"

import (
	"errors"
	"os"
	"syscall"
)

// waker: on Linux the queue's eventfd, read through Go's poller, so the
// drainer goroutine parks in the runtime and no thread waits in C.
type waker struct {
	f *os.File
}

func (p *Port) startWaker() error {
	fd := C.govl_queue_eventfd(p.q)
	if fd < 0 {
		return &OpError{Op: "port", Offset: -1, Code: EOS}
	}
	// The eventfd is nonblocking, so os.NewFile registers it with the
	// poller; the *os.File owns it from here on.
	p.waker.f = os.NewFile(uintptr(fd), "ovl-eventfd")
	return nil
}

// loop is the drainer: deliver a batch, then sleep on the eventfd.
func (p *Port) loop() {
	defer close(p.loopDone)
	var b [8]byte
	for {
		if p.drain() {
			return
		}
		if _, err := p.waker.f.Read(b[:]); err != nil && !errors.Is(err, syscall.EINTR) {
			// Only closing the eventfd could do this, and only Close
			// does that, after this goroutine ended.
			panic("ovl: reading the port's eventfd: " + err.Error())
		}
	}
}

func (w *waker) close() { w.f.Close() }
