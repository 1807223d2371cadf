package ovl

// allBackends are the explicit backends each I/O test runs on; a backend
// the host lacks (EUNAVAIL) is skipped.
var allBackends = []Backend{BackendURing, BackendThreads}
