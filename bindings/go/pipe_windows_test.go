package ovl

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"
)

// Anonymous pipes (os.Pipe) cannot do overlapped I/O on Windows, so the
// tests' pipe is a named pipe with both ends opened FILE_FLAG_OVERLAPPED.
var (
	kernel32            = syscall.NewLazyDLL("kernel32.dll")
	procCreateNamedPipe = kernel32.NewProc("CreateNamedPipeW")
	pipeSeq             atomic.Uint64
)

const (
	pipeAccessInbound     = 0x1
	fileFlagFirstInstance = 0x80000
	pipeTypeByte          = 0x0
	pipeWait              = 0x0
	pipeRejectRemote      = 0x8
)

func newPipe(t *testing.T, p *Port) (r, w *File) {
	t.Helper()
	name := fmt.Sprintf(`\\.\pipe\ovl-go-test-%d-%d`, syscall.Getpid(), pipeSeq.Add(1))
	n16, _ := syscall.UTF16PtrFromString(name)
	h, _, e := procCreateNamedPipe.Call(uintptr(unsafe.Pointer(n16)),
		pipeAccessInbound|syscall.FILE_FLAG_OVERLAPPED|fileFlagFirstInstance,
		pipeTypeByte|pipeWait|pipeRejectRemote, 1, 64<<10, 64<<10, 0, 0)
	if syscall.Handle(h) == syscall.InvalidHandle {
		t.Fatalf("CreateNamedPipe: %v", e)
	}
	wh, err := syscall.CreateFile(n16, syscall.GENERIC_WRITE, 0, nil, syscall.OPEN_EXISTING,
		syscall.FILE_FLAG_OVERLAPPED, 0)
	if err != nil {
		syscall.CloseHandle(syscall.Handle(h))
		t.Fatalf("opening the pipe's client end: %v", err)
	}
	if r, err = p.NewFileFD(h, name+" (server)"); err != nil {
		t.Fatal(err)
	}
	if w, err = p.NewFileFD(uintptr(wh), name+" (client)"); err != nil {
		t.Fatal(err)
	}
	return r, w
}
