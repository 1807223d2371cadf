package ovl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestMain fails the run if any slot (a pinned buffer, a waiter) or port is
// still live when every test has finished.
func TestMain(m *testing.M) {
	var ports []*Port
	var mu sync.Mutex
	testHookNewPort = func(p *Port) {
		mu.Lock()
		ports = append(ports, p)
		mu.Unlock()
	}
	code := m.Run()
	n := 0
	mu.Lock()
	for _, p := range ports {
		n += p.Stats().SlotsInUse
	}
	mu.Unlock()
	if n != 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d slots still in use at exit\n", n)
		code = 1
	}
	if n := livePorts.Load(); n != 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d ports not closed at exit\n", n)
		code = 1
	}
	os.Exit(code)
}

// newTestPort opens a port on backend b, or skips if the host lacks it; the
// cleanup closes it and checks that nothing was left in flight.
func newTestPort(t testing.TB, cfg Config) *Port {
	t.Helper()
	p, err := NewPort(cfg)
	if errors.Is(err, EUNAVAIL) {
		t.Skipf("backend %v not available on this host: %v", cfg.Backend, err)
	}
	if err != nil {
		t.Fatalf("NewPort(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil && !errors.Is(err, ECLOSED) {
			t.Errorf("Port.Close: %v", err)
		}
		st := p.Stats()
		if st.Inflight != 0 || st.SlotsInUse != 0 {
			t.Errorf("after Close: %d ops in flight, %d slots in use", st.Inflight, st.SlotsInUse)
		}
		if st.Stale != 0 {
			t.Errorf("library saw %d stale completions", st.Stale)
		}
	})
	return p
}

// forEachBackend runs fn as a subtest on a fresh port of every backend,
// in each delivery mode: the default one and, where that is the manual
// mode (Linux), with the library's completion thread too ("-cthread").
func forEachBackend(t *testing.T, cfg Config, fn func(t *testing.T, p *Port)) {
	modes := []bool{cfg.CompletionThread}
	if manualMode(cfg) {
		modes = append(modes, true)
	}
	for _, b := range allBackends {
		for _, ct := range modes {
			forBackend(t, cfg, b, ct, fn)
		}
	}
}

func forBackend(t *testing.T, cfg Config, b Backend, cthread bool, fn func(t *testing.T, p *Port)) {
	name := b.String()
	if cthread && !cfg.CompletionThread {
		name += "-cthread"
	}
	t.Run(name, func(t *testing.T) {
		c := cfg
		c.Backend = b
		c.CompletionThread = cthread
		p := newTestPort(t, c)
		if p.Backend() != b.String() {
			t.Fatalf("asked for %v, got %q", b, p.Backend())
		}
		if p.manual != manualMode(c) {
			t.Fatalf("CompletionThread %v gave a port with manual = %v", cthread, p.manual)
		}
		fn(t, p)
	})
}

// onSubmit installs a hook that signals ch after every accepted submit, for
// tests that must act once an operation is really in flight.
func onSubmit(t *testing.T) <-chan struct{} {
	ch := make(chan struct{}, 1024)
	h := func() { ch <- struct{}{} }
	testHookSubmitted.Store(&h)
	t.Cleanup(func() { testHookSubmitted.Store(nil) })
	return ch
}

// waitSubmits waits until n submits were signalled on ch.
func waitSubmits(t *testing.T, ch <-chan struct{}, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("only %d of %d operations were submitted", i, n)
		}
	}
}

// eventually polls cond until it holds (or fails the test after 10s). For
// conditions with no event to wait on, such as a counter another goroutine
// bumps.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// testDir is t.TempDir with a cleanup that also works under wine, where
// Go 1.26's os.RemoveAll (and so t.TempDir's cleanup) fails with "Invalid
// function": it falls back to removing entry by entry.
func testDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ovl-go-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.RemoveAll(dir) == nil {
			return
		}
		var paths []string
		filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
			paths = append(paths, path)
			return nil
		})
		for i := len(paths) - 1; i >= 0; i-- {
			os.Remove(paths[i])
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("could not remove %s", dir)
		}
	})
	return dir
}
