package ovl

/*
#include "bridge.h"
*/
import "C"

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
)

// manualMode: on Linux a port has no completion thread unless asked for
// (CompletionThread, or Spin, which only the thread can do).
func manualMode(cfg Config) bool { return !cfg.CompletionThread && cfg.Spin == 0 }

// waker: on Linux the drainer goroutine waits in Go's poller, so no thread
// waits in C.
//
// With a completion thread it waits on the queue's eventfd, which the
// bridge's callback signals.
//
// In manual mode the library signals the port's own eventfd for every
// completion it posts, including the page-cache reads that complete inside
// the submitter's own io_uring_enter and that the submitter takes itself.
// Were that eventfd in Go's poller, every read would wake the thread parked
// in epoll_wait on the idle P (measured: 5.7 µs per read at 1 goroutine
// against 3.1 µs without it). So the eventfd sits in an epoll set of our
// own, registered EPOLLONESHOT, and only that set is in Go's poller: the
// eventfd is armed (EPOLL_CTL_MOD) only while some operation's completion
// was not delivered inline, and one signal disarms it again.
type waker struct {
	f     *os.File        // the queue's eventfd, or our epoll set (manual)
	rc    syscall.RawConn // manual: f's, for epoll_ctl and epoll_wait
	efd   int             // manual: the port's eventfd (borrowed from ovl)
	armed atomic.Bool
}

func (r *ring) startWaker() error {
	p := r.p
	if p.manual {
		var efd C.ovl_fd
		if rc := C.ovl_port_event(r.c, &efd); rc != 0 {
			return &OpError{Op: "port", Offset: -1, Code: Errno(rc)}
		}
		ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return &OpError{Op: "port", Offset: -1, Code: EOS, OSErr: errnoOf(err)}
		}
		// Nonblocking, so that os.NewFile puts it in Go's poller.
		if err := syscall.SetNonblock(ep, true); err != nil {
			syscall.Close(ep)
			return &OpError{Op: "port", Offset: -1, Code: EOS, OSErr: errnoOf(err)}
		}
		// Registered disarmed (no events); ovl owns the eventfd and
		// resets it in ovl_poll, we never read or close it.
		ev := syscall.EpollEvent{Events: 0}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, int(efd), &ev); err != nil {
			syscall.Close(ep)
			return &OpError{Op: "port", Offset: -1, Code: EOS, OSErr: errnoOf(err)}
		}
		r.waker.efd = int(efd)
		r.waker.f = os.NewFile(uintptr(ep), "ovl-port-epoll")
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
	// The eventfd is nonblocking, so os.NewFile registers it with the
	// poller; the *os.File owns it from here on.
	r.waker.f = os.NewFile(uintptr(fd), "ovl-eventfd")
	return nil
}

// arm makes the next completion the library posts wake the drainer (one
// signal, then it is disarmed). EPOLL_CTL_MOD also checks the eventfd at
// once: a completion posted before the call (its signal not yet reset by
// an ovl_poll) fires too, so none is missed. The call goes through the
// epoll set's RawConn so that Close cannot close the set (and the number be
// reused) under it; once the port is closed (ovl closed its eventfd, the
// registration is gone: EBADF, ENOENT) there is nothing left to arm for:
// Close delivers what remains itself.
func (w *waker) arm() {
	if !w.armed.CompareAndSwap(false, true) {
		return
	}
	var err error
	cerr := w.rc.Control(func(ep uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLONESHOT}
		err = syscall.EpollCtl(int(ep), syscall.EPOLL_CTL_MOD, w.efd, &ev)
	})
	if cerr == nil && err != nil && err != syscall.EBADF && err != syscall.ENOENT {
		panic("ovl: arming the port's eventfd: " + err.Error())
	}
}

// armDrainer: an operation was submitted whose completion was not there
// right after the submit: the drainer must be woken when it is.
func (r *ring) armDrainer() { r.waker.arm() }

// loop is the drainer: deliver a batch, then sleep on the eventfd.
func (r *ring) loop() {
	if r.p.manual {
		r.loopManual()
		return
	}
	defer close(r.loopDone)
	var b [8]byte
	for {
		if r.drain() {
			return
		}
		if _, err := r.waker.f.Read(b[:]); err != nil && !errors.Is(err, syscall.EINTR) {
			// Only closing the eventfd could do this, and only Close
			// does that, after this goroutine ended.
			panic("ovl: reading the port's eventfd: " + err.Error())
		}
	}
}

// loopManual is the manual-mode drainer. When our epoll set becomes
// readable (the armed eventfd fired and disarmed itself), it takes the
// event, polls the port, delivers, and re-arms while anyone still waits.
// Submitting goroutines poll too, so this goroutine only delivers what
// completes asynchronously (O_DIRECT, pipes, sockets, cancellations, the
// threads backend). It ends when Close closes the epoll set.
func (r *ring) loopManual() {
	p := r.p
	defer close(r.loopDone)
	var evs [1]syscall.EpollEvent
	err := r.waker.rc.Read(func(ep uintptr) bool {
		// Consume the event (the set is level-triggered for Go's poller
		// while it holds one); the oneshot registration is now disarmed.
		var n int
		for {
			var err error
			n, err = syscall.EpollWait(int(ep), evs[:], 0)
			if err != syscall.EINTR {
				break
			}
		}
		if n <= 0 {
			// Nothing fired: RawConn.Read's first call, made before it
			// waits, or a wake-up for nothing; the registration is as
			// it was (armed or not). Polling here would only hold the
			// bridge's poller role for nothing, and a lone operation
			// submitted meanwhile would find it taken and hand its
			// wait over to this goroutine instead of waiting in the
			// library.
			return false
		}
		r.waker.armed.Store(false)
		r.reap(true)
		if r.undelivered.Load() > 0 {
			r.waker.arm()
		}
		return false // wait for the next event
	})
	select {
	case <-p.closing: // Close closed the set ("use of closed file")
	default:
		panic("ovl: waiting on the port's epoll set: " + err.Error())
	}
}

func (w *waker) close() { w.f.Close() }
