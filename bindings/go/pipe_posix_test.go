//go:build unix

package ovl

import (
	"os"
	"testing"
)

// newPipe makes an os.Pipe and adopts both ends into p.
func newPipe(t *testing.T, p *Port) (r, w *File) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r, err = p.NewFile(pr)
	if err != nil {
		t.Fatal(err)
	}
	w, err = p.NewFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	if !r.IsStream() || !w.IsStream() {
		t.Fatal("pipe ends not reported as streams")
	}
	return r, w
}
