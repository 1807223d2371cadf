package ovl

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// TestRings: a manual uring port of three rings spreads concurrent reads
// over all of them, every read returns the file's bytes, and a close with
// nothing in flight leaves no ring with work.
func TestRings(t *testing.T) {
	const size = 256 << 10
	data := testData(size, 7)
	name := tempFile(t, data)
	p := newTestPort(t, Config{Backend: BackendURing, QueueDepth: 16, Rings: 3})
	if len(p.rings) != 3 {
		t.Fatalf("Rings: 3 gave %d rings", len(p.rings))
	}
	f, err := p.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 4096)
			for i := 0; i < 64; i++ {
				off := int64((g*64 + i) * 4096 % size)
				if n, err := f.ReadAt(buf, off); n != len(buf) || err != nil ||
					!bytes.Equal(buf, data[off:off+4096]) {
					errs <- fmt.Errorf("ReadAt(%d) = %d, %v (or wrong bytes)", off, n, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, r := range p.rings {
		st := (&Port{ring: r, rings: []*ring{r}}).Stats()
		if st.Submitted == 0 {
			t.Errorf("ring %d got no operation", i)
		}
	}
	if st := p.Stats(); st.Submitted != 16*64 || st.Inflight != 0 {
		t.Errorf("Stats: %d submitted, %d in flight; want %d, 0", st.Submitted, st.Inflight, 16*64)
	}
}

// TestRingsDefault: GOMAXPROCS rings (at most 8) in manual mode on uring,
// one otherwise.
func TestRingsDefault(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want int
	}{
		{Config{Backend: BackendURing}, min(runtime.GOMAXPROCS(0), 8)},
		{Config{Backend: BackendURing, CompletionThread: true}, 1},
		{Config{Backend: BackendThreads}, 1},
	} {
		p := newTestPort(t, tc.cfg)
		if got := len(p.rings); got != tc.want {
			t.Errorf("%+v: %d rings, want %d", tc.cfg, got, tc.want)
		}
	}
}
