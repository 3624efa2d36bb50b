#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Parse libctx's Prometheus text export with a real parser
(python3-prometheus-client's text_string_to_metric_families) and check
it: every family with its type, the histogram well formed (bounds
increasing, counts cumulative, +Inf equal to _count), and the values equal
to what ctx_stats and ctx_cancel_latency said right after.

    prom_check.py path/to/metrics_dump
Exit 0: all good; 1: a check failed; 77: the parser is not installed.
"""
import subprocess
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # A python3 of its own (pyenv, venv) does not see Debian's packages.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        print("prom_check: python3-prometheus-client missing; skipped")
        sys.exit(77)

failures = 0


def check(cond, what):
    global failures
    if not cond:
        print("FAIL", what)
        failures += 1


run = subprocess.run([sys.argv[1]], capture_output=True, text=True, check=True)
text = run.stdout
expect = {}
for line in run.stderr.splitlines():
    k, v = line.split()
    expect[k] = int(v)

families = {f.name: f for f in text_string_to_metric_families(text)}
gauges = ["libctx_contexts", "libctx_timers", "libctx_tasks",
          "libctx_pool_threads", "libctx_pool_idle_threads",
          "libctx_internal_threads", "libctx_fds", "libctx_subprocesses"]
# The parser names a counter family without its _total suffix.
counters = ["libctx_cancels", "libctx_deadline_expiries",
            "libctx_interrupts", "libctx_kills"]
for name in gauges:
    check(name in families and families[name].type == "gauge",
          "gauge %s" % name)
for name in counters:
    check(name in families and families[name].type == "counter",
          "counter %s" % name)
hist = families.get("libctx_cancel_latency_seconds")
check(hist is not None and hist.type == "histogram", "histogram family")
if failures:
    sys.exit(1)


def value(family, sample_name):
    for s in families[family].samples:
        if s.name == sample_name:
            return s.value
    return None


check(value("libctx_contexts", "libctx_contexts") == expect["contexts"],
      "contexts equal ctx_stats")
check(value("libctx_timers", "libctx_timers") == expect["timers"],
      "timers equal ctx_stats")
check(value("libctx_cancels", "libctx_cancels_total") ==
      expect["cancels_total"], "cancels equal ctx_stats")
check(value("libctx_deadline_expiries", "libctx_deadline_expiries_total") ==
      expect["deadline_expiries_total"], "expiries equal ctx_stats")
check(expect["deadline_expiries_total"] >= 1, "one deadline expired")

buckets = [(float(s.labels["le"]), s.value) for s in hist.samples
           if s.name.endswith("_bucket")]
count = [s.value for s in hist.samples if s.name.endswith("_count")]
total = [s.value for s in hist.samples if s.name.endswith("_sum")]
check(len(buckets) == 24, "24 buckets (got %d)" % len(buckets))
check(buckets[0][0] == 1e-6, "first bound 1 us")
check(buckets[-1][0] == float("inf"), "last bound +Inf")
check(all(a[0] < b[0] for a, b in zip(buckets, buckets[1:])),
      "bounds increase")
check(all(a[0] * 2 == b[0] for a, b in zip(buckets[:-2], buckets[1:-1])),
      "bounds double (log scale)")
check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
      "counts cumulative")
check(count == [buckets[-1][1]], "+Inf equals _count")
check(count == [expect["latency_count"]], "count equals ctx_cancel_latency")
check(expect["latency_count"] >= 5, "five samples at least")
check(total and abs(total[0] - expect["latency_sum_ns"] / 1e9) < 1e-6,
      "sum equals ctx_cancel_latency")

print("prom_check: %d families parsed, %d checks failed" %
      (len(families), failures))
sys.exit(1 if failures else 0)
