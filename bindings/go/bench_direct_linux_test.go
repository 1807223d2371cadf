//go:build ovl_directcb && linux

package ovl

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkBridge measures issue 4's alternative: the production queue
// bridge against a C callback that calls an exported Go function directly
// on the completion thread, for 4 KiB page-cache ReadAt from 64 goroutines,
// with the Ps idle and with every P kept busy by spinning goroutines. It
// reports the throughput and how long the completion thread was held in
// the callback (worst and mean per batch).
//
//	go test -tags ovl_directcb -run '^$' -bench Bridge -benchtime 50000x
func BenchmarkBridge(b *testing.B) {
	name := benchFile(b)
	for _, load := range []string{"idle", "busy"} {
		for _, direct := range []bool{false, true} {
			kind := "queue"
			if direct {
				kind = "direct"
			}
			b.Run(fmt.Sprintf("%s/%s", kind, load), func(b *testing.B) {
				p, stats, err := newTimedPort(Config{QueueDepth: 64}, direct)
				if err != nil {
					b.Fatal(err)
				}
				f, err := p.OpenFile(name, os.O_RDONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				warm(b, name)
				var stop atomic.Bool
				var spinners sync.WaitGroup
				if load == "busy" {
					for i := 0; i < runtime.GOMAXPROCS(0); i++ {
						spinners.Add(1)
						go func() {
							defer spinners.Done()
							for !stop.Load() {
							}
						}()
					}
				}
				runReads(b, 64, f.ReadAt)
				stop.Store(true)
				spinners.Wait()
				f.Close()
				p.Close()
				st := stats()
				if st.Calls > 0 {
					b.ReportMetric(float64(st.Longest.Microseconds()), "max-cb-µs")
					b.ReportMetric(float64(st.Total.Nanoseconds())/float64(st.Calls), "mean-cb-ns")
					b.ReportMetric(float64(st.Items)/float64(st.Calls), "items/batch")
				}
			})
		}
	}
}

// TestTimedBridges checks that both benchmark bridges deliver correctly,
// so the comparison compares working code.
func TestTimedBridges(t *testing.T) {
	data := testData(64<<10, 10)
	name := tempFile(t, data)
	for _, direct := range []bool{false, true} {
		p, stats, err := newTimedPort(Config{QueueDepth: 8}, direct)
		if err != nil {
			t.Fatal(err)
		}
		f, err := p.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				buf := make([]byte, 4096)
				off := int64(g * 4096)
				if n, err := f.ReadAt(buf, off); n != 4096 || err != nil || string(buf) != string(data[off:off+4096]) {
					t.Errorf("direct=%v: ReadAt(%d) = %d, %v", direct, off, n, err)
				}
			}(g)
		}
		wg.Wait()
		f.Close()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if st := stats(); st.Items < 16 || st.Calls == 0 {
			t.Errorf("direct=%v: callback stats %+v, want >= 16 items", direct, st)
		}
	}
}
