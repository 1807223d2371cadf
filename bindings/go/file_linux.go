package ovl

/*
#include "bridge.h"
*/
import "C"

import (
	"os"
	"syscall"
)

// openFile opens with os.OpenFile (O_CLOEXEC, EINTR handled, *PathError);
// the *os.File stays the owner of the descriptor. Regular files are not
// put in the poller, so their descriptor is blocking already.
func openFile(name string, flag int, perm os.FileMode) (uintptr, *os.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return 0, nil, err
	}
	return f.Fd(), f, nil
}

// fdKind reports whether fd is a stream (pipe, socket, character device).
func fdKind(fd uintptr) (stream bool, err error) {
	if fd > 1<<31-1 {
		return false, syscall.EBADF
	}
	var st syscall.Stat_t
	for {
		err = syscall.Fstat(int(fd), &st)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return false, err
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR:
		return true, nil
	}
	return false, nil
}

func fileSize(fd uintptr) (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(fd), &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

func closeFD(fd uintptr) error {
	// Not retried on EINTR: on Linux the descriptor is gone either way.
	return syscall.Close(int(fd))
}

// registerFD registers a regular file's descriptor with each ring
// (ovl_register_fd: io_uring's fixed files, no per-operation file lookup
// and reference count in the kernel; 5-8% more page-cache reads per second
// by the core's measure). A number still registered belongs to a File
// that was never closed (its *os.File's finalizer closed the descriptor):
// it is registered again, so that the ring uses the file open now. It
// reports whether any ring took it; one that could not (a full table:
// ENOSPC) simply uses the descriptor as it is.
func registerFD(p *Port, fd uintptr) bool {
	ok := false
	for _, r := range p.rings {
		rc := Errno(C.ovl_register_fd(r.c, C.ovl_fd(fd)))
		if rc == EINVAL {
			C.ovl_unregister_fd(r.c, C.ovl_fd(fd))
			rc = Errno(C.ovl_register_fd(r.c, C.ovl_fd(fd)))
		}
		ok = ok || rc == 0
	}
	return ok
}

// unregisterFD undoes registerFD (File.Close, before closing fd). Errors
// mean there is nothing to undo: the port is closed (its rings dropped
// their references), or this ring had not taken it.
func unregisterFD(p *Port, fd uintptr) {
	for _, r := range p.rings {
		C.ovl_unregister_fd(r.c, C.ovl_fd(fd))
	}
}

func associate(p *Port, fd uintptr) Errno {
	for _, r := range p.rings {
		if rc := C.ovl_associate(r.c, C.ovl_fd(fd)); rc != 0 {
			return Errno(rc)
		}
	}
	return 0
}
