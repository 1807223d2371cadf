package ovl_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"

	ovl "github.com/ovl-io/ovl/bindings/go"
)

// Concurrent ReadAt from many goroutines through one port: each goroutine
// parks on a channel while its read is in flight.
func Example() {
	dir, _ := os.MkdirTemp("", "ovl-example")
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "data")
	data := make([]byte, 64*1024)
	for i := range data {
		data[i] = byte(i / 1024)
	}
	if err := os.WriteFile(name, data, 0o600); err != nil {
		log.Fatal(err)
	}

	port, err := ovl.NewPort(ovl.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer port.Close()
	f, err := port.Open(name)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	var wg sync.WaitGroup
	first := make([]byte, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			buf := make([]byte, 1024)
			if _, err := f.ReadAt(buf, int64(i)*1024); err != nil {
				log.Fatal(err)
			}
			first[i] = buf[0]
		}(i)
	}
	wg.Wait()
	fmt.Println(first[0], first[1], first[63])
	// Output: 0 1 63
}

// Many reads in flight from one goroutine, their results on one channel.
func ExampleFile_ReadAtAsync() {
	dir, _ := os.MkdirTemp("", "ovl-example")
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "data")
	os.WriteFile(name, []byte("abcdefghijklmnopqrstuvwxyz"), 0o600)

	port, err := ovl.NewPort(ovl.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer port.Close()
	f, err := port.Open(name)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	done := make(chan ovl.Result, 4) // room for every read in flight
	for i := 0; i < 4; i++ {
		f.ReadAtAsync(make([]byte, 2), int64(i*5), done)
	}
	got := make([]string, 4)
	for i := 0; i < 4; i++ {
		r := <-done
		if r.Err != nil {
			log.Fatal(r.Err)
		}
		got[r.Off/5] = string(r.Buf[:r.N])
	}
	fmt.Println(got)
	// Output: [ab fg kl pq]
}

// Write and read back through the io.Writer / io.Reader forms of a File.
func ExamplePort_OpenFile() {
	dir, _ := os.MkdirTemp("", "ovl-example")
	defer os.RemoveAll(dir)

	port, err := ovl.NewPort(ovl.Config{QueueDepth: 16})
	if err != nil {
		log.Fatal(err)
	}
	defer port.Close()
	f, err := port.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "hello from %s\n", "ovl")
	f.Sync()
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	fmt.Printf("%q\n", buf[:n])
	// Output: "hello from ovl\n"
}
