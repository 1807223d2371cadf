//go:build unix

package ovl

// The descriptor helpers every POSIX system shares (Linux, macOS, the
// BSDs); registered descriptors are per OS (file_linux.go, file_unix.go).

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
	// Not retried on EINTR, as the os package does not: a retry could close
	// a descriptor another goroutine has just been given.
	return syscall.Close(int(fd))
}

func associate(p *Port, fd uintptr) Errno {
	for _, r := range p.rings {
		if rc := C.ovl_associate(r.c, C.ovl_fd(fd)); rc != 0 {
			return Errno(rc)
		}
	}
	return 0
}
