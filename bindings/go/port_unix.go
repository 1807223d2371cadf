//go:build unix && !linux

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

// manualMode: as on Linux, a port has no completion thread unless asked for
// (CompletionThread, or Spin, which only the thread can do). The backend is
// the thread pool here, so completions come from its workers; the
// goroutine that submits still takes those that are ready in the same cgo
// call, and the drainer below the rest, without a completion thread
// between the workers and Go.
func manualMode(cfg Config) bool { return !cfg.CompletionThread && cfg.Spin == 0 }

// waker: the drainer goroutine waits in Go's poller (kqueue), so no thread
// waits in C. With a completion thread it waits on the read end of the
// queue's pipe, which the bridge's callback writes to. In manual mode it
// waits on the port's own pipe (ovl_port_event), which the threads backend
// writes to when its first completion of a batch is ready and which
// ovl_poll empties; Linux's arming of the handle (io_uring completes page
// cache reads inside the submit, each of which would wake the poller) has
// nothing to save here, where every completion comes from a worker thread.
type waker struct {
	f  *os.File        // the queue's pipe, or a duplicate of the port's (manual)
	rc syscall.RawConn // manual: f's, to wait for readability without reading
}

func (r *ring) startWaker() error {
	if r.p.manual {
		var efd C.ovl_fd
		if rc := C.ovl_port_event(r.c, &efd); rc != 0 {
			return &OpError{Op: "port", Offset: -1, Code: Errno(rc)}
		}
		// ovl owns its pipe and empties it in ovl_poll; Go's poller gets a
		// duplicate of the read end of its own, which it may close. The
		// pipe is nonblocking already (the flag is shared), so os.NewFile
		// puts the duplicate in the poller.
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
	// The read end is nonblocking, so os.NewFile registers it with the
	// poller; the *os.File owns it from here on.
	r.waker.f = os.NewFile(uintptr(fd), "ovl-wake-pipe")
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

// armDrainer: the port's pipe is always in the poller (see waker).
func (r *ring) armDrainer() {}

// loop is the drainer: deliver a batch, then sleep on the pipe.
func (r *ring) loop() {
	if r.p.manual {
		r.loopManual()
		return
	}
	defer close(r.loopDone)
	var b [64]byte
	for {
		if r.drain() {
			return
		}
		if _, err := r.waker.f.Read(b[:]); err != nil && !errors.Is(err, syscall.EINTR) {
			// Only closing the pipe could do this, and only Close does
			// that, after this goroutine ended.
			panic("ovl: reading the queue's wake-up pipe: " + err.Error())
		}
	}
}

// loopManual is the manual-mode drainer: each time the port's pipe becomes
// readable it polls the port (ovl_poll empties the pipe) and delivers.
// Nothing here reads the pipe: Go's poller (kqueue, edge-triggered) wakes
// the goroutine when a write arrives, and remembers a write that arrives
// while it is polling, so the next wait returns at once and no wake-up is
// lost. It ends when Close closes the duplicate.
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
		panic("ovl: waiting on the port's wake-up pipe: " + err.Error())
	}
}

func (w *waker) close() { w.f.Close() }
