package ovl

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"
	"time"
)

// withBlockingStreams runs fn on a manual-mode port of each backend with
// blockStreams set, so that a lone read of an idle pipe waits inside the
// library (govl_submit_block) until something ends it.
func withBlockingStreams(t *testing.T, fn func(t *testing.T, p *Port)) {
	blockStreams = true
	t.Cleanup(func() { blockStreams = false })
	for _, b := range allBackends {
		forBackend(t, Config{}, b, false, fn)
	}
}

// inBlock reports whether a goroutine waits inside the library on one of
// p's rings with its operation accepted.
func inBlock(p *Port) bool {
	for _, r := range p.rings {
		if r.inBlock.Load() != 0 && p.Stats().Inflight != 0 {
			return true
		}
	}
	return false
}

// blockedRead starts a read of r, which must end up waiting in the
// library, and returns where its error will arrive.
func blockedRead(t *testing.T, p *Port, r *File) <-chan error {
	t.Helper()
	res := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 1))
		res <- err
	}()
	eventually(t, "the read to wait in the library", func() bool { return inBlock(p) })
	return res
}

// TestBlockDeadline: a deadline that passes while the read waits in the
// library cancels it there (its op id is known only to the C side until
// the call returns).
func TestBlockDeadline(t *testing.T) {
	withBlockingStreams(t, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer r.Close()
		defer w.Close()
		res := blockedRead(t, p, r)
		r.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if err := <-res; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read waiting in the library: %v, want os.ErrDeadlineExceeded", err)
		}
		// The wait submitted the read in the same call, so the cancel
		// ended it with a post: that must be gone too, and not seen by
		// Go as a completion.
		if st := p.Stats(); st.Inflight != 0 || st.BindingStale != 0 {
			t.Fatalf("after the cancelled wait: %d in flight, %d stale completions", st.Inflight, st.BindingStale)
		}
		r.SetReadDeadline(time.Time{})
		if _, err := w.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		if n, err := r.Read(buf); n != 1 || err != nil || buf[0] != 'x' {
			t.Fatalf("Read after the cancelled one = %d, %v, %q", n, err, buf[:n])
		}
	})
}

// TestBlockJoined: operations that start while one waits in the library
// complete (that waiter delivers them, or hands over to the drainer), and
// the waiting one completes once its data comes.
func TestBlockJoined(t *testing.T) {
	data := testData(64<<10, 31)
	name := tempFile(t, data)
	withBlockingStreams(t, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer r.Close()
		defer w.Close()
		f, err := p.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		res := make(chan error, 1)
		got := make([]byte, 1)
		go func() {
			_, err := r.Read(got)
			res <- err
		}()
		eventually(t, "the read to wait in the library", func() bool { return inBlock(p) })
		buf := make([]byte, 4096)
		for i := 0; i < 50; i++ {
			off := int64(i%16) * 4096
			if n, err := f.ReadAt(buf, off); n != len(buf) || err != nil || !bytes.Equal(buf, data[off:off+4096]) {
				t.Fatalf("ReadAt(%d) beside a waiting read = %d, %v (or wrong bytes)", off, n, err)
			}
		}
		if _, err := w.Write([]byte("y")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-res:
			if err != nil || got[0] != 'y' {
				t.Fatalf("waiting read = %v, %q", err, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the waiting read did not complete")
		}
	})
}

// TestBlockFileClose: File.Close cancels a read waiting in the library.
func TestBlockFileClose(t *testing.T) {
	withBlockingStreams(t, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer w.Close()
		res := blockedRead(t, p, r)
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-res; !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("read waiting in the library after Close: %v, want fs.ErrClosed", err)
		}
	})
}

// TestBlockPortClose: Port.Close wakes a read waiting in the library and
// frees the ring's queue only after it left.
func TestBlockPortClose(t *testing.T) {
	withBlockingStreams(t, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer r.Close()
		defer w.Close()
		res := blockedRead(t, p, r)
		if err := p.Close(); err != nil {
			t.Fatalf("Port.Close: %v", err)
		}
		if err := <-res; !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("read waiting in the library after Port.Close: %v, want fs.ErrClosed", err)
		}
	})
}

// TestLoneReadOneEnter: on io_uring a lone blocking read that does not
// complete inside its submit (O_DIRECT) submits and waits in one
// io_uring_enter (ovl_submit_and_poll), as a pread is one system call; a
// submit and then a wait made two.
func TestLoneReadOneEnter(t *testing.T) {
	const reads = 200
	data := testData(64<<10, 5)
	name := tempFile(t, data)
	p := newTestPort(t, Config{Backend: BackendURing})
	f, err := p.OpenFile(name, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Skipf("O_DIRECT: %v", err) // tmpfs, say
	}
	defer f.Close()
	buf := alignedBuf(4096)
	s0 := p.Stats()
	for i := 0; i < reads; i++ {
		off := int64(i%16) * 4096
		if n, err := f.ReadAt(buf, off); n != len(buf) || err != nil || !bytes.Equal(buf, data[off:off+4096]) {
			if errors.Is(err, syscall.EINVAL) && i == 0 {
				t.Skipf("O_DIRECT read: %v", err)
			}
			t.Fatalf("ReadAt(%d) = %d, %v (or wrong bytes)", off, n, err)
		}
	}
	s1 := p.Stats()
	// A signal (Go's preemption) can cut a wait short and make it go
	// round again, hence the margin; two per read is what to catch.
	if n := s1.Syscalls - s0.Syscalls; n > reads*5/4 {
		t.Fatalf("%d lone O_DIRECT reads made %d io_uring_enter calls, want about one each", reads, n)
	}
}
