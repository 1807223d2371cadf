package ovl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testData returns n deterministic pseudo-random bytes.
func testData(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// tempFile writes data to a new file in t's temp dir and returns its path.
func tempFile(t testing.TB, data []byte) string {
	t.Helper()
	name := filepath.Join(testDir(t), "data")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestReadAtConcurrent(t *testing.T) {
	const size = 1<<20 + 123
	data := testData(size, 1)
	name := tempFile(t, data)
	forEachBackend(t, Config{QueueDepth: 32}, func(t *testing.T, p *Port) {
		f, err := p.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		const goroutines, reads = 64, 100
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func(seed int64) {
				defer wg.Done()
				rng := rand.New(rand.NewSource(seed))
				for i := 0; i < reads; i++ {
					n := 1 + rng.Intn(64<<10)
					off := rng.Int63n(size + 100)
					buf := make([]byte, n)
					got, err := f.ReadAt(buf, off)
					want := 0
					if off < size {
						want = min(n, size-int(off))
					}
					if got != want {
						errs <- fmt.Errorf("ReadAt(%d at %d) = %d, want %d", n, off, got, want)
						return
					}
					if want < n && err != io.EOF {
						errs <- fmt.Errorf("ReadAt(%d at %d): error %v, want io.EOF", n, off, err)
						return
					}
					if want == n && err != nil {
						errs <- fmt.Errorf("ReadAt(%d at %d): error %v, want nil", n, off, err)
						return
					}
					if got > 0 && !bytes.Equal(buf[:got], data[off:off+int64(got)]) {
						errs <- fmt.Errorf("ReadAt(%d at %d): wrong data", n, off)
						return
					}
				}
			}(int64(g))
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if st := p.Stats(); st.Submitted < goroutines*reads {
			t.Errorf("only %d submits for %d reads", st.Submitted, goroutines*reads)
		}
	})
}

func TestWriteAtConcurrentThenReadBack(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		name := filepath.Join(testDir(t), "w")
		f, err := p.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		const blocks, bs = 64, 8192
		data := testData(blocks*bs, 2)
		var wg sync.WaitGroup
		for i := 0; i < blocks; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				n, err := f.WriteAt(data[i*bs:(i+1)*bs], int64(i*bs))
				if n != bs || err != nil {
					t.Errorf("WriteAt block %d: %d, %v", i, n, err)
				}
			}(i)
		}
		wg.Wait()
		if err := f.Sync(); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("file content differs from what was written (len %d, want %d)", len(got), len(data))
		}
	})
}

func TestReadWriteSeekRegularFile(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		name := filepath.Join(testDir(t), "rw")
		f, err := p.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.IsStream() {
			t.Fatal("a regular file reported as a stream")
		}
		if n, err := f.Write([]byte("hello, ")); n != 7 || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		if n, err := f.Write([]byte("world")); n != 5 || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		if pos, err := f.Seek(0, io.SeekCurrent); pos != 12 || err != nil {
			t.Fatalf("Seek(0, current) = %d, %v; want 12", pos, err)
		}
		if pos, err := f.Seek(-5, io.SeekEnd); pos != 7 || err != nil {
			t.Fatalf("Seek(-5, end) = %d, %v; want 7", pos, err)
		}
		b := make([]byte, 3)
		if n, err := f.Read(b); n != 3 || err != nil || string(b) != "wor" {
			t.Fatalf("Read = %d %q %v", n, b[:n], err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		all, err := io.ReadAll(f)
		if err != nil || string(all) != "hello, world" {
			t.Fatalf("ReadAll = %q, %v", all, err)
		}
		if n, err := f.Read(b); n != 0 || err != io.EOF {
			t.Fatalf("Read at end = %d, %v; want 0, io.EOF", n, err)
		}
		if _, err := f.Seek(-1, io.SeekStart); err == nil {
			t.Error("Seek to a negative position succeeded")
		}
		if _, err := f.Seek(0, 42); err == nil {
			t.Error("Seek with a bad whence succeeded")
		}
	})
}

func TestAppendFile(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		name := tempFile(t, []byte("abc"))
		f, err := p.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write([]byte("def")); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if _, err := f.WriteAt([]byte("x"), 0); err == nil || !errors.Is(err, EINVAL) {
			t.Fatalf("WriteAt on O_APPEND: %v, want EINVAL", err)
		}
		if got, _ := os.ReadFile(name); string(got) != "abcdef" {
			t.Fatalf("content %q, want abcdef", got)
		}
	})
}

func TestEOF(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		name := tempFile(t, []byte("0123456789"))
		f, err := p.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 4)
		if n, err := f.ReadAt(b, 8); n != 2 || err != io.EOF || string(b[:2]) != "89" {
			t.Errorf("ReadAt across the end = %d %q %v; want 2 \"89\" io.EOF", n, b[:n], err)
		}
		if n, err := f.ReadAt(b, 10); n != 0 || err != io.EOF {
			t.Errorf("ReadAt at the end = %d, %v; want 0, io.EOF", n, err)
		}
		if n, err := f.ReadAt(b, 1<<40); n != 0 || err != io.EOF {
			t.Errorf("ReadAt far past the end = %d, %v; want 0, io.EOF", n, err)
		}
		if n, err := f.ReadAt(nil, 100); n != 0 || err != nil {
			t.Errorf("empty ReadAt = %d, %v; want 0, nil", n, err)
		}
		r := <-f.ReadAtAsync(b, 10, nil)
		if r.N != 0 || r.Err != io.EOF {
			t.Errorf("ReadAtAsync at the end = %d, %v; want 0, io.EOF", r.N, r.Err)
		}
		empty := tempFile(t, nil)
		e, err := p.Open(empty)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if n, err := e.Read(b); n != 0 || err != io.EOF {
			t.Errorf("Read of an empty file = %d, %v; want 0, io.EOF", n, err)
		}
	})
}

// TestSplitLargeIO shrinks the largest single operation to check that
// ReadAt and WriteAt split a buffer larger than OVL_MAX_IO_SIZE.
func TestSplitLargeIO(t *testing.T) {
	old := maxIO
	maxIO = 7
	defer func() { maxIO = old }()
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		data := testData(100, 3)
		name := filepath.Join(testDir(t), "split")
		f, err := p.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		before := p.Stats().Submitted
		if n, err := f.WriteAt(data, 5); n != 100 || err != nil {
			t.Fatalf("WriteAt = %d, %v", n, err)
		}
		got := make([]byte, 100)
		if n, err := f.ReadAt(got, 5); n != 100 || err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadAt = %d, %v (equal %v)", n, err, bytes.Equal(got, data))
		}
		if subs := p.Stats().Submitted - before; subs < 2*15 {
			t.Errorf("%d submits for 2 x 100 bytes in pieces of 7; want >= 30", subs)
		}
	})
}

func TestAsync(t *testing.T) {
	const size = 256 << 10
	data := testData(size, 4)
	name := tempFile(t, data)
	forEachBackend(t, Config{QueueDepth: 8}, func(t *testing.T, p *Port) {
		f, err := p.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		const bs = 4096
		done := make(chan Result, size/bs)
		for off := 0; off < size; off += bs {
			f.ReadAtAsync(make([]byte, bs), int64(off), done)
		}
		seen := make(map[int64]bool)
		for i := 0; i < size/bs; i++ {
			r := <-done
			if r.Err != nil || r.N != bs {
				t.Fatalf("async read at %d: %d, %v", r.Off, r.N, r.Err)
			}
			if !bytes.Equal(r.Buf, data[r.Off:r.Off+bs]) {
				t.Fatalf("async read at %d: wrong data", r.Off)
			}
			if seen[r.Off] {
				t.Fatalf("result for offset %d delivered twice", r.Off)
			}
			seen[r.Off] = true
		}
		// One goroutine, many in flight, results via the channel it gets.
		out := filepath.Join(testDir(t), "out")
		w, err := p.OpenFile(out, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if r := <-w.WriteAtAsync(data[:100], 0, nil); r.N != 100 || r.Err != nil {
			t.Fatalf("WriteAtAsync = %d, %v", r.N, r.Err)
		}
		if r := <-w.ReadAtAsync(make([]byte, 10), -1, nil); !errors.Is(r.Err, EINVAL) {
			t.Fatalf("ReadAtAsync at -1: %v, want EINVAL", r.Err)
		}
	})
}

func TestBackPressure(t *testing.T) {
	data := testData(64<<10, 5)
	name := tempFile(t, data)
	forEachBackend(t, Config{QueueDepth: 2}, func(t *testing.T, p *Port) {
		f, err := p.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var wg sync.WaitGroup
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				buf := make([]byte, 1024)
				for i := 0; i < 20; i++ {
					off := int64((g*20 + i) % 64 * 1024)
					if n, err := f.ReadAt(buf, off); n != 1024 || err != nil || !bytes.Equal(buf, data[off:off+1024]) {
						t.Errorf("ReadAt(%d) = %d, %v", off, n, err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
	})
}

// TestBackPressureWaitHonoursContext fills a depth-1 port with a read that
// cannot finish; a second operation then waits for a slot and gives up
// when its context ends, without ever being submitted.
func TestBackPressureWaitHonoursContext(t *testing.T) {
	forEachBackend(t, Config{QueueDepth: 1}, func(t *testing.T, p *Port) {
		r, w := newPipe(t, p)
		defer w.Close()
		submitted := onSubmit(t)
		blocked := make(chan error, 1)
		go func() {
			_, err := r.Read(make([]byte, 1))
			blocked <- err
		}()
		waitSubmits(t, submitted, 1)
		before := p.Stats().Submitted
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := w.WriteContext(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
			t.Fatalf("WriteContext with a cancelled context: %v", err)
		}
		ctx, cancel = context.WithCancel(context.Background())
		go cancel()
		if _, err := w.WriteContext(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
			t.Fatalf("WriteContext waiting for a slot: %v, want context.Canceled", err)
		}
		if got := p.Stats().Submitted; got != before {
			t.Fatalf("submits went from %d to %d", before, got)
		}
		r.Close()
		if err := <-blocked; !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("blocked read after Close: %v", err)
		}
	})
}

// TestCloseRacesReads closes a File while goroutines keep reading it,
// blocking and asynchronously: every read either returns the file's bytes
// or fails with fs.ErrClosed, Close returns with nothing of the File in
// flight, and every slot comes back.
func TestCloseRacesReads(t *testing.T) {
	data := testData(64<<10, 23)
	name := tempFile(t, data)
	forEachBackend(t, Config{QueueDepth: 8}, func(t *testing.T, p *Port) {
		for round := 0; round < 20; round++ {
			f, err := p.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := 0; g < 12; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					buf := make([]byte, 1024)
					for i := 0; ; i++ {
						off := int64((g*7 + i) % 64 * 1024)
						var n int
						var err error
						if g%3 == 0 {
							r := <-f.ReadAtAsync(buf, off, nil)
							n, err = r.N, r.Err
						} else {
							n, err = f.ReadAt(buf, off)
						}
						if errors.Is(err, fs.ErrClosed) {
							return
						}
						if err != nil || n != len(buf) || !bytes.Equal(buf, data[off:off+1024]) {
							t.Errorf("read at %d: %d, %v (or wrong bytes)", off, n, err)
							return
						}
					}
				}(g)
			}
			time.Sleep(time.Duration(round%4) * time.Millisecond)
			if err := f.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if st := p.Stats(); st.Inflight != 0 {
				t.Fatalf("%d operations in flight after Close returned", st.Inflight)
			}
			wg.Wait()
			if st := p.Stats(); st.SlotsInUse != 0 {
				t.Fatalf("%d slots in use after every reader returned", st.SlotsInUse)
			}
		}
	})
}

// TestNoSpinPort: a port whose completion thread never spins
// (OVL_SPIN_NONE) is a completion-thread port and delivers like one.
func TestNoSpinPort(t *testing.T) {
	data := testData(64<<10, 7)
	name := tempFile(t, data)
	forEachBackend(t, Config{NoSpin: true}, func(t *testing.T, p *Port) {
		if p.manual {
			t.Fatal("NoSpin gave a manual port, want a completion thread")
		}
		f, err := p.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for off := int64(0); off < int64(len(data)); off += 4096 {
			buf := make([]byte, 4096)
			if n, err := f.ReadAt(buf, off); n != len(buf) || err != nil {
				t.Fatalf("ReadAt(4096 at %d) = %d, %v", off, n, err)
			}
			if !bytes.Equal(buf, data[off:off+4096]) {
				t.Fatalf("ReadAt at %d: wrong data", off)
			}
		}
	})
}
