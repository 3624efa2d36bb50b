// SPDX-License-Identifier: MIT

// Go's channels, measured as bench/bench_sync.c measures libctx's: one
// producer goroutine sends 0, 1, ..., b.N-1 (int, 8 bytes), the benchmark
// goroutine receives them and checks the order; ns/op is ns per element,
// the goroutine's start included. Run with GOMAXPROCS=2 (bench/run.sh).
//
// Built offline as ../shared/peers/run.sh builds the peers (GOPATH mode):
//
//	cd bench/go && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
//	    go test -c -o OUT
//
// Chan{Buffered,Unbuffered} are plain sends and receives; the *Ctx
// variants do each one in a select with a live context's Done channel, the
// shape of a libctx channel operation (which always takes a context).
// ChanSelect2 receives with a select over two buffered channels and
// ctx.Done(), the producer sending even numbers to one and odd to the
// other (bench_sync's chan.select2).
package chanbench

import (
	"context"
	"testing"
)

const bufCap = 128

func produce(ch chan<- int, n int) {
	for i := 0; i < n; i++ {
		ch <- i
	}
}

func produceCtx(ch chan<- int, n int, done <-chan struct{}) {
	for i := 0; i < n; i++ {
		select {
		case ch <- i:
		case <-done:
			return
		}
	}
}

func benchPair(b *testing.B, capacity int) {
	ch := make(chan int, capacity)
	b.ReportAllocs()
	b.ResetTimer()
	go produce(ch, b.N)
	for i := 0; i < b.N; i++ {
		if v := <-ch; v != i {
			b.Fatalf("received %d, want %d", v, i)
		}
	}
}

func benchPairCtx(b *testing.B, capacity int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := ctx.Done()
	ch := make(chan int, capacity)
	b.ReportAllocs()
	b.ResetTimer()
	go produceCtx(ch, b.N, done)
	for i := 0; i < b.N; i++ {
		select {
		case v := <-ch:
			if v != i {
				b.Fatalf("received %d, want %d", v, i)
			}
		case <-done:
			b.Fatal("context done")
		}
	}
}

func BenchmarkChanBuffered(b *testing.B)      { benchPair(b, bufCap) }
func BenchmarkChanUnbuffered(b *testing.B)    { benchPair(b, 0) }
func BenchmarkChanBufferedCtx(b *testing.B)   { benchPairCtx(b, bufCap) }
func BenchmarkChanUnbufferedCtx(b *testing.B) { benchPairCtx(b, 0) }

func BenchmarkChanSelect2(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := ctx.Done()
	even := make(chan int, bufCap)
	odd := make(chan int, bufCap)
	b.ReportAllocs()
	b.ResetTimer()
	go func(n int) {
		for i := 0; i < n; i++ {
			if i&1 == 0 {
				even <- i
			} else {
				odd <- i
			}
		}
	}(b.N)
	next := [2]int{0, 1}
	for i := 0; i < b.N; i++ {
		var v, k int
		select {
		case v = <-even:
			k = 0
		case v = <-odd:
			k = 1
		case <-done:
			b.Fatal("context done")
		}
		if v != next[k] {
			b.Fatalf("received %d, want %d", v, next[k])
		}
		next[k] += 2
	}
}
