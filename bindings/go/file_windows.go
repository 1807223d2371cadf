package ovl

/*
#include "bridge.h"
*/
import "C"

import (
	"os"
	"syscall"
)

// openFile opens with CreateFile and FILE_FLAG_OVERLAPPED, which overlapped
// I/O through a completion port requires (os.OpenFile does not set it).
func openFile(name string, flag int, perm os.FileMode) (uintptr, *os.File, error) {
	path, err := syscall.UTF16PtrFromString(name)
	if err != nil {
		return 0, nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	var access uint32
	switch flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR) {
	case os.O_RDONLY:
		access = syscall.GENERIC_READ
	case os.O_WRONLY:
		access = syscall.GENERIC_WRITE
	case os.O_RDWR:
		access = syscall.GENERIC_READ | syscall.GENERIC_WRITE
	}
	if flag&os.O_APPEND != 0 {
		access &^= syscall.GENERIC_WRITE
		access |= syscall.FILE_APPEND_DATA
	}
	var mode uint32
	switch {
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		mode = syscall.CREATE_NEW
	case flag&(os.O_CREATE|os.O_TRUNC) == os.O_CREATE|os.O_TRUNC:
		mode = syscall.CREATE_ALWAYS
	case flag&os.O_CREATE == os.O_CREATE:
		mode = syscall.OPEN_ALWAYS
	case flag&os.O_TRUNC == os.O_TRUNC:
		mode = syscall.TRUNCATE_EXISTING
	default:
		mode = syscall.OPEN_EXISTING
	}
	attrs := uint32(syscall.FILE_ATTRIBUTE_NORMAL | syscall.FILE_FLAG_OVERLAPPED)
	if perm&0o200 == 0 && flag&os.O_CREATE != 0 {
		attrs |= syscall.FILE_ATTRIBUTE_READONLY
	}
	share := uint32(syscall.FILE_SHARE_READ | syscall.FILE_SHARE_WRITE | syscall.FILE_SHARE_DELETE)
	h, err := syscall.CreateFile(path, access, share, nil, mode, attrs, 0)
	if err != nil {
		return 0, nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return uintptr(h), nil, nil
}

// fdKind reports whether the handle is a stream (pipe, socket, console).
func fdKind(fd uintptr) (stream bool, err error) {
	t, err := syscall.GetFileType(syscall.Handle(fd))
	if err != nil {
		return false, err
	}
	return t != syscall.FILE_TYPE_DISK, nil
}

func fileSize(fd uintptr) (int64, error) {
	var info syscall.ByHandleFileInformation
	if err := syscall.GetFileInformationByHandle(syscall.Handle(fd), &info); err != nil {
		return 0, err
	}
	return int64(info.FileSizeHigh)<<32 | int64(info.FileSizeLow), nil
}

func closeFD(fd uintptr) error { return syscall.CloseHandle(syscall.Handle(fd)) }

// registerFD: fixed files are io_uring's; on IOCP the library would only
// record the handle.
func registerFD(p *Port, fd uintptr) bool { return false }

func unregisterFD(p *Port, fd uintptr) {}

func associate(p *Port, fd uintptr) Errno {
	for _, r := range p.rings {
		if rc := C.ovl_associate(r.c, C.ovl_fd(fd)); rc != 0 {
			return Errno(rc)
		}
	}
	return 0
}
