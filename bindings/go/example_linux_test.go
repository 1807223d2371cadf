package ovl_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	ovl "github.com/ovl-io/ovl/bindings/go"
)

// The pipe examples use os.Pipe, whose anonymous pipes cannot do
// overlapped I/O on Windows.

// A read deadline on an idle pipe: the read is cancelled in the library
// and fails with os.ErrDeadlineExceeded.
func ExampleFile_SetReadDeadline() {
	port, err := ovl.NewPort(ovl.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer port.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	r, err := port.NewFile(pr)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	defer pw.Close()

	r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = r.Read(make([]byte, 16))
	fmt.Println(errors.Is(err, os.ErrDeadlineExceeded))
	// Output: true
}

// Cancelling a read through its context.
func ExampleFile_ReadContext() {
	port, err := ovl.NewPort(ovl.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer port.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	r, err := port.NewFile(pr)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	defer pw.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = r.ReadContext(ctx, make([]byte, 16))
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output: true
}
