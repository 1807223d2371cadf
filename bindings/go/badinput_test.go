package ovl

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestNewPortBadConfig(t *testing.T) {
	bad := []Config{
		{QueueDepth: -1},
		{QueueDepth: MaxQueueDepth + 1},
		{Threads: -1},
		{Spin: -1},
		{Spin: time.Millisecond, NoSpin: true},
		{Backend: Backend(99)},
	}
	for _, cfg := range bad {
		p, err := NewPort(cfg)
		if err == nil {
			p.Close()
			t.Errorf("NewPort(%+v) succeeded", cfg)
			continue
		}
		if !errors.Is(err, EINVAL) {
			t.Errorf("NewPort(%+v): %v, want EINVAL", cfg, err)
		}
	}
}

func TestBackendUnavailable(t *testing.T) {
	// IOCP exists only on Windows; asking for it elsewhere must fail with
	// EUNAVAIL (no silent substitute).
	p, err := NewPort(Config{Backend: BackendIOCP})
	if err == nil {
		defer p.Close()
		if p.Backend() != "iocp" {
			t.Fatalf("asked for iocp, got %q", p.Backend())
		}
		return
	}
	if !errors.Is(err, EUNAVAIL) {
		t.Fatalf("NewPort(iocp): %v, want EUNAVAIL", err)
	}
}

func TestBadInput(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		name := tempFile(t, []byte("data"))
		f, err := p.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 4)
		if _, err := f.ReadAt(b, -1); !errors.Is(err, EINVAL) {
			t.Errorf("ReadAt(-1): %v, want EINVAL", err)
		}
		if _, err := f.WriteAt(b, -5); !errors.Is(err, EINVAL) {
			t.Errorf("WriteAt(-5): %v, want EINVAL", err)
		}
		if n, err := f.Write(nil); n != 0 || err != nil {
			t.Errorf("Write(nil) = %d, %v", n, err)
		}
		if n, err := f.Read(nil); n != 0 || err != nil {
			t.Errorf("Read(nil) = %d, %v", n, err)
		}
		if _, err := p.Open(filepath.Join(testDir(t), "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open of a missing file: %v", err)
		}
		// Descriptors that are not open fail with EBADF when adopted.
		for _, fd := range []uintptr{^uintptr(0), 1 << 31, 1<<20 + 7} {
			if _, err := p.NewFileFD(fd, "bad"); !errors.Is(err, EBADF) {
				t.Errorf("NewFileFD(%#x): %v, want EBADF", fd, err)
			}
		}
	})
}

// TestBadFDInCompletion: a descriptor closed behind the File's back is
// reported in the completion as EBADF, on every backend.
func TestBadFDInCompletion(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, p *Port) {
		// A bare File on a descriptor number that is not open (adoption
		// would refuse it): the submit is accepted and the completion says
		// EBADF.
		f := &File{port: p, fd: 1<<20 + 11, name: "closed", closing: make(chan struct{})}
		_, err := f.ReadAt(make([]byte, 8), 0)
		if !errors.Is(err, EBADF) {
			t.Fatalf("ReadAt on a closed descriptor: %v, want EBADF", err)
		}
		var oe *OpError
		// The raw error is errno on POSIX, GetLastError() on Windows.
		if errors.As(err, &oe) && runtime.GOOS != "windows" && oe.OSErr != 0 && oe.OSErr != syscall.EBADF {
			t.Errorf("raw OS error %v, want EBADF or none", oe.OSErr)
		}
		if _, err := f.WriteAt(make([]byte, 8), 0); !errors.Is(err, EBADF) {
			t.Fatalf("WriteAt on a closed descriptor: %v, want EBADF", err)
		}
		if err := f.Sync(); !errors.Is(err, EBADF) {
			t.Fatalf("Sync on a closed descriptor: %v, want EBADF", err)
		}
		// A value that can never be a descriptor fails the submit itself.
		g := &File{port: p, fd: 1 << 40, name: "huge", closing: make(chan struct{})}
		if _, err := g.ReadAt(make([]byte, 8), 0); !errors.Is(err, EBADF) {
			t.Fatalf("ReadAt on fd 1<<40: %v, want EBADF", err)
		}
	})
}

// TestStaleCompletionIgnored posts completions whose slot key is stale (an
// old generation: a duplicate of one already delivered) or out of range:
// the binding must ignore them and keep working.
func TestStaleCompletionIgnored(t *testing.T) {
	forEachBackend(t, Config{QueueDepth: 1}, func(t *testing.T, p *Port) {
		name := tempFile(t, []byte("0123456789"))
		f, err := p.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		used := p.slotKey(0)
		b := make([]byte, 4)
		if _, err := f.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		if p.slotKey(0) == used {
			t.Fatal("slot generation not bumped after use")
		}
		if rc := p.postKey(used); rc != 0 {
			t.Fatalf("post: %v", rc)
		}
		eventually(t, "the duplicate to be seen", func() bool { return p.Stats().BindingStale == 1 })
		if rc := p.postKey(uint64(5) | 1<<32); rc != 0 {
			t.Fatalf("post: %v", rc)
		}
		eventually(t, "the out-of-range key to be seen", func() bool { return p.Stats().BindingStale == 2 })
		// A key for the slot's next generation that arrives while the
		// slot is free is ignored too, and the slot still works.
		if rc := p.postKey(p.slotKey(0)); rc != 0 {
			t.Fatalf("post: %v", rc)
		}
		eventually(t, "the early key to be seen", func() bool { return p.Stats().BindingStale == 3 })
		if n, err := f.ReadAt(b, 4); n != 4 || err != nil || string(b) != "4567" {
			t.Fatalf("ReadAt after stale completions = %d %q %v", n, b, err)
		}
	})
}
