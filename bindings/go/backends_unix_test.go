//go:build unix && !linux

package ovl

// allBackends are the explicit backends each I/O test runs on: the thread
// pool is the only one outside Linux and Windows.
var allBackends = []Backend{BackendThreads}
