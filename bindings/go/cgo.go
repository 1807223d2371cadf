package ovl

// This is the one file that holds the cgo flags. By default the package
// builds against the in-tree library: the header in ../../include and
// libovl.so (libovl.dylib, ovl.dll) in ../../build, as made by
//
//	cmake -S . -B build -DOVL_BUILD_TESTS=OFF && cmake --build build --target ovl
//
// with a run-time path on Linux, macOS and the BSDs so `go test` needs no
// LD_LIBRARY_PATH (DYLD_LIBRARY_PATH). With the build tag ovl_pkgconfig it
// uses an installed ovl through pkg-config.
// A library elsewhere (say a cross-built ovl.dll and its import library)
// can be added with CGO_LDFLAGS=-L<dir>; on Windows the DLL must sit beside
// the executable or on PATH.

/*
#cgo !ovl_pkgconfig CFLAGS: -I${SRCDIR}/../../include
#cgo linux,!ovl_pkgconfig LDFLAGS: -L${SRCDIR}/../../build -lovl -Wl,-rpath,${SRCDIR}/../../build
#cgo unix,!linux,!ovl_pkgconfig LDFLAGS: -L${SRCDIR}/../../build -lovl -Wl,-rpath,${SRCDIR}/../../build
#cgo windows,!ovl_pkgconfig LDFLAGS: -L${SRCDIR}/../../build -lovl
#cgo ovl_pkgconfig pkg-config: ovl
#cgo CFLAGS: -std=c11 -D_GNU_SOURCE -Wall
*/
import "C"
