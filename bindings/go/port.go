package ovl

/*
#include "bridge.h"
*/
import "C"

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Backend selects how a Port does its I/O.
type Backend uint32

// The backends of ovl.h. BackendAuto picks io_uring where it works and the
// thread pool elsewhere on Linux (the OVL_BACKEND environment variable
// overrides Auto), IOCP on Windows.
const (
	BackendAuto    = Backend(C.OVL_BACKEND_AUTO)
	BackendURing   = Backend(C.OVL_BACKEND_URING)
	BackendThreads = Backend(C.OVL_BACKEND_THREADS)
	BackendIOCP    = Backend(C.OVL_BACKEND_IOCP)
)

func (b Backend) String() string {
	switch b {
	case BackendAuto:
		return "auto"
	case BackendURing:
		return "uring"
	case BackendThreads:
		return "threads"
	case BackendIOCP:
		return "iocp"
	}
	return fmt.Sprintf("Backend(%d)", uint32(b))
}

// Limits of ovl.h.
const (
	DefaultQueueDepth = int(C.OVL_DEFAULT_QUEUE_DEPTH)
	MaxQueueDepth     = int(C.OVL_MAX_QUEUE_DEPTH)
	MaxIOSize         = int(C.OVL_MAX_IO_SIZE)
)

// Config configures a Port. The zero value is the defaults.
type Config struct {
	// QueueDepth bounds the operations in flight on the port (0 means
	// DefaultQueueDepth; at most MaxQueueDepth). An operation started while
	// QueueDepth are in flight waits for one to finish (or for its context,
	// deadline or Close) instead of failing.
	QueueDepth int
	// Backend to use; BackendAuto by default.
	Backend Backend
	// Threads is the number of worker threads of the threads backend
	// (0 means the library's default, 4). On the uring backend, when not
	// 0, it caps io_uring's kernel workers (io-wq, threads named
	// "iou-wrk-PID"; Linux 5.15+), which carry the operations the kernel
	// cannot issue without blocking: an O_DIRECT read of a range whose
	// pages are still dirty in the page cache, fsync, some buffered
	// writes. The cap holds for each thread that submits (each Go M has
	// its own io-wq), so Threads: 1 bounds them by the number of Ms. 0
	// leaves the kernel's default (up to 4 per CPU per submitting thread
	// for file I/O).
	Threads int
	// Spin, if positive, makes the completion thread spin this long for
	// completions after each batch before it sleeps (0: the library
	// decides; it spins briefly, only while that finds completions, and
	// never on an idle port). A positive Spin implies CompletionThread.
	Spin time.Duration
	// NoSpin makes the completion thread never spin: it sleeps in the
	// kernel as soon as a batch is delivered (OVL_SPIN_NONE), for a port
	// that must not spend CPU on polling at all. It implies
	// CompletionThread and excludes Spin.
	NoSpin bool
	// Rings is how many library ports (io_uring instances) a Port in
	// manual mode on the uring backend spreads its operations over; 0
	// means GOMAXPROCS at creation, at most 8. One ring issues its
	// submissions one at a time in the kernel; with one per P they run in
	// parallel. Other modes and backends use one.
	Rings int
	// CompletionThread makes the port deliver completions on the library's
	// completion thread, as on Windows. By default on Linux (and macOS and
	// the BSDs) the port has no completion thread (OVL_PORT_MANUAL): the
	// goroutine that submits an operation polls the port in the same cgo
	// call, so a read served from the page cache comes back without any
	// thread or goroutine being woken, and a goroutine waiting in Go's
	// poller on the port's eventfd (pipe) delivers the rest. See the
	// package documentation.
	CompletionThread bool
}

// Op kinds.
const (
	opRead  = uint32(C.OVL_OP_READ)
	opWrite = uint32(C.OVL_OP_WRITE)
	opFsync = uint32(C.OVL_OP_FSYNC)
)

// offsetCurrent is OVL_OFFSET_CURRENT: stream I/O.
const offsetCurrent = int64(-1)

// Slot states: free -> submitting (slot taken, submit under way) ->
// inflight (submit accepted, id known) -> done (completion delivered to the
// slot's channel) -> free (released by whoever consumed the result).
const (
	stFree = iota
	stSubmitting
	stInflight
	stDone
)

// completion is what the drainer hands a waiting operation.
type completion struct {
	res   int64
	oserr int32
	cause error // why the binding cancelled it, if it did
}

// A slot is the per-operation context. Its key, index | generation<<32,
// is what the C side carries as the op's ctx: an integer, never a Go
// pointer. A completion whose generation does not match the slot's (stale
// or duplicated) is counted and ignored.
type slot struct {
	slotData
	// Whole cache lines per slot: the slots of two goroutines running on
	// different CPUs must not share a line.
	_ [cacheLine - unsafe.Sizeof(slotData{})%cacheLine]byte
}

// cacheLine is the size the hot shared words are padded to.
const cacheLine = 64

type slotData struct {
	mu            sync.Mutex
	gen           uint32
	state         uint8
	cancelPending bool // cancel asked for before the id was known
	id            uint64
	file          *File
	cause         error
	pin           runtime.Pinner // pins the buffer from submit to completion
	ch            chan completion
	// asynchronous operations only
	async chan Result
	buf   []byte
	off   int64
	kind  uint32
	// the request, for the batch submit (manual mode)
	key      uint64
	fd       uintptr
	ptr      unsafe.Pointer // the buffer (pinned)
	n        int
	flags    uint32
	pendNext uint32 // queued for a batch: the slot index+1 queued before it
	r        *ring  // the ring the operation was submitted to
}

// Port is an ovl completion port: the library's port, its completion thread
// and the goroutine that turns completions into channel sends. A Port is
// safe for concurrent use. Close it when done.
type Port struct {
	*ring         // the first ring; the only one but in manual mode on uring
	rings []*ring // operations are spread over these (see Config.Rings)

	backend string
	depth   int
	manual  bool // OVL_PORT_MANUAL: no completion thread (Linux)

	slots []slot
	free  freeList // free slot indices: the queue-depth semaphore
	// The wake-up of goroutines waiting for a free slot (one token: each
	// woken waiter passes it on while slots and waiters remain).
	slotFreed chan struct{}

	mu      sync.RWMutex // closed; held shared around each submit
	closed  bool
	closing chan struct{}
	onClose func()

	stale     atomic.Uint64 // completions with an unknown slot key
	queueFull atomic.Uint64 // OVL_EQUEUEFULL retries
}

// A ring is one library port (one io_uring) with its completion queue and
// drainer goroutine. One io_uring issues its submissions one at a time in
// the kernel (under the ring's uring_lock), so in manual mode on uring a
// Port spreads its operations over one ring per P: each goroutine uses the
// ring its P used last (a sync.Pool hint), so the Ps submit in parallel.
type ring struct {
	p        *Port
	c        *C.ovl_port
	q        *C.govl_queue
	loopDone chan struct{}
	waker    waker

	// manual mode: blocking operations queued for one batch submit
	batch batcher
}

// batcher gathers the blocking operations of many goroutines into one
// ovl_submit (one lock, one io_uring_enter, one poll for all of them).
//
// The queue is a lock-free stack of slot indices linked through the slots
// (slot.pendNext): head holds the top index+1 (0: empty) in its low 32
// bits and, in leaderBit, "a leader will submit what is queued". A
// goroutine that pushes onto an empty stack without a leader becomes the
// leader; the leader takes the whole stack with one swap, and gives up
// the role only with a compare-and-swap that finds the stack still empty.
// (A mutex here was a contended lock per operation between the Ps.)
type batcher struct {
	_    [cacheLine]byte // every queued operation writes head: its own line
	head atomic.Uint64
	_    [cacheLine - 8]byte
	list []uint32 // the leader's: the operations it is submitting
}

const leaderBit = 1 << 32

// push queues slot idx and reports whether the caller is now the leader.
func (b *batcher) push(p *Port, idx uint32) bool {
	s := &p.slots[idx]
	for {
		h := b.head.Load()
		s.pendNext = uint32(h) // read by the leader after its swap
		if b.head.CompareAndSwap(h, uint64(idx+1)|leaderBit) {
			return h&leaderBit == 0
		}
	}
}

// livePorts counts the ports not closed (tests assert it is zero at exit).
var livePorts atomic.Int64

// testHookNewPort, if set (by TestMain, before any port exists), is called
// with every port created, so that the tests can check at exit that no
// slot is still in use.
var testHookNewPort func(*Port)

// freeList is a lock-free stack of slot indices: an operation takes a slot
// and gives it back with one compare-and-swap each (a channel cost a lock
// and a copy each way, on a line every goroutine of the port touches).
// head packs the top index+1 (0: empty) in bits 0-15, the number of free
// slots in bits 16-31 and a tag bumped by every change in bits 32-63, so a
// stale head never compares equal (ABA). Indices are < MaxQueueDepth.
type freeList struct {
	_    [cacheLine]byte // every operation writes head: a line of its own
	head atomic.Uint64
	next []atomic.Uint32 // next[i]: the index+1 below slot i on the stack
	// waiters counts the goroutines waiting for a free slot. Every
	// release reads it: here it shares the line release has just
	// written, not one that other writes (the Port's RWMutex) move.
	waiters atomic.Int32
	_       [cacheLine - 36]byte
}

func (l *freeList) pop() (uint32, bool) {
	for {
		h := l.head.Load()
		top := uint32(h & 0xffff)
		if top == 0 {
			return 0, false
		}
		below := l.next[top-1].Load() // stale if h is: the CAS fails then
		nh := (h>>32+1)<<32 | (h>>16&0xffff-1)<<16 | uint64(below)
		if l.head.CompareAndSwap(h, nh) {
			return top - 1, true
		}
	}
}

func (l *freeList) push(idx uint32) {
	for {
		h := l.head.Load()
		l.next[idx].Store(uint32(h & 0xffff))
		nh := (h>>32+1)<<32 | (h>>16&0xffff+1)<<16 | uint64(idx+1)
		if l.head.CompareAndSwap(h, nh) {
			return
		}
	}
}

// len returns how many slots are free.
func (l *freeList) len() int { return int(l.head.Load() >> 16 & 0xffff) }

// NewPort creates a port. Errors are *OpError with Op "port": EINVAL for a
// bad configuration, EUNAVAIL for a backend this host lacks.
func NewPort(cfg Config) (*Port, error) {
	return newPort(cfg, true, func(p *Port) bridge {
		return bridge{cb: C.ovl_callback(C.govl_callback), ud: unsafe.Pointer(p.q)}
	})
}

// bridge is how completions get from the port's callback to Go: normally
// govl_callback and its queue, drained by a goroutine. (Builds with the tag
// ovl_directcb add the alternatives the benchmarks compare.)
type bridge struct {
	cb      C.ovl_callback
	ud      unsafe.Pointer
	onClose func() // after the library port is closed
}

// newPort creates the port; queue says whether it has a completion queue
// and a drainer goroutine; mk gives the callback to register.
func newPort(cfg Config, queue bool, mk func(p *Port) bridge) (*Port, error) {
	depth := cfg.QueueDepth
	if depth == 0 {
		depth = DefaultQueueDepth
	}
	if depth < 0 || depth > MaxQueueDepth || cfg.Threads < 0 || cfg.Spin < 0 || cfg.Rings < 0 ||
		(cfg.NoSpin && cfg.Spin != 0) {
		return nil, &OpError{Op: "port", Offset: -1, Code: EINVAL}
	}
	p := &Port{
		depth:     depth,
		slots:     make([]slot, depth),
		free:      freeList{next: make([]atomic.Uint32, depth)},
		slotFreed: make(chan struct{}, 1),
		closing:   make(chan struct{}),
	}
	p.ring = &ring{p: p, loopDone: make(chan struct{})}
	p.rings = []*ring{p.ring}
	for i := range p.slots {
		p.slots[i].gen = 1
		p.slots[i].ch = make(chan completion, 1)
	}
	for i := depth - 1; i >= 0; i-- {
		p.free.push(uint32(i))
	}
	if queue {
		p.q = C.govl_queue_new(C.size_t(depth))
		if p.q == nil {
			return nil, &OpError{Op: "port", Offset: -1, Code: ENOMEM}
		}
	}
	p.manual = queue && manualMode(cfg)
	var flags C.uint32_t
	if p.manual {
		flags = C.OVL_PORT_MANUAL
		C.govl_queue_set_manual(p.q)
	}
	br := mk(p)
	fail := func() {
		if br.onClose != nil {
			br.onClose()
		}
		if p.q != nil {
			C.govl_queue_free(p.q)
		}
	}
	// The C field is µs in a uint32_t whose largest value means "never".
	spin := min(int64(cfg.Spin/time.Microsecond), 1<<32-2)
	if cfg.NoSpin {
		spin = C.OVL_SPIN_NONE
	}
	var cp *C.ovl_port
	rc := C.govl_create_port(C.uint32_t(depth), C.uint32_t(cfg.Backend), C.uint32_t(cfg.Threads),
		C.uint32_t(spin), flags, br.cb, br.ud, &cp)
	if rc != 0 {
		fail()
		return nil, &OpError{Op: "port", Offset: -1, Code: Errno(rc)}
	}
	p.c = cp
	p.backend = C.GoString(C.ovl_backend_name(cp))
	p.onClose = br.onClose
	if p.q != nil {
		if err := p.startWaker(); err != nil {
			C.ovl_close_port(cp)
			fail()
			return nil, err
		}
		go p.loop()
	} else {
		close(p.loopDone)
	}
	if p.manual && p.backend == "uring" {
		n := cfg.Rings
		if n == 0 {
			n = min(runtime.GOMAXPROCS(0), 8)
		}
		for len(p.rings) < n {
			r, err := p.addRing(cfg, depth)
			if err != nil {
				break // fewer rings: slower, not wrong
			}
			p.rings = append(p.rings, r)
		}
	}
	livePorts.Add(1)
	if testHookNewPort != nil {
		testHookNewPort(p)
	}
	return p, nil
}

// addRing creates one more manual-mode ring like the first.
func (p *Port) addRing(cfg Config, depth int) (*ring, error) {
	r := &ring{p: p, loopDone: make(chan struct{})}
	r.q = C.govl_queue_new(C.size_t(depth))
	if r.q == nil {
		return nil, &OpError{Op: "port", Offset: -1, Code: ENOMEM}
	}
	C.govl_queue_set_manual(r.q)
	rc := C.govl_create_port(C.uint32_t(depth), C.uint32_t(BackendURing), C.uint32_t(cfg.Threads), 0,
		C.OVL_PORT_MANUAL, C.ovl_callback(C.govl_callback), unsafe.Pointer(r.q), &r.c)
	if rc != 0 {
		C.govl_queue_free(r.q)
		return nil, &OpError{Op: "port", Offset: -1, Code: Errno(rc)}
	}
	if err := r.startWaker(); err != nil {
		C.ovl_close_port(r.c)
		C.govl_queue_free(r.q)
		return nil, err
	}
	go r.loop()
	return r, nil
}

// pick returns the ring for an operation: one at random. (Measured at 64
// goroutines: a random ring per operation lets the rings' leaders flush in
// parallel; a per-P hint through sync.Pool did not, the goroutines a batch
// wakes all landing on the leader's P and so on its ring.)
func (p *Port) pick() *ring {
	if len(p.rings) == 1 {
		return p.ring
	}
	return p.rings[rand.Uint32N(uint32(len(p.rings)))]
}

// Backend returns the backend's name: "uring", "threads" or "iocp".
func (p *Port) Backend() string { return p.backend }

// QueueDepth returns the most operations the port keeps in flight.
func (p *Port) QueueDepth() int { return p.depth }

// Close closes the port: operations in flight are cancelled and fail with
// an error matching fs.ErrClosed (unless they finished first), later ones
// fail the same way. It returns once every completion has come back and
// been delivered. Files opened on the port stay to be closed (which then
// only closes their descriptors).
func (p *Port) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return &OpError{Op: "close", Offset: -1, Code: ECLOSED, Err: fs.ErrClosed}
	}
	p.closed = true
	close(p.closing)
	p.mu.Unlock()
	// Mark every operation in flight as closed first, so that the
	// ECANCELED that ovl_close_port gives them reads as fs.ErrClosed.
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		if (s.state == stSubmitting || s.state == stInflight) && s.cause == nil {
			s.cause = errClosed
		}
		s.mu.Unlock()
	}
	var rc C.int32_t
	var lost C.uint64_t
	for _, r := range p.rings {
		if c := C.ovl_close_port(r.c); c != 0 && rc == 0 { // remaining completions are queued now
			rc = c
		}
		if r.q == nil {
			continue
		}
		if p.manual {
			// The drainer waits on the port's event handle, not on
			// the queue: closing its file stops it; then what the
			// close delivered is taken here.
			r.waker.close()
			<-r.loopDone
			r.reap(false)
		} else {
			C.govl_stop(r.q)
			<-r.loopDone
			r.waker.close()
		}
		lost += C.govl_lost(r.q)
		C.govl_queue_free(r.q)
		r.q = nil
	}
	if p.onClose != nil {
		p.onClose()
	}
	livePorts.Add(-1)
	if rc != 0 {
		return &OpError{Op: "close", Offset: -1, Code: Errno(rc)}
	}
	if lost != 0 {
		return fmt.Errorf("ovl: %d completions lost (out of memory on the completion thread)", uint64(lost))
	}
	return nil
}

// Stats is a snapshot of a port's counters.
type Stats struct {
	Inflight  uint32 // ops submitted whose completion the library has not delivered
	Submitted uint64 // ops accepted since creation
	Completed uint64 // completions delivered by the library
	Cancels   uint64 // cancellation requests accepted
	Batches   uint64 // callback invocations
	Stale     uint64 // completions the library ignored as stale
	Syscalls  uint64 // enter/wait system calls of the backend

	BindingStale     uint64 // completions whose slot key did not match (ignored)
	QueueFullRetries uint64 // submits retried after OVL_EQUEUEFULL
	SlotsInUse       int    // slots taken by operations not yet finished
}

// Stats returns the port's counters; it works after Close too.
func (p *Port) Stats() Stats {
	out := Stats{
		BindingStale:     p.stale.Load(),
		QueueFullRetries: p.queueFull.Load(),
		SlotsInUse:       p.depth - p.free.len(),
	}
	for _, r := range p.rings {
		var st C.ovl_stats
		st.size = C.uint32_t(unsafe.Sizeof(st))
		C.ovl_port_stats(r.c, &st)
		out.Inflight += uint32(st.inflight)
		out.Submitted += uint64(st.submitted)
		out.Completed += uint64(st.completed)
		out.Cancels += uint64(st.cancels)
		out.Batches += uint64(st.batches)
		out.Stale += uint64(st.stale)
		out.Syscalls += uint64(st.syscalls)
	}
	return out
}

// wait is what an operation may give up waiting for.
type wait struct {
	ctx context.Context // nil: none
	dl  *deadline       // nil: none
}

func (w wait) done() <-chan struct{} {
	if w.ctx == nil {
		return nil
	}
	return w.ctx.Done()
}

// acquire takes a free slot, waiting while QueueDepth ops are in flight.
func (p *Port) acquire(f *File, w wait) (uint32, error) {
	if idx, ok := p.free.pop(); ok {
		return idx, nil
	}
	var dl <-chan struct{}
	if w.dl != nil {
		dl = w.dl.current()
	}
	// Counted as a waiter before looking again, so that a release after
	// that look sees us and sends the token (release pushes, then looks).
	p.free.waiters.Add(1)
	defer func() {
		// Pass the token on if this waiter may have taken the one meant
		// for another (it got a slot another release freed, or gave up).
		if p.free.waiters.Add(-1) > 0 && p.free.len() > 0 {
			p.wakeSlotWaiter()
		}
	}()
	for {
		if idx, ok := p.free.pop(); ok {
			return idx, nil
		}
		if err := p.awaitSlot(f, w, dl); err != nil {
			return 0, err
		}
	}
}

// awaitSlot waits for a released slot's token, or for what the operation
// may give up for.
func (p *Port) awaitSlot(f *File, w wait, dl <-chan struct{}) error {
	select {
	case <-p.slotFreed:
		return nil
	case <-w.done():
		return w.ctx.Err()
	case <-dl:
		return os.ErrDeadlineExceeded
	case <-f.closing:
		return errClosed
	case <-p.closing:
		return errClosed
	}
}

// wakeSlotWaiter leaves the token for a goroutine waiting for a slot (a
// token already there will do).
func (p *Port) wakeSlotWaiter() {
	select {
	case p.slotFreed <- struct{}{}:
	default:
	}
}

// release frees a slot once its result has been consumed.
func (p *Port) release(idx uint32) {
	s := &p.slots[idx]
	s.mu.Lock()
	s.gen++
	if s.gen == 0 {
		s.gen = 1
	}
	s.state = stFree
	s.cancelPending = false
	s.id = 0
	s.file = nil
	s.cause = nil
	s.async = nil
	s.buf = nil
	s.ptr = nil
	s.r = nil
	s.mu.Unlock()
	p.free.push(idx)
	if p.free.waiters.Load() > 0 {
		p.wakeSlotWaiter()
	}
}

// start submits one operation of f and returns its slot. async, if not
// nil, receives the Result instead of the slot's channel.
func (p *Port) start(f *File, w wait, kind uint32, b []byte, off int64, flags uint32, async chan Result) (uint32, *slot, error) {
	idx, err := p.acquire(f, w)
	if err != nil {
		return 0, nil, f.opErr(kind, off, 0, 0, err)
	}
	// An asynchronous operation is counted in f.ops (Close waits for its
	// Result to be sent); a blocking one only by its slot (Close scans
	// them), which saves every blocking operation two atomics on a line
	// all the File's goroutines share.
	if async != nil && !f.begin() {
		p.release(idx)
		return 0, nil, f.opErr(kind, off, 0, 0, errClosed)
	}

	s := &p.slots[idx]
	var ptr unsafe.Pointer
	s.mu.Lock()
	s.state = stSubmitting
	s.file = f
	s.async = async
	s.kind = kind
	s.off = off
	if async != nil {
		s.buf = b
	}
	if len(b) > 0 {
		ptr = unsafe.Pointer(&b[0])
		// The kernel (or a worker thread) writes into b after the cgo
		// call returns: pin it until the completion is delivered.
		s.pin.Pin(ptr)
	}
	key := uint64(idx) | uint64(s.gen)<<32
	s.key, s.fd, s.ptr, s.n, s.flags = key, f.fd, ptr, len(b), flags
	r := p.pick()
	s.r = r
	s.mu.Unlock()
	if async == nil && f.isClosed() {
		// Close began: it either saw this slot (and now waits for it to
		// be free) or set the flag before we published it.
		s.mu.Lock()
		s.pin.Unpin()
		s.mu.Unlock()
		p.release(idx)
		f.wakeClose()
		return 0, nil, f.opErr(kind, off, 0, 0, errClosed)
	}

	// A blocking operation alone on the port, on a regular file (whose
	// I/O ends by itself) and with no context to watch, waits for its
	// completion in the same call, for loneWait at most (on a port with a
	// completion thread the call takes delivery over from that thread
	// meanwhile); a submit error comes back as its completion. (Not with
	// a benchmark bridge that has no queue for the call to take from.)
	if async == nil && r.q != nil && w.done() == nil && !f.stream && p.free.len() == p.depth-1 {
		one := [1]uint32{idx}
		r.flush(one[:], loneWait)
		return idx, s, nil
	}
	if p.manual && async == nil {
		// Submitted with those of other goroutines.
		r.enqueue(idx)
		return idx, s, nil
	}
	id, rc, reaped := r.submit(kind, f.fd, ptr, len(b), off, flags, key)
	runtime.KeepAlive(b)

	s.mu.Lock()
	if rc != 0 {
		s.pin.Unpin()
		s.mu.Unlock()
		p.release(idx)
		if async != nil {
			f.end()
		} else {
			f.wakeClose()
		}
		var cause error
		if rc == ECLOSED {
			cause = errClosed
		}
		return 0, nil, f.opErr(kind, off, rc, 0, cause)
	}
	s.mu.Unlock()
	p.submitted(s, key, id)
	if reaped != nil {
		// Manual mode: what the submit's poll delivered, usually this
		// operation's own completion among them.
		r.deliverItems(reaped)
	}
	return idx, s, nil
}

// submitted records that the library accepted the operation of slot s
// (key) with op id id. Its completion may have been delivered already (by
// another poller, or an asynchronous one released the slot and another
// operation took it): only the same generation, still submitting, becomes
// in flight.
func (p *Port) submitted(s *slot, key, id uint64) {
	s.mu.Lock()
	if s.state == stSubmitting && s.gen == uint32(key>>32) {
		s.state = stInflight
		s.id = id
		if s.cancelPending {
			C.ovl_cancel(s.r.c, C.uint64_t(id))
		}
	}
	s.mu.Unlock()
	if h := testHookSubmitted.Load(); h != nil {
		(*h)()
	}
}

// enqueue queues slot idx's operation for the next batch submit. The first
// goroutine to queue one leads: it yields once, so that the goroutines
// runnable on its P (typically the ones its last batch woke) can queue
// theirs, then submits everything queued in one cgo call. The others park
// on their channels meanwhile; inline completions come back from the same
// call. Alone on the port (one slot taken) it does not yield.
func (r *ring) enqueue(idx uint32) {
	p, b := r.p, &r.batch
	if !b.push(p, idx) {
		return
	}
	if p.free.len() < p.depth-1 {
		runtime.Gosched()
	}
	for {
		h := b.head.Swap(leaderBit) // take them all, still leading
		if uint32(h) == 0 {
			if b.head.CompareAndSwap(leaderBit, 0) {
				return
			}
			continue // some came in meanwhile
		}
		list := b.list[:0]
		for top := uint32(h); top != 0; top = p.slots[top-1].pendNext {
			list = append(list, top-1)
		}
		// Oldest first (the stack gives them newest first).
		for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
			list[i], list[j] = list[j], list[i]
		}
		b.list = list
		r.flush(list, 0)
	}
}

// reqBuf holds one batch submit's requests (C layout, integers only).
type reqBuf struct {
	reqs [C.GOVL_MAX_BATCH]C.govl_req
}

var reqPool = sync.Pool{New: func() any { return new(reqBuf) }}

// loneWait bounds the wait, in ms, of the port's lone blocking operation
// on a regular file: it submits and waits for its completion in one cgo
// call, ovl_submit_and_poll(port, op, 1, loneWait), so its thread sleeps
// in the kernel and is the one woken, as with a pread (Go's scheduler
// sees a system call), and on io_uring the submit and the wait are one
// io_uring_enter. On a port with a completion thread (Windows, or
// Config.CompletionThread) the call takes delivery over from that thread
// for its wait, so the completion does not go through it, the port's
// wake-up and the drainer goroutine. Parking the goroutine instead costs, per operation, a
// wake-up of the thread parked in Go's poller, the drainer goroutine's
// turn, the waiter's wake-up and the idle Ps' spinning meanwhile. The wait
// ends early when any completion is delivered (another goroutine's
// operation that showed up: this one then parks and the drainer, or
// whoever polls, delivers it) or the port closes. The bound is for two
// rare cases: another thread was delivering when the call began and took
// this completion (the call would wait for one that already came), and a
// cancel (File.Close, a deadline) of an operation whose id the call
// returns only at its end. The call takes the library's delivery lock
// before the submit when it is free, so the first case needs another
// thread to hold it at that very moment, and the port's handle stays quiet
// for what the call reaps itself (on io_uring the submit and the wait are
// one io_uring_enter; on the threads backend a worker's completion does
// not wake the drainer while the call waits for it).
const loneWait = 10

// flush submits the queued operations list, GOVL_MAX_BATCH per cgo call,
// and delivers what the call's poll took, waiting up to wait ms for a
// first completion (0: not at all).
func (r *ring) flush(list []uint32, wait int32) {
	p := r.p
	rb := reqPool.Get().(*reqBuf)
	defer reqPool.Put(rb)
	for len(list) > 0 {
		n := min(len(list), len(rb.reqs))
		for i, idx := range list[:n] {
			s := &p.slots[idx] // fields set before enqueue (b.mu orders it)
			rb.reqs[i] = C.govl_req{kind: C.uint32_t(s.kind), flags: C.uint32_t(s.flags), fd: C.uint64_t(s.fd),
				buf: C.uint64_t(uintptr(s.ptr)), len: C.uint64_t(s.n), offset: C.int64_t(s.off), ctx: C.uint64_t(s.key)}
		}
		reaped := reapPool.Get().(*reapBuf)
		p.mu.RLock()
		if p.closed {
			for i := range rb.reqs[:n] {
				rb.reqs[i].rc = C.int32_t(ECLOSED)
			}
		} else {
			C.govl_submit_poll(r.c, r.q, &rb.reqs[0], C.size_t(n), C.int32_t(wait), &reaped.items[0], C.size_t(len(reaped.items)), &reaped.got)
		}
		p.mu.RUnlock()
		reaped.n = int(reaped.got)
		// Deliver first what completed inside the call: those operations
		// go from submitting to done directly, never counted as in flight
		// (submitted then finds them done and leaves them).
		r.deliverItems(reaped)
		for i, idx := range list[:n] {
			// Once submitted, an operation may complete, be released and
			// its slot reused at any moment: from here on only its key
			// (kept in the request) identifies it.
			s := &p.slots[idx]
			key := uint64(rb.reqs[i].ctx)
			switch rc := Errno(rb.reqs[i].rc); rc {
			case 0:
				p.submitted(s, key, uint64(rb.reqs[i].id))
			case EQUEUEFULL:
				// Not expected (the library frees an op before Go frees
				// its slot); the single submit retries until it fits. Not
				// submitted, the slot is still this operation's.
				id, rc, more := r.submit(s.kind, s.fd, s.ptr, s.n, s.off, s.flags, key)
				if rc == 0 {
					p.submitted(s, key, id)
				} else {
					p.deliver(key, int64(rc), 0)
				}
				if more != nil {
					r.deliverItems(more)
				}
			default:
				p.deliver(key, int64(rc), 0) // the waiter gets the error
			}
		}
		list = list[n:]
	}
}

// testHookSubmitted, if set (by tests), runs after every accepted submit.
var testHookSubmitted atomic.Pointer[func()]

// submit calls into the library, retrying while the queue is full (the
// slot semaphore makes that rare: the library counts an op as in flight
// until its batch is harvested, a moment after Go may have seen it). In
// manual mode the same cgo call polls the port and returns the completions
// it took (reaped, to be delivered by the caller; nil if none).
func (r *ring) submit(kind uint32, fd uintptr, ptr unsafe.Pointer, n int, off int64, flags uint32, key uint64) (uint64, Errno, *reapBuf) {
	p := r.p
	for try := 0; ; try++ {
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			return 0, ECLOSED, nil
		}
		var rc C.int32_t
		// The call's outputs live in the pooled buffer (a local whose
		// address goes to C would be a heap allocation per call).
		reaped := reapPool.Get().(*reapBuf)
		reaped.n, reaped.id = 0, 0
		switch {
		case p.manual:
			// Submit and deliver what is ready in one call.
			rq := &reaped.req
			*rq = C.govl_req{kind: C.uint32_t(kind), flags: C.uint32_t(flags), fd: C.uint64_t(fd),
				buf: C.uint64_t(uintptr(ptr)), len: C.uint64_t(n), offset: C.int64_t(off), ctx: C.uint64_t(key)}
			C.govl_submit_poll(r.c, r.q, rq, 1, 0, &reaped.items[0], C.size_t(len(reaped.items)), &reaped.got)
			rc, reaped.id = rq.rc, rq.id
			reaped.n = int(reaped.got)
		case kind == opRead:
			rc = C.govl_submit_read(r.c, C.ovl_fd(fd), ptr, C.size_t(n), C.int64_t(off), C.uint64_t(key), &reaped.id)
		case kind == opWrite:
			rc = C.govl_submit_write(r.c, C.ovl_fd(fd), ptr, C.size_t(n), C.int64_t(off), C.uint64_t(key), &reaped.id)
		case kind == opFsync:
			rc = C.govl_submit_fsync(r.c, C.ovl_fd(fd), C.uint32_t(flags), C.uint64_t(key), &reaped.id)
		default:
			rc = C.int32_t(EINVAL)
		}
		p.mu.RUnlock()
		id := uint64(reaped.id)
		if reaped.n == 0 {
			reapPool.Put(reaped)
			reaped = nil
		}
		if Errno(rc) != EQUEUEFULL {
			return id, Errno(rc), reaped
		}
		p.queueFull.Add(1)
		if try < 16 {
			runtime.Gosched()
		} else {
			time.Sleep(time.Microsecond << min(try-16, 10))
		}
	}
}

// reapBuf receives the completions a manual-mode submit or poll takes from
// the queue: Go memory without pointers, filled by C during the call.
type reapBuf struct {
	n     int
	got   C.size_t                      // out-parameters of the cgo call
	id    C.uint64_t                    //
	req   C.govl_req                    // a single submit's request
	items [C.GOVL_MAX_BATCH]C.govl_item // a whole batch's completions in one call
}

var reapPool = sync.Pool{New: func() any { return new(reapBuf) }}

// deliverItems delivers a reapBuf's completions, then takes and delivers
// whatever else the queue holds if the buffer was full, and recycles it.
func (r *ring) deliverItems(b *reapBuf) {
	for {
		for _, it := range b.items[:b.n] {
			r.p.deliver(uint64(it.ctx), int64(it.result), int32(it.os_error))
		}
		if b.n < len(b.items) {
			break
		}
		b.n = int(C.govl_take(r.q, &b.items[0], C.size_t(len(b.items))))
	}
	reapPool.Put(b)
}

// reap polls the port (manual mode) and delivers every completion queued;
// poll false only takes what is queued (after the port is closed).
func (r *ring) reap(poll bool) {
	b := reapPool.Get().(*reapBuf)
	if poll {
		C.govl_submit_poll(r.c, r.q, nil, 0, 0, &b.items[0], C.size_t(len(b.items)), &b.got)
		b.n = int(b.got)
	} else {
		b.n = int(C.govl_take(r.q, &b.items[0], C.size_t(len(b.items))))
	}
	r.deliverItems(b)
}

// cancel asks for the slot's operation to be cancelled, recording why.
func (s *slot) cancel(p *Port, cause error) {
	s.mu.Lock()
	if s.cause == nil {
		s.cause = cause
	}
	s.cancelLocked()
	s.mu.Unlock()
}

// cancelLocked asks for the slot's operation, submitting or in flight, to
// be cancelled; s.mu is held.
func (s *slot) cancelLocked() {
	switch s.state {
	case stSubmitting:
		s.cancelPending = true // submitted cancels it once the id is known
	case stInflight:
		C.ovl_cancel(s.r.c, C.uint64_t(s.id))
	}
}

// await waits for the slot's completion; if the context ends first it
// cancels the op and still waits for its one completion. (A deadline
// cancels the op itself: cancelExpired.)
func (p *Port) await(s *slot, w wait) completion {
	done := w.done()
	if done == nil {
		return <-s.ch
	}
	select {
	case c := <-s.ch:
		return c
	case <-done:
		s.cancel(p, w.ctx.Err())
	}
	return <-s.ch
}

// cancelExpired cancels f's blocking operations of one direction (reads,
// or writes and syncs) in flight: their deadline has passed.
func (p *Port) cancelExpired(f *File, reads bool) {
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		if s.file == f && s.async == nil && (s.kind == opRead) == reads &&
			(s.state == stSubmitting || s.state == stInflight) {
			if s.cause == nil {
				s.cause = os.ErrDeadlineExceeded
			}
			s.cancelLocked()
		}
		s.mu.Unlock()
	}
}

// blockingInFlight reports whether a blocking operation of f is still
// waiting for its completion (File.Close waits until none is).
func (p *Port) blockingInFlight(f *File) bool {
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		busy := s.file == f && s.async == nil && (s.state == stSubmitting || s.state == stInflight)
		s.mu.Unlock()
		if busy {
			return true
		}
	}
	return false
}

// cancelFile cancels every operation of f in flight (File.Close).
func (p *Port) cancelFile(f *File) {
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		if s.file == f && (s.state == stSubmitting || s.state == stInflight) {
			if s.cause == nil {
				s.cause = errClosed
			}
			s.cancelLocked()
		}
		s.mu.Unlock()
	}
}

// drain delivers every queued completion, one cgo call per batch. It
// reports whether the queue was stopped and is empty (the port is closed).
func (r *ring) drain() bool {
	for {
		var items *C.govl_item
		var stopped C.int
		n := C.govl_drain(r.q, &items, &stopped)
		if n == 0 {
			return stopped != 0
		}
		for _, it := range unsafe.Slice(items, int(n)) {
			r.p.deliver(uint64(it.ctx), int64(it.result), int32(it.os_error))
		}
	}
}

// deliver hands one completion to its operation.
func (p *Port) deliver(key uint64, res int64, oserr int32) {
	idx, gen := uint32(key), uint32(key>>32)
	if int(idx) >= len(p.slots) {
		p.stale.Add(1)
		return
	}
	s := &p.slots[idx]
	s.mu.Lock()
	if s.gen != gen || (s.state != stSubmitting && s.state != stInflight) {
		s.mu.Unlock()
		p.stale.Add(1)
		return
	}
	s.state = stDone
	s.pin.Unpin()
	c := completion{res: res, oserr: oserr, cause: s.cause}
	f, async, buf, off, kind := s.file, s.async, s.buf, s.off, s.kind
	s.mu.Unlock()
	if async == nil {
		s.ch <- c // room for exactly one: never blocks
		if f.isClosed() {
			f.wakeClose() // Close may be waiting for this one
		}
		return
	}
	r := f.asyncResult(kind, buf, off, c)
	p.release(idx)
	select {
	case async <- r:
	default:
		// The caller's channel is full: never block the drainer.
		go func() { async <- r }()
	}
	f.end()
}

// postKey posts a completion carrying an arbitrary slot key (tests use it
// to check that stale and duplicated completions are ignored).
func (p *Port) postKey(key uint64) Errno {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return ECLOSED
	}
	rc := Errno(C.govl_post(p.c, 0, C.uint64_t(key), nil))
	p.mu.RUnlock()
	if rc == 0 && p.manual {
		// Nobody waits for a post: deliver it (manual mode) now.
		p.reap(true)
	}
	return rc
}

// slotKey returns the key the next operation using slot idx will carry.
func (p *Port) slotKey(idx uint32) uint64 {
	s := &p.slots[idx]
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(idx) | uint64(s.gen)<<32
}
