package ovl

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadWriteAt checks the argument handling of ReadAt, WriteAt and
// their asynchronous forms against os.File on the same file: for any
// offset (negative, huge, overflowing with the length) and any length the
// two agree on the byte count, the bytes and whether (and as io.EOF or
// not) they fail; an arbitrary descriptor number that is not open fails
// with EBADF; and nothing is left in flight.
func FuzzReadWriteAt(f *testing.F) {
	f.Add(int64(0), uint16(10), false, uint8(0), []byte("hello"))
	f.Add(int64(-1), uint16(1), true, uint8(0), []byte("x"))
	f.Add(int64(4090), uint16(100), false, uint8(1), []byte{})
	f.Add(int64(1<<62), uint16(3), false, uint8(0), []byte("abc"))
	f.Add(int64(1<<63-2), uint16(500), false, uint8(0), []byte{})
	f.Add(int64(123), uint16(0), true, uint8(2), []byte("zz"))

	p, err := NewPort(Config{QueueDepth: 4})
	if err != nil {
		f.Fatal(err)
	}
	dir := testDir(f)
	init := testData(4096, 7)
	oname, rname := filepath.Join(dir, "ovl"), filepath.Join(dir, "ref")
	for _, n := range []string{oname, rname} {
		if err := os.WriteFile(n, init, 0o600); err != nil {
			f.Fatal(err)
		}
	}
	of, err := p.OpenFile(oname, os.O_RDWR, 0)
	if err != nil {
		f.Fatal(err)
	}
	ref, err := os.OpenFile(rname, os.O_RDWR, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		of.Close()
		ref.Close()
		if err := p.Close(); err != nil {
			f.Error(err)
		}
		if st := p.Stats(); st.SlotsInUse != 0 || st.Inflight != 0 {
			f.Errorf("left in flight: %+v", st)
		}
	})

	f.Fuzz(func(t *testing.T, off int64, n uint16, write bool, mode uint8, data []byte) {
		if write {
			// Keep writes near the file (sparse files of terabytes are
			// not what this checks); negative offsets stay negative.
			if off >= 0 {
				off %= 1 << 16
			}
			buf := bytes.Repeat(append(data, 1), 1+int(n)/(len(data)+1))[:n]
			var got int
			var gerr error
			if mode%2 == 0 {
				got, gerr = of.WriteAt(buf, off)
			} else {
				r := <-of.WriteAtAsync(buf, off, nil)
				got, gerr = r.N, r.Err
				if gerr == nil && got < len(buf) && got > 0 {
					// A short asynchronous write is reported as such;
					// finish it so the files stay comparable.
					var m int
					m, gerr = of.WriteAt(buf[got:], off+int64(got))
					got += m
				}
			}
			want, werr := ref.WriteAt(buf, off)
			if got != want || (gerr == nil) != (werr == nil) {
				t.Fatalf("WriteAt(%d bytes at %d): ovl %d, %v; os %d, %v", n, off, got, gerr, want, werr)
			}
			if gerr != nil && off < 0 && !errors.Is(gerr, EINVAL) {
				t.Fatalf("WriteAt at %d: %v, want EINVAL", off, gerr)
			}
			a, _ := os.ReadFile(oname)
			b, _ := os.ReadFile(rname)
			if !bytes.Equal(a, b) {
				t.Fatalf("after WriteAt(%d bytes at %d) the files differ", n, off)
			}
			return
		}
		gb, wb := make([]byte, n), make([]byte, n)
		var got int
		var gerr error
		switch mode % 3 {
		case 0:
			got, gerr = of.ReadAt(gb, off)
		case 1:
			r := <-of.ReadAtAsync(gb, off, nil)
			got, gerr = r.N, r.Err
			if gerr == nil && got < len(gb) {
				// One operation: a short count at the end of the file is
				// what ReadAt turns into io.EOF.
				var m int
				m, gerr = of.ReadAt(gb[got:], off+int64(got))
				got += m
			}
		case 2:
			// A descriptor number that is not open.
			bad := &File{port: p, fd: uintptr(1<<20 + int(n)), name: "bad", closing: make(chan struct{})}
			_, err := bad.ReadAt(gb, max(off, 0)%(1<<40))
			if n > 0 && !errors.Is(err, EBADF) {
				t.Fatalf("ReadAt on a descriptor that is not open: %v, want EBADF", err)
			}
			return
		}
		want, werr := ref.ReadAt(wb, off)
		if got != want || !bytes.Equal(gb[:got], wb[:want]) {
			t.Fatalf("ReadAt(%d bytes at %d): ovl %d, %v; os %d, %v", n, off, got, gerr, want, werr)
		}
		if (gerr == nil) != (werr == nil) || (gerr == io.EOF) != (werr == io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d): ovl error %v, os error %v", n, off, gerr, werr)
		}
	})
}
