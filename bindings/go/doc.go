// Package ovl is the Go binding of ovl, overlapped (completion-based) I/O:
// reads and writes are submitted to a Port, the library reaps them from
// io_uring (or its thread pool, or IOCP on Windows), and the goroutine that
// asked is handed the result on a channel.
//
//	port, err := ovl.NewPort(ovl.Config{})
//	f, err := port.Open("data.bin")
//	n, err := f.ReadAt(buf, 4096) // waits for the completion
//
// File implements io.Reader, io.Writer, io.ReaderAt, io.WriterAt, io.Seeker
// (regular files) and io.Closer, with context-aware forms (ReadAtContext,
// ...), deadlines (SetDeadline, ...) and an asynchronous form that returns a
// channel (ReadAtAsync, WriteAtAsync) for keeping many operations in flight
// from one goroutine.
//
// # How completions reach Go
//
// No Go code ever runs on a thread of the library. The binding registers a
// small C callback that appends each batch of completions to a queue the
// binding owns (a lock and two arrays in C); Go takes them from there and
// sends each result on the waiting operation's buffered channel. Who runs
// that callback depends on the mode:
//
// On Linux, by default, the port has no completion thread at all
// (OVL_PORT_MANUAL), and one path: the goroutine that submits an
// operation delivers what is ready in the same cgo call
// (ovl_submit_and_poll(port, ops, n, 0)), so the callback runs inside the
// binding's own cgo call, on the goroutine's thread, and the goroutine
// takes what it delivered. A read served from the page cache completes
// inside the submit's io_uring_enter, so the goroutine finds its own
// result there and nothing is woken: no thread, no other goroutine.
// Completions that finish later (O_DIRECT, pipes, sockets, cancellations,
// the threads backend's workers) are delivered by whoever calls next, or,
// when nobody is inside the library, by one goroutine per port that waits
// in Go's poller on the port's eventfd (ovl_port_event). The library
// signals that eventfd only for completions nobody is there to reap (on
// io_uring it disables the ring's eventfd while a thread reaps), so reads
// that complete inline do not wake the thread parked in the poller. A
// thread that finds another delivering does not wait for it: the library
// makes that one look again before it lets go, so no completion is left
// with its wake-up spent.
//
// A blocking operation (ReadAt, Read, WriteAt, ...) that is the port's only
// one, on a regular file and without a context to watch, waits in the
// same cgo call, ovl_submit_and_poll(port, op, 1, 10 ms at most): its
// thread sleeps in the kernel until the completion (an O_DIRECT read's,
// say) and is the one woken, as with os.File's pread, and Go's scheduler
// treats the call as a system call. On io_uring the submit and the wait
// are one io_uring_enter; on the threads backend the library keeps the
// port's handle quiet for what the waiting call reaps itself. Parking the
// goroutine instead would wake, for every operation, the thread parked in
// Go's poller, the drainer goroutine and then the waiter. When another
// completion is delivered first, or the bound passes, it parks like the
// others.
//
// On macOS and the BSDs the backend is the thread pool and the port is in
// the same manual mode: the submitting goroutine takes what is already
// complete in its own cgo call, and one goroutine per port waits in Go's
// poller (kqueue) on a duplicate of the port's wake-up pipe for the rest,
// as on Linux. (These platforms are cross-built and vetted by the
// project's tests, not run.)
//
// Blocking operations of many goroutines are
// submitted together: the first goroutine to queue one yields once, then
// submits everything queued and polls in one call. And a manual
// port on the uring backend is several library ports, one io_uring each
// (Config.Rings, GOMAXPROCS by default), each operation going to one at
// random: the kernel issues one ring's submissions one at a time, so with
// one ring the Ps' submits would take turns.
//
// With Config.CompletionThread (or Config.Spin), and always on Windows
// (whose IOCP backend has no pollable handle), the library's completion
// thread runs the callback, which wakes Go at most once per batch: on
// Linux through an eventfd (macOS, the BSDs: a pipe) that one goroutine
// per port reads through Go's poller, on Windows through a goroutine
// blocked in a C wait. That
// goroutine takes the whole queue in one cgo call and delivers it.
//
// Each operation holds a slot of the port's preallocated slot table; the
// context ovl carries for it is the integer index | generation<<32, never a
// Go pointer. A stale or duplicated completion does not match the slot's
// generation and is ignored (counted in Stats.BindingStale). The slot table
// is also the queue-depth semaphore: with QueueDepth operations in flight,
// the next one waits for a slot (or for its context, its deadline or Close)
// instead of failing with OVL_EQUEUEFULL.
//
// # Buffers
//
// The kernel (or a worker thread) writes into a read's buffer after the cgo
// call that submitted it has returned, which cgo's pointer rules allow only
// for pinned memory. The binding pins the caller's []byte with
// runtime.Pinner from submit until the completion has been delivered, so
// reads and writes go straight to and from the caller's slice with no copy.
// The caller must not touch the buffer meanwhile: for the blocking methods
// that is automatic; for ReadAtAsync and WriteAtAsync it lasts until the
// Result arrives. C memory may be passed too (pinning it is a no-op).
// The package's tests pass with cgo's full pointer checks
// (GOEXPERIMENT=cgocheck2 at build time since Go 1.21).
//
// # Errors
//
// Failures are *OpError values carrying the ovl code (Errno), the raw OS
// error behind it and, where the binding knows it, a cause; errors.Is sees
// all three. Read returns io.EOF at end of file (ReadAt too, when the file
// ends before the buffer is full); an operation stopped by a deadline
// matches os.ErrDeadlineExceeded, by a context its ctx.Err()
// (context.Canceled or context.DeadlineExceeded), by Close fs.ErrClosed.
// An operation that completed before its cancellation took effect returns
// its real result.
//
// # Closing
//
// File.Close and Port.Close cancel what is in flight, fail every waiter with
// an error matching fs.ErrClosed and return only after every completion has
// come back: no goroutine is left blocked and no buffer stays pinned.
//
// # Linking
//
// By default the package links the library built in the source tree:
// header from ../../include, libovl.so (libovl.dylib) from ../../build,
// with a run-time path so that `go test` needs no LD_LIBRARY_PATH:
//
//	cmake -S . -B build -DOVL_BUILD_TESTS=OFF
//	cmake --build build --target ovl
//	cd bindings/go && go test -race ./...
//
// To use an installed ovl instead (found through pkg-config, `ovl.pc`),
// build with the tag ovl_pkgconfig:
//
//	go build -tags ovl_pkgconfig
//
// (go's build cache does not see a change of PKG_CONFIG_PATH: after
// pointing it at another installation, run `go clean -cache` or put the
// prefix in CGO_CPPFLAGS, e.g. CGO_CPPFLAGS=-I$PREFIX/include, which is
// part of the cache key.) The command ovlinfo (./cmd/ovlinfo) prints the
// loaded library's version and the backends this host can run.
//
// The cgo flags live in one file, cgo.go. The binding needs a 64-bit
// platform (the slot key fills a pointer-sized context).
package ovl
