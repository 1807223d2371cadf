package ovl

/*
#include "bridge.h"
*/
import "C"

import "strconv"

// Version returns the loaded library's version, "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.ovl_version_string()) }

// HeaderVersion returns the version of the ovl.h the binding was built
// against; a different Version means a mismatched library was loaded.
func HeaderVersion() string {
	return strconv.Itoa(C.OVL_VERSION_MAJOR) + "." + strconv.Itoa(C.OVL_VERSION_MINOR) + "." +
		strconv.Itoa(C.OVL_VERSION_PATCH)
}

// AutoBackend reports what BackendAuto resolves to on this host (before
// any OVL_BACKEND environment override) and why, e.g. "io_uring available".
func AutoBackend() (Backend, string) {
	var b C.uint32_t
	reason := C.GoString(C.ovl_backend_reason(&b))
	return Backend(b), reason
}

// Available reports whether this host can run backend b (it creates and
// closes a small port).
func Available(b Backend) bool {
	p, err := NewPort(Config{Backend: b, QueueDepth: 1})
	if err != nil {
		return false
	}
	p.Close()
	return true
}
