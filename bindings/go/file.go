package ovl

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// File is a file, pipe, socket or device whose I/O goes through a Port. Its
// blocking-looking methods park the calling goroutine on a channel until
// the port delivers the completion (often inside their own submit: see
// the package documentation). A File is safe for concurrent use;
// ReadAt and WriteAt may run from many goroutines at once.
//
// For a regular file, Read, Write and Seek use a position kept by the File
// (the I/O itself is positional); for a stream (pipe, socket, character
// device) Read and Write are stream I/O and ReadAt/WriteAt are refused.
//
// On io_uring the descriptor of a regular file is registered with the
// port's rings (fixed files: the kernel skips its per-operation file
// lookup) from the File's creation to its Close, which unregisters it
// before closing it; the File owns its descriptor, so close it only
// through Close.
type File struct {
	port   *Port
	fd     uintptr
	name   string
	stream bool
	append bool
	owner  *os.File // set when the File was made from an *os.File
	// registered: the descriptor is registered with the port's rings
	// (ovl_register_fd, io_uring's fixed files): unregister it before
	// closing it.
	registered bool

	// ops is 2 × the asynchronous operations whose Result has not been
	// sent, | 1 once Close began. Blocking operations are not counted:
	// Close finds them by their slots (Port.blockingInFlight).
	ops     atomic.Int64
	drained chan struct{} // a token: look again (an operation of a closed File ended)
	closing chan struct{}

	posMu sync.Mutex // serializes Read/Write/Seek on regular files
	pos   int64

	rd, wd deadline
}

// Result is the outcome of an asynchronous operation (ReadAtAsync,
// WriteAtAsync). N is the byte count as the OS reported it (a short count
// is not an error); Err is nil on success, io.EOF for a read at end of
// file, or an error as the blocking methods return. Buf and Off are the
// operation's buffer and offset.
type Result struct {
	N   int
	Err error
	Buf []byte
	Off int64
}

var (
	errNegativeOffset = errors.New("negative offset")
	errStream         = errors.New("positional I/O on a stream (pipe, socket or character device)")
	errAppend         = errors.New("WriteAt on a file opened with O_APPEND")
	errWhence         = errors.New("invalid whence")
)

// maxIO is the largest single operation (a variable so tests can shrink it
// to exercise the splitting of larger ones).
var maxIO = MaxIOSize

// Open opens the named file for reading on port p.
func (p *Port) Open(name string) (*File, error) {
	return p.OpenFile(name, os.O_RDONLY, 0)
}

// OpenFile opens the named file with the flags and permissions of
// os.OpenFile, for I/O through port p. Errors are *fs.PathError from the
// open, or *OpError.
func (p *Port) OpenFile(name string, flag int, perm os.FileMode) (*File, error) {
	fd, owner, err := openFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	f, err := p.newFile(fd, name, owner, flag&os.O_APPEND != 0)
	if err != nil {
		if owner != nil {
			owner.Close()
		} else {
			closeFD(fd)
		}
		return nil, err
	}
	return f, nil
}

// NewFile adopts an open *os.File: from now on the returned File owns it
// and closes it in Close; do not use f directly any more. On Linux the
// descriptor is put in blocking mode (as f.Fd does).
func (p *Port) NewFile(f *os.File) (*File, error) {
	fd := f.Fd()
	return p.newFile(fd, f.Name(), f, false)
}

// NewFileFD adopts a descriptor (a HANDLE or SOCKET on Windows, which must
// be opened for overlapped I/O). The returned File owns it and closes it in
// Close. A value that is not an open descriptor fails with EBADF.
func (p *Port) NewFileFD(fd uintptr, name string) (*File, error) {
	return p.newFile(fd, name, nil, false)
}

func (p *Port) newFile(fd uintptr, name string, owner *os.File, appendMode bool) (*File, error) {
	if p.isClosed() {
		return nil, &OpError{Op: "open", Path: name, Offset: -1, Code: ECLOSED, Err: errClosed}
	}
	stream, err := fdKind(fd)
	if err != nil {
		return nil, &OpError{Op: "open", Path: name, Offset: -1, Code: EBADF, OSErr: errnoOf(err)}
	}
	if rc := associate(p, fd); rc != 0 {
		return nil, &OpError{Op: "open", Path: name, Offset: -1, Code: rc}
	}
	return &File{
		port:       p,
		fd:         fd,
		name:       name,
		stream:     stream,
		append:     appendMode,
		owner:      owner,
		registered: !stream && registerFD(p, fd),
		drained:    make(chan struct{}, 1),
		closing:    make(chan struct{}),
	}, nil
}

func (p *Port) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// Name returns the name given when the File was opened or adopted.
func (f *File) Name() string { return f.name }

// Fd returns the descriptor (HANDLE on Windows). It stays owned by f.
func (f *File) Fd() uintptr { return f.fd }

// Port returns the port the File's I/O goes through.
func (f *File) Port() *Port { return f.port }

// IsStream reports whether the File is a stream (pipe, socket, character
// device) rather than a regular file.
func (f *File) IsStream() bool { return f.stream }

func (f *File) opErr(kind uint32, off int64, code Errno, oserr int32, cause error) error {
	op := "read"
	switch kind {
	case opWrite:
		op = "write"
	case opFsync:
		op = "sync"
	}
	if code == ECLOSED && cause == nil {
		cause = errClosed
	}
	return &OpError{Op: op, Path: f.name, Offset: off, Code: code, OSErr: syscall.Errno(oserr), Err: cause}
}

// resultErr turns a failed completion into an error. The cause recorded
// when the binding cancelled the op (deadline, context, Close) explains an
// ECANCELED; any other failure is reported as it is.
func (f *File) resultErr(kind uint32, off int64, c completion) error {
	code := Errno(c.res)
	cause := c.cause
	if code != ECANCELED && code != ECLOSED {
		cause = nil
	}
	return f.opErr(kind, off, code, c.oserr, cause)
}

func (f *File) asyncResult(kind uint32, buf []byte, off int64, c completion) Result {
	r := Result{Buf: buf, Off: off}
	switch {
	case c.res < 0:
		r.Err = f.resultErr(kind, off, c)
	case c.res == 0 && kind == opRead && len(buf) > 0:
		r.Err = io.EOF
	default:
		r.N = int(c.res)
	}
	return r
}

// noContext is what the methods without a context pass on: nil, which do
// and await read as "nothing to watch" (no Err and Done calls per
// operation, as context.Background would cost).
var noContext context.Context

// do runs one operation to its completion; ctx may be nil.
func (f *File) do(ctx context.Context, dl *deadline, kind uint32, b []byte, off int64, flags uint32) (int, error) {
	w := wait{ctx: ctx, dl: dl}
	if dl != nil && dl.fired.Load() {
		return 0, f.opErr(kind, off, 0, 0, os.ErrDeadlineExceeded)
	}
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return 0, f.opErr(kind, off, 0, 0, err)
		}
	}
	p := f.port
	idx, s, err := p.start(f, w, kind, b, off, flags, nil)
	if err != nil {
		return 0, err
	}
	if dl != nil && dl.fired.Load() {
		// It passed after the check above, maybe before its expiry
		// could see this operation (see deadline.set).
		s.cancel(p, os.ErrDeadlineExceeded)
	}
	c := p.await(s, w)
	p.release(idx)
	if c.res < 0 {
		return 0, f.resultErr(kind, off, c)
	}
	return int(c.res), nil
}

// ReadAt reads len(b) bytes at offset off (io.ReaderAt): it loops over
// short reads and returns io.EOF if the file ends first.
func (f *File) ReadAt(b []byte, off int64) (int, error) {
	return f.ReadAtContext(noContext, b, off)
}

// ReadAtContext is ReadAt that gives up when ctx is done: the operation in
// flight is cancelled and the error matches ctx.Err().
func (f *File) ReadAtContext(ctx context.Context, b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &OpError{Op: "read", Path: f.name, Offset: off, Code: EINVAL, Err: errNegativeOffset}
	}
	if f.stream {
		return 0, &OpError{Op: "read", Path: f.name, Offset: off, Code: EINVAL, Err: errStream}
	}
	n := 0
	for len(b) > 0 {
		m, err := f.do(ctx, &f.rd, opRead, b[:min(len(b), maxIO)], off, 0)
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
		b = b[m:]
		off += int64(m)
	}
	return n, nil
}

// WriteAt writes len(b) bytes at offset off (io.WriterAt), looping over
// short writes.
func (f *File) WriteAt(b []byte, off int64) (int, error) {
	return f.WriteAtContext(noContext, b, off)
}

// WriteAtContext is WriteAt that gives up when ctx is done.
func (f *File) WriteAtContext(ctx context.Context, b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &OpError{Op: "write", Path: f.name, Offset: off, Code: EINVAL, Err: errNegativeOffset}
	}
	if f.stream {
		return 0, &OpError{Op: "write", Path: f.name, Offset: off, Code: EINVAL, Err: errStream}
	}
	if f.append {
		return 0, &OpError{Op: "write", Path: f.name, Offset: off, Code: EINVAL, Err: errAppend}
	}
	return f.writeAll(ctx, b, off)
}

// writeAll writes b at off (offsetCurrent: stream), looping over short
// writes. A write that makes no progress ends with io.ErrShortWrite.
func (f *File) writeAll(ctx context.Context, b []byte, off int64) (int, error) {
	n := 0
	for len(b) > 0 {
		m, err := f.do(ctx, &f.wd, opWrite, b[:min(len(b), maxIO)], off, 0)
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, &OpError{Op: "write", Path: f.name, Offset: off, Err: io.ErrShortWrite}
		}
		b = b[m:]
		if off != offsetCurrent {
			off += int64(m)
		}
	}
	return n, nil
}

// Read reads up to len(b) bytes (io.Reader). At end of file (or when the
// pipe's writer closed) it returns 0, io.EOF.
func (f *File) Read(b []byte) (int, error) {
	return f.ReadContext(noContext, b)
}

// ReadContext is Read that gives up when ctx is done.
func (f *File) ReadContext(ctx context.Context, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	b = b[:min(len(b), maxIO)]
	if f.stream {
		n, err := f.do(ctx, &f.rd, opRead, b, offsetCurrent, 0)
		if err == nil && n == 0 {
			return 0, io.EOF
		}
		return n, err
	}
	f.posMu.Lock()
	defer f.posMu.Unlock()
	n, err := f.do(ctx, &f.rd, opRead, b, f.pos, 0)
	f.pos += int64(n)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// Write writes all of b (io.Writer), looping over short writes.
func (f *File) Write(b []byte) (int, error) {
	return f.WriteContext(noContext, b)
}

// WriteContext is Write that gives up when ctx is done; the count says how
// much was written before it did.
func (f *File) WriteContext(ctx context.Context, b []byte) (int, error) {
	if f.stream || f.append {
		// O_APPEND: stream I/O appends, whatever our position says.
		return f.writeAll(ctx, b, offsetCurrent)
	}
	f.posMu.Lock()
	defer f.posMu.Unlock()
	n, err := f.writeAll(ctx, b, f.pos)
	f.pos += int64(n)
	return n, err
}

// Seek sets the position of Read and Write on a regular file (io.Seeker).
func (f *File) Seek(offset int64, whence int) (int64, error) {
	if f.stream {
		return 0, &OpError{Op: "seek", Path: f.name, Offset: offset, Code: EINVAL, Err: errStream}
	}
	f.posMu.Lock()
	defer f.posMu.Unlock()
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.pos
	case io.SeekEnd:
		size, err := fileSize(f.fd)
		if err != nil {
			return 0, &OpError{Op: "seek", Path: f.name, Offset: offset, Err: err}
		}
		base = size
	default:
		return 0, &OpError{Op: "seek", Path: f.name, Offset: offset, Code: EINVAL, Err: errWhence}
	}
	if base+offset < 0 {
		return 0, &OpError{Op: "seek", Path: f.name, Offset: offset, Code: EINVAL, Err: errNegativeOffset}
	}
	f.pos = base + offset
	return f.pos, nil
}

// Sync flushes the file's data and metadata to storage.
func (f *File) Sync() error { return f.SyncContext(noContext) }

// SyncContext is Sync that gives up waiting when ctx is done.
func (f *File) SyncContext(ctx context.Context) error {
	_, err := f.do(ctx, &f.wd, opFsync, nil, -1, 0)
	return err
}

// ReadAtAsync starts one read of len(b) bytes at off and returns at once,
// except that it waits while the port has QueueDepth operations in flight.
// The Result is sent on done exactly once; if done is nil a channel with
// room for one is made. Give done enough buffer for every operation you
// keep in flight on it (a full channel is sent to from a new goroutine).
// The read is a single operation: a short count is reported, not
// completed. b must not be touched until the Result arrives. Deadlines do
// not apply to asynchronous operations; Close cancels them.
func (f *File) ReadAtAsync(b []byte, off int64, done chan Result) chan Result {
	return f.async(opRead, b, off, done)
}

// WriteAtAsync starts one write of b at off; see ReadAtAsync.
func (f *File) WriteAtAsync(b []byte, off int64, done chan Result) chan Result {
	return f.async(opWrite, b, off, done)
}

func (f *File) async(kind uint32, b []byte, off int64, done chan Result) chan Result {
	if done == nil {
		done = make(chan Result, 1)
	}
	var err error
	switch {
	case off < 0:
		err = f.opErr(kind, off, EINVAL, 0, errNegativeOffset)
	case f.stream:
		err = f.opErr(kind, off, EINVAL, 0, errStream)
	case kind == opWrite && f.append:
		err = f.opErr(kind, off, EINVAL, 0, errAppend)
	default:
		_, _, err = f.port.start(f, wait{}, kind, b, off, 0, done)
	}
	if err != nil {
		r := Result{Err: err, Buf: b, Off: off}
		select {
		case done <- r:
		default:
			go func() { done <- r }()
		}
	}
	return done
}

// Close cancels the File's operations in flight (their callers get an
// error matching fs.ErrClosed, unless an operation finished first), waits
// until every completion has come back, then closes the descriptor.
func (f *File) Close() error {
	var v int64
	for {
		v = f.ops.Load()
		if v&1 != 0 {
			return &OpError{Op: "close", Path: f.name, Offset: -1, Code: ECLOSED, Err: errClosed}
		}
		if f.ops.CompareAndSwap(v, v|1) {
			break
		}
	}
	close(f.closing)
	f.port.cancelFile(f)
	// Every operation of f that ends from now on leaves a token, so a
	// look that finds one still in flight is followed by a wake-up.
	for f.ops.Load() != 1 || f.port.blockingInFlight(f) {
		<-f.drained
	}
	f.rd.stop()
	f.wd.stop()
	if f.registered {
		// Before the close: a ring keeps its own reference to the open
		// file, and a file opened later under this number must not be
		// taken for this one.
		unregisterFD(f.port, f.fd)
	}
	if f.owner != nil {
		return f.owner.Close()
	}
	if err := closeFD(f.fd); err != nil {
		return &OpError{Op: "close", Path: f.name, Offset: -1, OSErr: errnoOf(err), Err: err}
	}
	return nil
}

// SetDeadline sets the read and write deadlines (see SetReadDeadline).
func (f *File) SetDeadline(t time.Time) error {
	if err := f.SetReadDeadline(t); err != nil {
		return err
	}
	return f.SetWriteDeadline(t)
}

// SetReadDeadline sets the time after which reads (Read, ReadAt and their
// context forms) fail with an error matching os.ErrDeadlineExceeded; it
// applies to reads already waiting too (they are cancelled with
// ovl_cancel). The zero time means no deadline.
func (f *File) SetReadDeadline(t time.Time) error {
	if f.isClosed() {
		return &OpError{Op: "set deadline", Path: f.name, Offset: -1, Code: ECLOSED, Err: errClosed}
	}
	f.rd.set(t, func() { f.port.cancelExpired(f, true) })
	return nil
}

// SetWriteDeadline is SetReadDeadline for Write, WriteAt and Sync.
func (f *File) SetWriteDeadline(t time.Time) error {
	if f.isClosed() {
		return &OpError{Op: "set deadline", Path: f.name, Offset: -1, Code: ECLOSED, Err: errClosed}
	}
	f.wd.set(t, func() { f.port.cancelExpired(f, false) })
	return nil
}

func (f *File) isClosed() bool { return f.ops.Load()&1 != 0 }

// begin counts an asynchronous operation of f that is starting; it fails
// once Close began. Each successful begin is matched by one end, after
// the operation's Result has been sent.
func (f *File) begin() bool {
	if f.ops.Add(2)&1 == 0 {
		return true
	}
	f.end()
	return false
}

// end: an asynchronous operation's Result was sent. The one that leaves a
// closed File with none counted wakes Close (a begin refused after Close
// gets here too: a spare token only makes Close look once more).
func (f *File) end() {
	if f.ops.Add(-2) == 1 {
		f.wakeClose()
	}
}

// wakeClose leaves Close a token to look again (one is enough).
func (f *File) wakeClose() {
	select {
	case f.drained <- struct{}{}:
	default:
	}
}

// deadline is one direction's deadline. When it passes, the operations of
// that direction in flight are cancelled (Port.cancelExpired walks the
// slots), so a waiting operation needs no timer or channel of its own and
// waits on its completion channel alone: a select on a channel shared by
// every goroutine of the file cost a contended lock per operation. An
// operation started after the deadline passed fails at once; one that
// starts as it passes checks again once its slot shows it (do).
type deadline struct {
	mu    sync.Mutex
	seq   uint64 // bumped by every set, so a stale timer does nothing
	timer *time.Timer
	ch    chan struct{} // closed when it passes (acquire waits on it)
	fired atomic.Bool   // it has passed (written under mu, read without)
}

// set sets the deadline; expire runs (without d.mu) when it passes.
func (d *deadline) set(t time.Time, expire func()) {
	d.mu.Lock()
	d.seq++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.ch == nil || d.fired.Load() {
		d.ch = make(chan struct{})
		d.fired.Store(false)
	}
	if t.IsZero() {
		d.mu.Unlock()
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		d.fired.Store(true)
		d.mu.Unlock()
		expire()
		return
	}
	seq := d.seq
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		if d.seq != seq || d.fired.Load() {
			d.mu.Unlock()
			return
		}
		close(d.ch)
		d.fired.Store(true)
		d.mu.Unlock()
		expire()
	})
	d.mu.Unlock()
}

// current returns the channel to wait on (an operation waiting for a
// slot). The channel exists even with no deadline set, so that a deadline
// set later reaches the operations already waiting. Operations check
// fired (an atomic) instead on their fast path: a lock shared by every
// goroutine of the File cost a contended lock per operation.
func (d *deadline) current() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
