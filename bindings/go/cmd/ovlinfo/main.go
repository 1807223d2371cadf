// Command ovlinfo prints the loaded ovl library's version, what the auto
// backend picks on this host and why, and which backends work here.
//
//	ovlinfo            # human-readable report
//	ovlinfo -backends  # just the working backends, one per line (scripts)
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	ovl "github.com/ovl-io/ovl/bindings/go"
)

func main() {
	only := flag.Bool("backends", false, "print only the backends that work on this host")
	flag.Parse()
	candidates := []ovl.Backend{ovl.BackendURing, ovl.BackendThreads}
	if runtime.GOOS == "windows" {
		candidates = []ovl.Backend{ovl.BackendIOCP}
	}
	if *only {
		for _, b := range candidates {
			if ovl.Available(b) {
				fmt.Println(b)
			}
		}
		return
	}
	fmt.Printf("library %s (binding built against ovl.h %s)\n", ovl.Version(), ovl.HeaderVersion())
	auto, reason := ovl.AutoBackend()
	fmt.Printf("auto backend: %v (%s)\n", auto, reason)
	if env := os.Getenv("OVL_BACKEND"); env != "" {
		fmt.Printf("OVL_BACKEND=%s overrides auto\n", env)
	}
	for _, b := range candidates {
		fmt.Printf("%-8s %v\n", b.String()+":", map[bool]string{true: "available", false: "unavailable"}[ovl.Available(b)])
	}
}
