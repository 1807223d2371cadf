package ovl

import (
	"errors"
	"os"
	"testing"
)

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list open descriptors: %v", err)
	}
	return len(ents) - 1 // ReadDir's own descriptor on the directory
}

// TestPortCloseFreesDescriptors: a port gives back every descriptor it
// opened when it is closed (the library's, and the binding's: the queue's
// wake-up eventfd, the manual-mode duplicate of the port's handle), in
// every mode, on every backend, with one ring and with several.
func TestPortCloseFreesDescriptors(t *testing.T) {
	const cycles = 50
	cfgs := []Config{{}, {CompletionThread: true}, {Rings: 3}}
	for _, b := range allBackends {
		for _, cfg := range cfgs {
			cfg.Backend = b
			name := b.String()
			if cfg.CompletionThread {
				name += "-cthread"
			}
			if cfg.Rings != 0 {
				name += "-rings3"
			}
			t.Run(name, func(t *testing.T) {
				cycle := func() {
					p, err := NewPort(cfg)
					if errors.Is(err, EUNAVAIL) {
						t.Skipf("backend %v not available on this host: %v", b, err)
					}
					if err != nil {
						t.Fatalf("NewPort(%+v): %v", cfg, err)
					}
					if err := p.Close(); err != nil {
						t.Fatalf("Port.Close: %v", err)
					}
				}
				// One first: whatever Go opens once (its poller) is not
				// the port's.
				cycle()
				before := openFDs(t)
				for i := 0; i < cycles; i++ {
					cycle()
				}
				if after := openFDs(t); after != before {
					t.Fatalf("%d NewPort/Close cycles: %d open descriptors before, %d after", cycles, before, after)
				}
			})
		}
	}
}
