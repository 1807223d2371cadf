package ovl

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestErrno(t *testing.T) {
	cases := []struct {
		e    Errno
		num  int32
		name string
		msg  string
	}{
		{EINVAL, -1, "OVL_EINVAL", "invalid argument"},
		{EBADF, -2, "OVL_EBADF", "bad file descriptor or handle"},
		{EQUEUEFULL, -4, "OVL_EQUEUEFULL", ""},
		{ECLOSED, -5, "OVL_ECLOSED", "port is closed"},
		{ECANCELED, -6, "OVL_ECANCELED", "operation cancelled"},
		{EUNAVAIL, -9, "OVL_EUNAVAIL", ""},
		{EOS, -23, "OVL_EOS", ""},
		{EFORKED, -24, "OVL_EFORKED", ""},
	}
	for _, c := range cases {
		if int32(c.e) != c.num {
			t.Errorf("%s = %d, want %d", c.name, int32(c.e), c.num)
		}
		if c.e.Name() != c.name {
			t.Errorf("Errno(%d).Name() = %q, want %q", c.num, c.e.Name(), c.name)
		}
		if c.msg != "" && c.e.Error() != c.msg {
			t.Errorf("%s.Error() = %q, want %q", c.name, c.e.Error(), c.msg)
		}
	}
	if !errors.Is(ECLOSED, fs.ErrClosed) || errors.Is(EINVAL, fs.ErrClosed) {
		t.Error("ECLOSED must match fs.ErrClosed, and only it")
	}
	if !errors.Is(EACCES, fs.ErrPermission) || !errors.Is(ENOTSUP, errors.ErrUnsupported) {
		t.Error("EACCES/ENOTSUP do not match their standard errors")
	}
	if Errno(-1000).Name() != "OVL_E?" {
		t.Errorf("unknown code name %q", Errno(-1000).Name())
	}
}

func TestOpError(t *testing.T) {
	e := &OpError{Op: "read", Path: "/x", Offset: 7, Code: EBADF, OSErr: syscall.EBADF}
	for _, target := range []error{EBADF, syscall.EBADF} {
		if !errors.Is(e, target) {
			t.Errorf("%v does not match %v", e, target)
		}
	}
	if errors.Is(e, fs.ErrClosed) || e.Timeout() {
		t.Errorf("%v matches what it is not", e)
	}
	for _, want := range []string{"read", "/x", "at 7", "OVL_EBADF", "os error " + strconv.Itoa(int(syscall.EBADF))} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("%q lacks %q", e.Error(), want)
		}
	}
	d := &OpError{Op: "read", Offset: -1, Code: ECANCELED, Err: os.ErrDeadlineExceeded}
	if !errors.Is(d, os.ErrDeadlineExceeded) || !errors.Is(d, ECANCELED) || !d.Timeout() {
		t.Errorf("%v: deadline error does not match", d)
	}
	c := &OpError{Op: "write", Offset: -1, Code: ECANCELED, Err: context.Canceled}
	if !errors.Is(c, context.Canceled) || c.Timeout() {
		t.Errorf("%v: cancel error does not match", c)
	}
	var errno Errno
	if !errors.As(c, &errno) || errno != ECANCELED {
		t.Errorf("errors.As(%v, *Errno) = %v", c, errno)
	}
}

func TestVersionAndBackends(t *testing.T) {
	if Version() != HeaderVersion() {
		t.Errorf("loaded library %s, binding built against ovl.h %s", Version(), HeaderVersion())
	}
	auto, reason := AutoBackend()
	if reason == "" || (auto != BackendURing && auto != BackendThreads && auto != BackendIOCP) {
		t.Errorf("AutoBackend() = %v, %q", auto, reason)
	}
	if !Available(auto) {
		t.Errorf("the auto backend %v is not available", auto)
	}
}
