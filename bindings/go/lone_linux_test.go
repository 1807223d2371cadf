package ovl

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"
)

// TestLoneReadOneEnter: on io_uring a lone blocking read that does not
// complete inside its submit (O_DIRECT) costs one io_uring_enter
// (ovl_submit_and_poll submits it and waits for it), as a pread is one
// system call; on a port with a completion thread too, whose thread the
// call relieves of delivery meanwhile (else that thread's own wait would
// be a second io_uring_enter per read).
func TestLoneReadOneEnter(t *testing.T) {
	for _, ct := range []bool{false, true} {
		t.Run(map[bool]string{false: "manual", true: "cthread"}[ct], func(t *testing.T) {
			loneReads(t, Config{Backend: BackendURing, CompletionThread: ct})
		})
	}
}

func loneReads(t *testing.T, cfg Config) {
	const reads = 200
	data := testData(64<<10, 5)
	name := tempFile(t, data)
	p := newTestPort(t, cfg)
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
