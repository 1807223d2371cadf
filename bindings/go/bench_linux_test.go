package ovl

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
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
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	_, err = f.Write(testData(benchSize, 9))
	if err == nil {
		// Written back before the O_DIRECT runs: an O_DIRECT read of a
		// range with dirty pages cannot be issued without blocking (the
		// kernel writes them back first), so io_uring would hand the
		// first reads of a fresh file to its io-wq workers, and pread
		// would wait for the writeback; neither is what an O_DIRECT
		// workload on settled data measures.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
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

// threadInfo is what /proc says of one thread of this process.
type threadInfo struct {
	iowq bool  // one of io_uring's kernel workers (io-wq, "iou-wrk-PID")
	ran  int64 // CPU time so far, ns (schedstat); -1 not read
}

// osThreads returns the threads of this process now, by thread id, with
// their CPU time if withTime. io_uring runs an operation on an io-wq worker
// when it cannot issue it without blocking (an O_DIRECT read of a range
// with dirty pages, say); the other threads are Go's (Ms) and, with a
// completion thread, the library's. known saves reading a known thread's
// name again.
func osThreads(known map[string]threadInfo, withTime bool) map[string]threadInfo {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	now := make(map[string]threadInfo, len(tasks))
	for _, t := range tasks {
		id := t.Name()
		ti, ok := known[id]
		if !ok {
			comm, _ := os.ReadFile("/proc/self/task/" + id + "/comm")
			ti.iowq = bytes.HasPrefix(comm, []byte("iou-wrk"))
		}
		ti.ran = -1
		if withTime {
			if st, err := os.ReadFile("/proc/self/task/" + id + "/schedstat"); err == nil {
				if f := bytes.Fields(st); len(f) > 0 {
					ti.ran, _ = strconv.ParseInt(string(f[0]), 10, 64)
				}
			}
		}
		now[id] = ti
	}
	return now
}

// threadStats: threads is the most threads the process had at once during
// the run, iowq the most io-wq workers at once; ran and iowqRan count the
// threads (all, and io-wq workers) that got CPU time during the run. The
// peaks count every thread of the process, idle ones too (Go keeps the Ms
// an earlier sub-benchmark made, blocked in pread, say); the ran counts
// see only the threads this run used, so they stay meaningful when several
// sub-benchmarks share a process.
type threadStats struct{ threads, iowq, ran, iowqRan int }

// threadSampler lists the process's threads every 20 ms (their CPU time
// only at the start and the end, to keep its own cost small) until stop is
// called. With OVL_BENCH_THREADS=0 in the environment it does nothing (the
// thread metrics read 0): its /proc reads and timer wake-ups would
// otherwise be counted with the reads' own system calls when those are
// counted (perf stat -e 'syscalls:sys_enter_*').
func threadSampler() (stop func() threadStats) {
	var st threadStats
	if os.Getenv("OVL_BENCH_THREADS") == "0" {
		return func() threadStats { return st }
	}
	start := osThreads(nil, true)
	seen := map[string]threadInfo{}
	sample := func(withTime bool) {
		now := osThreads(seen, withTime)
		wq := 0
		for id, ti := range now {
			if ti.iowq {
				wq++
			}
			seen[id] = ti
		}
		st.threads = max(st.threads, len(now))
		st.iowq = max(st.iowq, wq)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				sample(true)
				return
			case <-t.C:
				sample(false)
			}
		}
	}()
	return func() threadStats {
		close(done)
		<-finished
		for id, ti := range seen {
			// A thread gone by the end (ran -1) or new since the start
			// ran during the run; one there throughout, if its CPU time
			// grew.
			before, old := start[id]
			if ti.ran < 0 || !old || ti.ran > before.ran {
				st.ran++
				if ti.iowq {
					st.iowqRan++
				}
			}
		}
		return st
	}
}

// cpuTime returns the CPU time the process has used (user and system, all
// threads). On a shared machine the CPU time per read is steadier than
// ns/op, which other processes' load inflates; when both CPUs are busy
// reading, the two tell the same story.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runReads does b.N random block reads spread over g goroutines.
func runReads(b *testing.B, g int, readAt func([]byte, int64) (int, error)) {
	blocks := int64(benchSize / benchBlock)
	var next atomic.Int64
	b.SetBytes(benchBlock)
	stop := threadSampler()
	cpu0 := cpuTime()
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
	cpu := cpuTime() - cpu0
	st := stop()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(st.threads), "threads")
	b.ReportMetric(float64(st.iowq), "io-wq")
	b.ReportMetric(float64(st.ran), "threads-ran")
	b.ReportMetric(float64(st.iowqRan), "io-wq-ran")
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
	// reads the kernel cannot issue without blocking (O_DIRECT on a range
	// with dirty pages: none once benchFile has synced the file, many
	// when it had not, 3 instead of 4-18 with this cap).
	ps = append(ps, benchPort{"ovl-uring-iowq1", Config{Backend: BackendURing, QueueDepth: 64, Threads: 1}})
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
					s0 := p.Stats()
					runReads(b, g, f.ReadAt)
					s1 := p.Stats()
					if n := s1.Syscalls - s0.Syscalls; n > 0 {
						// How well submits batch: operations per
						// io_uring_enter (the uring backend's count).
						b.ReportMetric(float64(s1.Submitted-s0.Submitted)/float64(n), "ops/enter")
					}
				})
			}
		}
	}
}
