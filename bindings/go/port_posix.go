//go:build unix

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

// manualMode: a port has no completion thread unless asked for
// (CompletionThread, or Spin, which only the thread can do).
func manualMode(cfg Config) bool { return !cfg.CompletionThread && cfg.Spin == 0 && !cfg.NoSpin }

// waker: the drainer goroutine waits in Go's poller (epoll, kqueue), so no
// thread waits in C.
//
// In manual mode it waits on the port's own event handle (ovl_port_event:
// an eventfd on io_uring, a pipe on the threads backend). The library
// signals it only for completions that wait with nobody delivering: a
// goroutine that submits delivers what is ready in the same call
// (ovl_submit_and_poll), and on io_uring the completions that call reaps
// itself, such as page-cache reads done inside its own io_uring_enter, do
// not signal it, so they wake nothing. A call that finds another thread
// delivering returns at once, and that thread looks again before it lets
// go, so what was ready is delivered and no wake-up is lost to Go's
// edge-triggered poller.
//
// With a completion thread it waits on the queue's eventfd (a pipe outside
// Linux), which the bridge's callback signals.
type waker struct {
	f  *os.File        // the queue's eventfd, or a duplicate of the port's handle (manual)
	rc syscall.RawConn // manual: f's, to wait for readability without reading
}

func (r *ring) startWaker() error {
	if r.p.manual {
		var efd C.ovl_fd
		if rc := C.ovl_port_event(r.c, &efd); rc != 0 {
			return &OpError{Op: "port", Offset: -1, Code: Errno(rc)}
		}
		// ovl owns its handle and resets it in ovl_poll; Go's poller gets a
		// duplicate of its own, which it may close. The handle is
		// nonblocking already (the flag is shared), so os.NewFile puts the
		// duplicate in the poller.
		fd, err := dupCloexec(int(efd))
		if err != nil {
			return &OpError{Op: "port", Offset: -1, Code: EOS, OSErr: errnoOf(err)}
		}
		r.waker.f = os.NewFile(uintptr(fd), "ovl-port-event")
		rc, err := r.waker.f.SyscallConn()
		if err != nil {
			r.waker.f.Close()
			return &OpError{Op: "port", Offset: -1, Code: EOS, Err: err}
		}
		r.waker.rc = rc
		return nil
	}
	fd := C.govl_queue_eventfd(r.q)
	if fd < 0 {
		return &OpError{Op: "port", Offset: -1, Code: EOS}
	}
	// Nonblocking, so os.NewFile registers it with the poller; the
	// *os.File owns it from here on.
	r.waker.f = os.NewFile(uintptr(fd), "ovl-wake")
	return nil
}

// dupCloexec duplicates fd with close-on-exec set, under syscall.ForkLock
// as the os package does, so that no exec in between inherits it.
func dupCloexec(fd int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	nfd, err := syscall.Dup(fd)
	if err != nil {
		return -1, err
	}
	syscall.CloseOnExec(nfd)
	return nfd, nil
}

// loop is the drainer: deliver a batch, then sleep on the wake-up handle.
func (r *ring) loop() {
	if r.p.manual {
		r.loopManual()
		return
	}
	defer close(r.loopDone)
	var b [64]byte // an eventfd's 8 bytes, or what the pipe holds
	for {
		if r.drain() {
			return
		}
		if _, err := r.waker.f.Read(b[:]); err != nil && !errors.Is(err, syscall.EINTR) {
			// Only closing the handle could do this, and only Close does
			// that, after this goroutine ended.
			panic("ovl: reading the queue's wake-up handle: " + err.Error())
		}
	}
}

// loopManual is the manual-mode drainer: each time the port's handle
// becomes readable it polls the port and delivers (ovl_poll resets the
// handle when it finds nothing). Nothing here reads the handle: Go's
// poller (edge-triggered) wakes the goroutine when a signal arrives, and
// remembers one that arrives while it is polling, so the next wait returns
// at once and none is lost. It ends when Close closes the duplicate.
func (r *ring) loopManual() {
	p := r.p
	defer close(r.loopDone)
	err := r.waker.rc.Read(func(uintptr) bool {
		r.reap(true)
		return false // wait for the next wake-up
	})
	select {
	case <-p.closing: // Close closed the duplicate ("use of closed file")
	default:
		panic("ovl: waiting on the port's event handle: " + err.Error())
	}
}

func (w *waker) close() { w.f.Close() }
