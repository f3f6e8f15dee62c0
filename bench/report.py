#!/usr/bin/env python3
"""Prints the BENCHMARKS.md table rows for herd-perf results: bench/report.py bench/results/*.json"""
import json
import sys


def fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


print("| scenario | hosts | connections | check-ins/s (steady) | steady p50 / p99 ms | whole-run p99 ms (read) "
      "| server CPU µs / check-in | floor µs / request | ratio to floor | server peak RSS | database | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for path in sys.argv[1:]:
    r = json.load(open(path))
    a = r["args"]
    steady, floor = r["steady"], r.get("floor") or {}
    read = next((e for e in steady["endpoints"] if e["endpoint"] == "distributed_read"), None)
    whole = next((e for e in r["endpoints"] if e["endpoint"] == "distributed_read"), None)
    model = a["connection_model"] + (f" ({a['pool_size']})" if a["connection_model"] == "pooled" else "")
    name = path.rsplit("/", 1)[-1].removesuffix(".json")
    print(f"| {name} | {a['hosts']:,} | {model} | {steady['checkins'] / steady['seconds']:,.0f} "
          f"| {fmt(read and read['p50_ms'], '.2f')} / {fmt(read and read['p99_ms'], '.2f')} "
          f"| {fmt(whole and whole['p99_ms'], '.1f')} "
          f"| {fmt(steady.get('server_cpu_us_per_checkin'), '.1f')} | {fmt(floor.get('server_cpu_us_per_request'), '.1f')} "
          f"| {fmt(r.get('checkin_to_floor_cpu_ratio'), '.2f')} | {r['server']['peak_rss_kib'] / 1024:,.0f} MiB "
          f"| {r['database_bytes'] / 2**20:,.0f} MiB | {r['errors']} |")
    if "restart" in r:
        rs = r["restart"]
        print(f"|  ↳ restart | | | down {rs['up_again_at'] - rs['stop_requested_at']:.1f} s (SIGTERM → serving) "
              f"| every host checking in again {rs['all_hosts_checking_in_again_after_up_s']:.1f} s after | "
              f"{r['recovery']['hosts_with_errors']:,} hosts saw a refused connection | | | | | | |")
