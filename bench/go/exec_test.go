// SPDX-License-Identifier: MIT

// Go's subprocesses, measured as bench/bench_os.c measures libctx's:
// ns/op is one exec.Command("/bin/true").Run(), spawn and wait, and the
// same bound to a context with a deadline (exec.CommandContext, which
// watches the context while waiting). Run with GOMAXPROCS=2.
package chanbench

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

func BenchmarkExecTrue(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExecTrueContext(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for i := 0; i < b.N; i++ {
		if err := exec.CommandContext(ctx, "/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
