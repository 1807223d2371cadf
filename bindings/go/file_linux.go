package ovl

/*
#include "bridge.h"
*/
import "C"

// registerFD registers a regular file's descriptor with each ring
// (ovl_register_fd: io_uring's fixed files, no per-operation file lookup
// and reference count in the kernel). A number still registered belongs to a File
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
