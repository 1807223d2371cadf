package ovl

/*
#include "bridge.h"
*/
import "C"

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// Errno is an ovl error code: one of the negative OVL_E* numbers of ovl.h,
// identical on every operating system. It supports errors.Is: ECLOSED is
// fs.ErrClosed, EACCES is fs.ErrPermission, ENOTSUP is
// errors.ErrUnsupported.
type Errno int32

// The ovl.h error codes.
const (
	EINVAL     = Errno(C.OVL_EINVAL)
	EBADF      = Errno(C.OVL_EBADF)
	ENOMEM     = Errno(C.OVL_ENOMEM)
	EQUEUEFULL = Errno(C.OVL_EQUEUEFULL)
	ECLOSED    = Errno(C.OVL_ECLOSED)
	ECANCELED  = Errno(C.OVL_ECANCELED)
	ENOENT     = Errno(C.OVL_ENOENT)
	EDEADLK    = Errno(C.OVL_EDEADLK)
	EUNAVAIL   = Errno(C.OVL_EUNAVAIL)
	ENOTSUP    = Errno(C.OVL_ENOTSUP)
	EIO        = Errno(C.OVL_EIO)
	EACCES     = Errno(C.OVL_EACCES)
	ENOSPC     = Errno(C.OVL_ENOSPC)
	EPIPE      = Errno(C.OVL_EPIPE)
	ECONNRESET = Errno(C.OVL_ECONNRESET)
	EAGAIN     = Errno(C.OVL_EAGAIN)
	EINTR      = Errno(C.OVL_EINTR)
	EFAULT     = Errno(C.OVL_EFAULT)
	ETOOBIG    = Errno(C.OVL_ETOOBIG)
	EISDIR     = Errno(C.OVL_EISDIR)
	EFBIG      = Errno(C.OVL_EFBIG)
	EMODE      = Errno(C.OVL_EMODE)
	EOS        = Errno(C.OVL_EOS)
	// EFORKED: a port used in a child process after fork(); the port
	// belongs to the parent.
	EFORKED = Errno(C.OVL_EFORKED)
	// Connection and timeout codes.
	ETIMEDOUT     = Errno(C.OVL_ETIMEDOUT)
	ECONNREFUSED  = Errno(C.OVL_ECONNREFUSED)
	EADDRINUSE    = Errno(C.OVL_EADDRINUSE)
	ENETUNREACH   = Errno(C.OVL_ENETUNREACH)
	EHOSTUNREACH  = Errno(C.OVL_EHOSTUNREACH)
	ECONNABORTED  = Errno(C.OVL_ECONNABORTED)
	ENOTCONN      = Errno(C.OVL_ENOTCONN)
	EADDRNOTAVAIL = Errno(C.OVL_EADDRNOTAVAIL)
	// Local endpoints: nothing listens on that name.
	ENOTFOUND = Errno(C.OVL_ENOTFOUND)
)

// Error returns the library's message for the code (ovl_strerror).
func (e Errno) Error() string { return C.GoString(C.ovl_strerror(C.int32_t(e))) }

// Name returns the code's name, e.g. "OVL_EINVAL" (ovl_error_name).
func (e Errno) Name() string { return C.GoString(C.ovl_error_name(C.int32_t(e))) }

// Is reports whether the code stands for one of the standard errors.
func (e Errno) Is(target error) bool {
	switch target {
	case fs.ErrClosed:
		return e == ECLOSED
	case fs.ErrPermission:
		return e == EACCES
	case errors.ErrUnsupported:
		return e == ENOTSUP
	}
	return false
}

// OpError is the error of a failed operation. Code is the ovl code (0 if
// the failure came from the binding before reaching the library), OSErr the
// raw errno / GetLastError() the library reported behind it (0 if none), and
// Err the cause the binding knows: fs.ErrClosed, os.ErrDeadlineExceeded,
// the context's error, or nil. errors.Is and errors.As see all three.
type OpError struct {
	Op     string // "read", "write", "sync", "open", "port"
	Path   string // the file's name, if any
	Offset int64  // the offset, -1 for stream I/O or none
	Code   Errno
	OSErr  syscall.Errno
	Err    error
}

func (e *OpError) Error() string {
	s := "ovl: " + e.Op
	if e.Path != "" {
		s += " " + e.Path
	}
	if e.Offset >= 0 {
		s += " at " + strconv.FormatInt(e.Offset, 10)
	}
	s += ": "
	switch {
	case e.Err != nil:
		s += e.Err.Error()
	case e.Code != 0:
		s += e.Code.Error()
	default:
		s += "unknown error"
	}
	if e.Code != 0 {
		s += " (" + e.Code.Name()
		if e.OSErr != 0 {
			s += ", os error " + strconv.Itoa(int(e.OSErr)) + ": " + e.OSErr.Error()
		}
		s += ")"
	}
	return s
}

// Unwrap gives the cause, the ovl code and the raw OS error, those present.
func (e *OpError) Unwrap() []error {
	errs := make([]error, 0, 3)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Code != 0 {
		errs = append(errs, e.Code)
	}
	if e.OSErr != 0 {
		errs = append(errs, e.OSErr)
	}
	return errs
}

// Timeout reports whether the operation failed because a deadline passed
// (os.ErrDeadlineExceeded, or a context's deadline).
func (e *OpError) Timeout() bool {
	return errors.Is(e.Err, os.ErrDeadlineExceeded) || errors.Is(e.Err, context.DeadlineExceeded)
}

// errClosed is the cause given for I/O on a closed File or Port.
var errClosed = fs.ErrClosed
