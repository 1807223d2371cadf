//go:build unix && !linux

package ovl

// Registered descriptors on macOS and the BSDs: none (file_posix.go has
// the descriptor helpers every POSIX system shares).

// registerFD: registered descriptors are io_uring's fixed files, and the
// threads backend (the only one here) would only record the number, so a
// File uses its descriptor as it is.
func registerFD(p *Port, fd uintptr) bool { return false }

func unregisterFD(p *Port, fd uintptr) {}
