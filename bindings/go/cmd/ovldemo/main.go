// Command ovldemo is the Go part of scripts/demo.sh: it reads a generated
// file with 4 KiB ReadAt calls from many goroutines at once through one
// ovl Port, checks every byte, shows a read deadline expiring on an idle
// pipe, and prints the library version, the backend and the throughput.
//
//	ovldemo [-size 32M] [-goroutines 64] [-block 4096]
//
// OVL_BACKEND=uring|threads picks the backend (auto by default). The file
// is written to the temporary directory and removed at the end.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ovl "github.com/ovl-io/ovl/bindings/go"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ovldemo:", err)
		os.Exit(1)
	}
}

// parseSize accepts a byte count with an optional K, M or G suffix.
func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func run() error {
	sizeFlag := flag.String("size", "32M", "size of the generated file (K, M, G suffixes)")
	gs := flag.Int("goroutines", 64, "goroutines reading concurrently")
	block := flag.Int("block", 4096, "bytes per ReadAt")
	flag.Parse()
	size, err := parseSize(*sizeFlag)
	if err != nil {
		return err
	}
	if *gs < 1 || *block < 1 {
		return errors.New("-goroutines and -block must be positive")
	}

	port, err := ovl.NewPort(ovl.Config{QueueDepth: *gs})
	if err != nil {
		return err
	}
	defer port.Close()
	fmt.Printf("ovl %s (Go binding built against ovl.h %s), backend %s\n",
		ovl.Version(), ovl.HeaderVersion(), port.Backend())

	// A file whose every byte is known: a multiplicative hash of its offset.
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(uint32(i) * 2654435761 >> 24)
	}
	dir, err := os.MkdirTemp("", "ovldemo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "data")
	if err := os.WriteFile(name, want, 0o600); err != nil {
		return err
	}

	f, err := port.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()

	// Concurrent ReadAt: the goroutines take the file's blocks in turn and
	// read each straight into its place in got.
	got := make([]byte, size)
	blocks := (size + *block - 1) / *block
	var next atomic.Int64
	errs := make(chan error, *gs)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *gs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1)) - 1
				if b >= blocks {
					return
				}
				off := b * *block
				end := min(off+*block, size)
				if n, err := f.ReadAt(got[off:end], int64(off)); err != nil || n != end-off {
					errs <- fmt.Errorf("ReadAt(%d): %d bytes, %v", off, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errors.New("the bytes read differ from the file's contents")
	}
	mib := float64(size) / (1 << 20)
	fmt.Printf("concurrent ReadAt: %d goroutines, %d reads of %d bytes, %.0f MiB verified in %v: %.1f MiB/s, %.0f reads/s\n",
		*gs, blocks, *block, mib, elapsed.Round(time.Millisecond), mib/elapsed.Seconds(),
		float64(blocks)/elapsed.Seconds())

	// A read deadline on a pipe nobody writes to: the read is cancelled in
	// the library (ovl_cancel) and fails with os.ErrDeadlineExceeded.
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pw.Close()
	r, err := port.NewFile(pr)
	if err != nil {
		pr.Close()
		return err
	}
	defer r.Close()
	const wait = 50 * time.Millisecond
	r.SetReadDeadline(time.Now().Add(wait))
	t0 := time.Now()
	n, err := r.Read(make([]byte, 16))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("read on an idle pipe past its deadline: %d bytes, %v (want os.ErrDeadlineExceeded)", n, err)
	}
	fmt.Printf("deadline on an idle pipe: read failed after %v with %q\n", time.Since(t0).Round(time.Millisecond), err)

	if st := port.Stats(); st.Inflight != 0 {
		return fmt.Errorf("%d operations still in flight", st.Inflight)
	}
	fmt.Println("OK")
	return nil
}
