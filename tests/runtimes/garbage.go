// garbage keeps a live set of LIVE_MIB (default 150) MiB and makes
// GARBAGE_MIB (default 3000) MiB of short-lived garbage beside it, then
// prints "done". Under a container memory limit with no GOMEMLIMIT, Go's
// GC lets the heap grow to twice the live set (GOGC=100) and the kernel
// OOM-kills it before a collection is tried; with GOMEMLIMIT below the
// limit the GC collects in time (docs/benchmarks.md, issue 25).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
)

func mib(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

var sink []byte

// The live set, global so that the compiler cannot find it dead early.
var live [][]byte

func main() {
	live = make([][]byte, 0, 1024)
	for i := 0; i < mib("LIVE_MIB", 150); i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(i + j)
		}
		live = append(live, b)
	}
	// The app's steady state: the collector has seen the whole live set
	// once, so its next goal is GOGC's twice that (300 MiB for 150), or
	// GOMEMLIMIT if lower. Without this, where the last collection of the
	// start-up falls decides the goal, run by run.
	runtime.GC()
	fmt.Println("live set allocated")
	for i := 0; i < mib("GARBAGE_MIB", 3000); i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i)
		}
		sink = b
	}
	fmt.Println("done", len(live))
}
