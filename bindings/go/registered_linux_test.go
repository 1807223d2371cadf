package ovl

import (
	"bytes"
	"os"
	"syscall"
	"testing"
)

// TestRegisteredFDReused: a File's descriptor is registered with the port's
// rings; if that File is never closed and its descriptor is closed and the
// number reused for another file (as when an unclosed File's *os.File is
// finalized), a File made for the new one reads the new file, not the old
// one the ring still held. A closed File's number is free for the next.
func TestRegisteredFDReused(t *testing.T) {
	dataA, dataB := testData(8192, 21), testData(8192, 22)
	nameA, nameB := tempFile(t, dataA), tempFile(t, dataB)
	forEachBackend(t, Config{QueueDepth: 8}, func(t *testing.T, p *Port) {
		fdA, err := syscall.Open(nameA, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fa, err := p.NewFileFD(uintptr(fdA), nameA)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		if _, err := fa.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, dataA[:4096]) {
			t.Fatalf("A: ReadAt = %v (or wrong bytes)", err)
		}
		// fa is abandoned: its number now names file B.
		fb0, err := os.Open(nameB)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Dup3(int(fb0.Fd()), fdA, syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		fb0.Close()
		fb, err := p.NewFileFD(uintptr(fdA), nameB)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fb.ReadAt(buf, 4096); err != nil || !bytes.Equal(buf, dataB[4096:]) {
			t.Fatalf("B under A's number: ReadAt = %v, read A's bytes: %v", err, bytes.Equal(buf, dataA[4096:]))
		}
		if err := fb.Close(); err != nil {
			t.Fatal(err)
		}
		// Closed properly, the number goes to the next file: A again.
		fdA2, err := syscall.Open(nameA, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fa2, err := p.NewFileFD(uintptr(fdA2), nameA)
		if err != nil {
			t.Fatal(err)
		}
		defer fa2.Close()
		if _, err := fa2.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, dataA[:4096]) {
			t.Fatalf("A again: ReadAt = %v (or wrong bytes)", err)
		}
	})
}
