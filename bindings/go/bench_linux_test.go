package ovl

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// The issue-7 comparison: 4 KiB random ReadAt through ovl (each backend)
// against os.File.ReadAt, from 1 and 64 goroutines, from the page cache
// and with O_DIRECT (4 KiB aligned buffers), reporting the most OS threads
// the process had during the run. Compare runs with benchstat.

const (
	benchBlock = 4096
	benchSize  = 32 << 20
)

func benchFile(b *testing.B) string {
	b.Helper()
	name := filepath.Join(testDir(b), "bench")
	if err := os.WriteFile(name, testData(benchSize, 9), 0o600); err != nil {
		b.Fatal(err)
	}
	return name
}

// warm reads the whole file so the page-cache runs measure memory, not disk
// (this machine class evicts unused pages after about a minute).
func warm(b *testing.B, name string) {
	if _, err := os.ReadFile(name); err != nil {
		b.Fatal(err)
	}
}

// alignedBuf returns n bytes aligned to 4096, as O_DIRECT needs.
func alignedBuf(n int) []byte {
	raw := make([]byte, n+4096)
	off := int((4096 - uintptr(unsafe.Pointer(&raw[0]))%4096) % 4096)
	return raw[off : off+n]
}

// osThreads returns the process's current number of OS threads, and how
// many of them are io_uring's kernel workers (io-wq, named "iou-wrk-PID":
// the kernel runs an O_DIRECT read there when the filesystem cannot issue
// it without blocking).
func osThreads() (all, iowq int) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, 0
	}
	for _, t := range tasks {
		all++
		comm, _ := os.ReadFile("/proc/self/task/" + t.Name() + "/comm")
		if bytes.HasPrefix(comm, []byte("iou-wrk")) {
			iowq++
		}
	}
	return all, iowq
}

// threadSampler records the most OS threads (and io-wq workers among
// them) seen until stop is called.
func threadSampler() (stop func() (all, iowq int)) {
	var peak, peakWQ atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			n, wq := osThreads()
			if int64(n) > peak.Load() {
				peak.Store(int64(n))
			}
			if int64(wq) > peakWQ.Load() {
				peakWQ.Store(int64(wq))
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (int, int) {
		close(done)
		<-finished
		return int(peak.Load()), int(peakWQ.Load())
	}
}

// runReads does b.N random block reads spread over g goroutines.
func runReads(b *testing.B, g int, readAt func([]byte, int64) (int, error)) {
	blocks := int64(benchSize / benchBlock)
	var next atomic.Int64
	b.SetBytes(benchBlock)
	stop := threadSampler()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			buf := alignedBuf(benchBlock)
			rng := rand.New(rand.NewSource(seed))
			for next.Add(1) <= int64(b.N) {
				off := rng.Int63n(blocks) * benchBlock
				if n, err := readAt(buf, off); n != benchBlock || err != nil {
					b.Errorf("ReadAt(%d) = %d, %v", off, n, err)
					return
				}
			}
		}(int64(i))
	}
	wg.Wait()
	b.StopTimer()
	all, iowq := stop()
	b.ReportMetric(float64(all), "threads")
	b.ReportMetric(float64(iowq), "io-wq")
}

// benchPort is one port configuration the benchmarks compare.
type benchPort struct {
	name string
	cfg  Config
}

// benchPorts: each backend in the default mode (on Linux no completion
// thread: submitters poll) and with the library's completion thread
// ("-cthread", the only mode before manual mode became the default).
func benchPorts() []benchPort {
	var ps []benchPort
	for _, be := range allBackends {
		ps = append(ps,
			benchPort{fmt.Sprintf("ovl-%v", be), Config{Backend: be, QueueDepth: 64}},
			benchPort{fmt.Sprintf("ovl-%v-cthread", be), Config{Backend: be, QueueDepth: 64, CompletionThread: true}})
	}
	// Threads caps io_uring's kernel workers (io-wq), which carry the
	// O_DIRECT reads this filesystem cannot issue without blocking.
	ps = append(ps, benchPort{"ovl-uring-iowq2", Config{Backend: BackendURing, QueueDepth: 64, Threads: 2}})
	return ps
}

func BenchmarkReadAt(b *testing.B) {
	name := benchFile(b)
	for _, direct := range []bool{false, true} {
		mode, flags := "cache", os.O_RDONLY
		if direct {
			mode, flags = "odirect", os.O_RDONLY|syscall.O_DIRECT
		}
		for _, g := range []int{1, 64} {
			b.Run(fmt.Sprintf("os/%s/g%d", mode, g), func(b *testing.B) {
				f, err := os.OpenFile(name, flags, 0)
				if err != nil {
					b.Skipf("open %s: %v", mode, err)
				}
				defer f.Close()
				warm(b, name)
				runReads(b, g, f.ReadAt)
			})
			for _, pc := range benchPorts() {
				b.Run(fmt.Sprintf("%s/%s/g%d", pc.name, mode, g), func(b *testing.B) {
					p, err := NewPort(pc.cfg)
					if err != nil {
						b.Skipf("%s: %v", pc.name, err)
					}
					defer p.Close()
					f, err := p.OpenFile(name, flags, 0)
					if err != nil {
						b.Skipf("open %s: %v", mode, err)
					}
					defer f.Close()
					warm(b, name)
					runReads(b, g, f.ReadAt)
				})
			}
		}
	}
}
