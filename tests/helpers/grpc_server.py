#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A gRPC server for t_grpc (python3-grpcio), on loopback, raw bytes (no
protobuf): t.T/Echo returns the request; t.T/Sleep holds the call until the
client cancels it (or 60 s) and notes, on CLOCK_MONOTONIC (which the test
shares), when the cancellation reached it; t.T/Stats reports what it saw:
"calls=N sleeps=N cancelled_ns=T remaining_ms=R" (remaining_ms: the time
left of the last Sleep's deadline when it arrived, -1 without one).
It prints its port on a line, then serves until stdin closes."""
import sys
import threading
import time
from concurrent import futures

import grpc

lock = threading.Lock()
calls = 0
sleeps = 0
cancelled_ns = 0
remaining_ms = -1


def echo(request, context):
    global calls
    with lock:
        calls += 1
    return request


def sleep(request, context):
    global calls, sleeps, remaining_ms
    done = threading.Event()

    def on_end():
        global cancelled_ns
        with lock:
            cancelled_ns = time.monotonic_ns()
        done.set()

    left = context.time_remaining()
    with lock:
        calls += 1
        sleeps += 1
        remaining_ms = -1 if left is None else int(left * 1000)
    context.add_callback(on_end)
    done.wait(60)
    return b""


def stats(request, context):
    with lock:
        return ("calls=%d sleeps=%d cancelled_ns=%d remaining_ms=%d"
                % (calls, sleeps, cancelled_ns, remaining_ms)).encode()


def main():
    handler = grpc.method_handlers_generic_handler("t.T", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
        "Stats": grpc.unary_unary_rpc_method_handler(stats),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
