package ovl

// allBackends are the explicit backends each I/O test runs on.
var allBackends = []Backend{BackendIOCP}
