// SPDX-License-Identifier: MIT

// A minimal net/http server doing what examples/httpd does, for
// bench/bench_httpd.sh: /work is FNV-1a over the same 16 KiB under a
// 2 s per-request deadline (checked every 4 KiB), /stream is Server-Sent
// Events that end with a closing event when the server shuts down, and
// SIGTERM runs http.Server.Shutdown (no lame duck, as the benchmark runs
// libctx's server). Standard library only: builds offline with
// GO111MODULE=off.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var workData [64 * 1024]byte

// FNV-1a over kib KiB of workData (wrapping), in 4 KiB chunks with a
// look at the deadline before each: the same loop as examples/httpd.
func work(ctx context.Context, kib int) (uint32, error) {
	h := uint32(2166136261)
	for off := 0; off < kib*1024; off += 4096 {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		start := off % len(workData)
		for _, b := range workData[start : start+4096] {
			h = (h ^ uint32(b)) * 16777619
		}
	}
	return h, nil
}

func main() {
	port := flag.Int("port", 0, "port (0: any free one)")
	portFile := flag.String("port-file", "", "write the port here")
	kib := flag.Int("work-kib", 16, "KiB hashed per /work request")
	flag.Parse()
	for i := range workData {
		workData[i] = byte(i*131 + 7)
	}
	draining := make(chan struct{})

	mux := http.NewServeMux()
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		h, err := work(ctx, *kib)
		if err != nil {
			http.Error(w, "deadline exceeded", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "ok %08x\n", h)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		f := w.(http.Flusher)
		w.Header().Set("Content-Type", "text/event-stream")
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-t.C:
				fmt.Fprintf(w, "event: tick\ndata: %d\n\n", i)
				f.Flush()
			case <-draining:
				fmt.Fprint(w, "event: close\ndata: server draining\n\n")
				return
			case <-r.Context().Done():
				return
			}
		}
	})

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	fmt.Printf("go httpd: listening on 127.0.0.1:%d\n", p)
	if *portFile != "" {
		os.WriteFile(*portFile, []byte(fmt.Sprintf("%d\n", p)), 0o644)
	}
	srv := &http.Server{Handler: mux}
	srv.RegisterOnShutdown(func() { close(draining) })
	done := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-done
}
