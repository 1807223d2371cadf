package ovl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"testing"
	"time"
)

func TestPipeStream(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer r.Close()
		data := testData(1<<20+17, 6) // far beyond the pipe's buffer
		werr := make(chan error, 1)
		go func() {
			n, err := w.Write(data) // must loop over short writes
			if err == nil && n != len(data) {
				err = io.ErrShortWrite
			}
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			werr <- err
		}()
		var got bytes.Buffer
		buf := make([]byte, 10000)
		for {
			n, err := r.Read(buf)
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if n == 0 {
				t.Fatal("Read returned 0 bytes without an error")
			}
		}
		if err := <-werr; err != nil {
			t.Fatalf("Write: %v", err)
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("read %d bytes, want %d identical", got.Len(), len(data))
		}
		if _, err := r.ReadAt(buf, 0); !errors.Is(err, EINVAL) {
			t.Errorf("ReadAt on a pipe: %v, want EINVAL", err)
		}
		if _, err := r.Seek(0, io.SeekStart); err == nil {
			t.Error("Seek on a pipe succeeded")
		}
	})
}

func TestDeadlineOnIdlePipe(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer r.Close()
		defer w.Close()
		const d = 50 * time.Millisecond
		start := time.Now()
		if err := r.SetReadDeadline(start.Add(d)); err != nil {
			t.Fatal(err)
		}
		n, err := r.Read(make([]byte, 10))
		if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read on an idle pipe = %d, %v; want os.ErrDeadlineExceeded", n, err)
		}
		if el := time.Since(start); el < d {
			t.Fatalf("deadline error after %v, before the %v deadline", el, d)
		}
		var oe *OpError
		if !errors.As(err, &oe) || !oe.Timeout() || oe.Code != ECANCELED {
			t.Fatalf("error %#v: want an *OpError with Timeout() and code ECANCELED", err)
		}
		// A deadline in the past fails at once, without submitting.
		before := p.Stats().Submitted
		if _, err := r.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read after the deadline: %v", err)
		}
		if p.Stats().Submitted != before {
			t.Fatal("a read past its deadline was submitted")
		}
		// Clearing the deadline makes the pipe usable again; the cancelled
		// read consumed nothing.
		if err := r.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("ok")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10)
		if n, err := r.Read(buf); err != nil || string(buf[:n]) != "ok" {
			t.Fatalf("Read after clearing the deadline = %q, %v", buf[:n], err)
		}
	})
}

// TestDeadlineSetWhileWaiting: a deadline set while a read is already
// waiting applies to that read.
func TestDeadlineSetWhileWaiting(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer r.Close()
		defer w.Close()
		submitted := onSubmit(t)
		res := make(chan error, 1)
		go func() {
			_, err := r.Read(make([]byte, 1))
			res <- err
		}()
		waitSubmits(t, submitted, 1)
		r.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if err := <-res; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("waiting read: %v, want os.ErrDeadlineExceeded", err)
		}
		// Extending a deadline that has not fired keeps a waiter waiting:
		// the write deadline is set far out, then a write succeeds.
		w.SetWriteDeadline(time.Now().Add(time.Hour))
		w.SetWriteDeadline(time.Now().Add(2 * time.Hour))
		if _, err := w.Write([]byte("x")); err != nil {
			t.Fatalf("Write under a far deadline: %v", err)
		}
	})
}

// TestDeadlineDirections: a write deadline that passes does not cancel a
// waiting read of the same File (the deadline cancels the operations of
// its own direction only); the read then gets its data.
func TestDeadlineDirections(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer r.Close()
		defer w.Close()
		submitted := onSubmit(t)
		res := make(chan error, 1)
		buf := make([]byte, 1)
		go func() {
			_, err := r.Read(buf)
			res <- err
		}()
		waitSubmits(t, submitted, 1)
		r.SetWriteDeadline(time.Now().Add(-time.Second))
		if _, err := w.Write([]byte("y")); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if err := <-res; err != nil || buf[0] != 'y' {
			t.Fatalf("read under an expired write deadline: %q, %v", buf, err)
		}
		r.SetWriteDeadline(time.Time{})
		if _, err := w.Write([]byte("z")); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if n, err := r.Read(buf); n != 1 || err != nil || buf[0] != 'z' {
			t.Fatalf("Read after clearing the write deadline = %d %q %v", n, buf, err)
		}
	})
}

func TestContextCancel(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer r.Close()
		defer w.Close()
		submitted := onSubmit(t)
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() {
			_, err := r.ReadContext(ctx, make([]byte, 1))
			res <- err
		}()
		waitSubmits(t, submitted, 1)
		cancel()
		err := <-res
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ECANCELED) {
			t.Fatalf("cancelled read: %v, want context.Canceled with ECANCELED", err)
		}
		if p.Stats().Cancels == 0 {
			t.Error("no cancellation reached the library")
		}
		// Timeout through the context.
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err = r.ReadContext(ctx, make([]byte, 1))
		var oe *OpError
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &oe) || !oe.Timeout() {
			t.Fatalf("read with a context timeout: %v", err)
		}
		// Already cancelled: fails without submitting.
		before := p.Stats().Submitted
		if _, err := w.WriteContext(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WriteContext with an expired context: %v", err)
		}
		if p.Stats().Submitted != before {
			t.Fatal("an operation with an expired context was submitted")
		}
	})
}

func TestCloseWithReadsPending(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer w.Close()
		const readers = 8
		submitted := onSubmit(t)
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		for i := 0; i < readers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := r.Read(make([]byte, 16))
				errs <- err
			}()
		}
		waitSubmits(t, submitted, readers)
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		// Close returned only after every completion came back.
		if st := p.Stats(); st.Inflight != 0 {
			t.Fatalf("%d ops still in flight after File.Close returned", st.Inflight)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, fs.ErrClosed) {
				t.Errorf("pending read after Close: %v, want fs.ErrClosed", err)
			}
		}
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Read after Close: %v", err)
		}
		if err := r.Close(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("second Close: %v", err)
		}
		if err := r.SetDeadline(time.Now()); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("SetDeadline after Close: %v", err)
		}
		if res := <-r.ReadAtAsync(make([]byte, 1), 0, nil); !errors.Is(res.Err, fs.ErrClosed) && !errors.Is(res.Err, EINVAL) {
			t.Errorf("ReadAtAsync after Close: %v", res.Err)
		}
	})
}

func TestPortCloseWithReadsPending(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer r.Close()
		defer w.Close()
		const readers = 5
		submitted := onSubmit(t)
		errs := make(chan error, readers)
		for i := 0; i < readers; i++ {
			go func() {
				_, err := r.Read(make([]byte, 16))
				errs <- err
			}()
		}
		waitSubmits(t, submitted, readers)
		if err := p.Close(); err != nil {
			t.Fatalf("Port.Close: %v", err)
		}
		for i := 0; i < readers; i++ {
			if err := <-errs; !errors.Is(err, fs.ErrClosed) {
				t.Errorf("pending read after Port.Close: %v, want fs.ErrClosed", err)
			}
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, fs.ErrClosed) || !errors.Is(err, ECLOSED) {
			t.Errorf("Write after Port.Close: %v", err)
		}
		if err := p.Close(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("second Port.Close: %v", err)
		}
		if _, err := p.Open(os.DevNull); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Open on a closed port: %v", err)
		}
	})
}
