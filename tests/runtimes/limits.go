// limits prints, as one JSON line, what the Go runtime itself decided:
// its memory limit (debug.SetMemoryLimit(-1) reads it without changing
// it; math.MaxInt64 means none) and GOMAXPROCS, beside the variables it
// was given. berth's --runtime-limits tests assert on these figures.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
)

func main() {
	fmt.Printf("{\"go_memory_limit\":%d,\"go_gomaxprocs\":%d,\"env_gomemlimit\":%q,\"env_gomaxprocs\":%q}\n",
		debug.SetMemoryLimit(-1), runtime.GOMAXPROCS(0), os.Getenv("GOMEMLIMIT"), os.Getenv("GOMAXPROCS"))
}
