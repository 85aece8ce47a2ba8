"""Runs the benchmark scenarios and prints the results as Markdown.

Every tool fetches the same pre-rendered pages from bench/server on 127.0.0.1. A run counts
only after its output is checked: the download floor must receive every page byte, every
other tool must write exactly the expected records (count and sum of ids). Figures are the
median wall time of the runs, the CPU time (user + system) and peak RSS of the median run,
from the kernel's rusage of each process. Standard library only.
"""

import argparse
import csv
import http.server
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

csv.field_size_limit(1 << 30)

# The size the speed targets are set at: records, and records per page.
TARGET = (200_000, 1000)


def clean_env():
    """The environment without proxies or apifetch settings, so every tool goes direct."""
    drop = re.compile(r"^(APIFETCH_|(HTTPS?|ALL|NO)_PROXY$)", re.IGNORECASE)
    return {k: v for k, v in os.environ.items() if not drop.match(k)}


class Server:
    def __init__(self, binary, records, per_page, latency_ms=0):
        self.proc = subprocess.Popen(
            [binary, "--records", str(records), "--per-page", str(per_page),
             "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE, text=True)
        port, pages, body_bytes = self.proc.stdout.readline().split()
        self.records, self.per_page = records, per_page
        self.pages, self.bytes = int(pages), int(body_bytes)
        self.url = f"http://127.0.0.1:{port}/items"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


class Run:
    def __init__(self, wall, cpu, rss_kb):
        self.wall, self.cpu, self.rss_kb = wall, cpu, rss_kb


def timed(argv, stdout=subprocess.DEVNULL, code=0):
    """Runs argv to completion; its wall time, CPU time and peak RSS. Fails on an exit code
    other than `code`.

    The peak RSS comes from GNU time rather than from our own wait4: Linux carries a
    process's high-water mark across exec, so a child started directly by this (large)
    Python process would report our memory, not its own.
    """
    with tempfile.NamedTemporaryFile("r") as rss:
        started = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "--format", "%M", "--output", rss.name] + argv,
                                stdout=stdout, stderr=subprocess.PIPE, env=clean_env())
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != code:
            raise RuntimeError(f"{argv[0]} exited {os.waitstatus_to_exitcode(status)}, not {code}: "
                               f"{err.decode(errors='replace')[-500:]}")
        rss_kb = int(rss.read().split()[-1])
    # wait4 also counts the reaped grandchild's CPU time: the tool's, plus a little of time's.
    return Run(wall, usage.ru_utime + usage.ru_stime, rss_kb), proc


def check_csv(path, records):
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        at = header.index("id")
        count = total = 0
        for row in rows:
            count += 1
            total += int(row[at])
    expect(count, total, records, path)


ID = re.compile(rb'"id":(\d+)')


def check_jsonl(path, records):
    count = total = 0
    with open(path, "rb") as f:
        for line in f:
            count += 1
            total += int(ID.search(line).group(1))
    expect(count, total, records, path)


def expect(count, id_sum, records, what):
    if count != records or id_sum != records * (records + 1) // 2:
        raise RuntimeError(f"{what}: {count} records (id sum {id_sum}), expected {records}")


def median_run(runs):
    """The run with the median wall time (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


class Bench:
    def __init__(self, args):
        self.args = args
        self.scratch = tempfile.mkdtemp(prefix="apifetch-bench-")
        self.help = subprocess.run([args.apifetch, "--help"], capture_output=True, text=True).stdout
        self.rows = []
        self.notes = []

    def supports(self, flag, value=None):
        """Whether this apifetch has a flag (and, optionally, a value it accepts)."""
        at = self.help.find(flag)
        if at < 0:
            return False
        return value is None or value in self.help[at:at + 600]

    def repeat(self, label, server, argv, check, runs, out=None):
        """Runs argv `runs` times; `out`, the file it writes, is deleted before each run
        (untimed). Every run writes a new file, as a first run does: replacing the
        previous run's 40 MB output adds the kernel's cost of freeing it (5 to 13 ms on
        the development machine), which the target size also shows on a row of its own."""
        results = []
        for _ in range(runs):
            if out and os.path.exists(out):
                os.unlink(out)
            run, _ = timed(argv)
            check()
            results.append(run)
        run = median_run(results)
        run.label, run.server = label, server
        return run

    def dataset(self, records, per_page):
        a = self.args
        with Server(a.server, records, per_page) as server:
            out = os.path.join(self.scratch, "out")
            floor = self.floor(server)
            runs = [floor]
            base = [a.apifetch, server.url, "--page-size", str(per_page), "--quiet", "--out"]
            runs.append(self.repeat("apifetch → CSV", server, base + [out + ".csv"],
                                    lambda: check_csv(out + ".csv", records), a.runs, out + ".csv"))
            if (records, per_page) == TARGET:
                runs.append(self.repeat("apifetch → CSV, replacing it", server,
                                        base + [out + ".csv"],
                                        lambda: check_csv(out + ".csv", records), a.runs))
            if self.supports("--format", "jsonl"):
                runs.append(self.repeat("apifetch → JSONL", server,
                                        base + [out + ".jsonl", "--format", "jsonl"],
                                        lambda: check_jsonl(out + ".jsonl", records), a.runs,
                                        out + ".jsonl"))
            elif "jsonl" not in self.notes:
                self.notes.append("jsonl")
            baseline = None
            if a.python and records <= a.baseline_max:
                baseline = self.repeat("Python baseline → CSV", server,
                                       [a.python, a.baseline, server.url, str(per_page), out + ".py.csv"],
                                       lambda: check_csv(out + ".py.csv", records), a.baseline_runs,
                                       out + ".py.csv")
                runs.append(baseline)
            for run in runs:
                self.rows.append((records, per_page, run, floor, baseline))
                print(f"  {records:>9,} @{per_page:<5} {run.label:<24} {run.wall:8.3f}s "
                      f"cpu {run.cpu:7.3f}s  rss {run.rss_kb / 1024:7.1f} MB", file=sys.stderr, flush=True)

    def floor(self, server):
        """curl fetching every page over one keep-alive connection, bytes checked."""
        results = []
        for _ in range(self.args.runs):
            argv = ["curl", "--silent", "--fail", "--output", "/dev/null",
                    "--write-out", "%{size_download}\\n",
                    f"{server.url}?page=[1-{server.pages}]&per_page={server.per_page}"]
            with tempfile.TemporaryFile() as sizes:
                run, _ = timed(argv, stdout=sizes)
                sizes.seek(0)
                got = [int(n) for n in sizes.read().split()]
            if len(got) != server.pages or sum(got) != server.bytes:
                raise RuntimeError(f"curl fetched {len(got)} pages, {sum(got)} bytes; "
                                   f"expected {server.pages}, {server.bytes}")
            results.append(run)
        run = median_run(results)
        run.label, run.server = "download floor (curl)", server
        return run

    def concurrency(self):
        """Sequential against --concurrency 8 on a server that takes 50 ms per request."""
        if not self.supports("--concurrency"):
            self.notes.append("concurrency")
            return None
        records, per_page, latency = 10_000, 100, 50
        out = os.path.join(self.scratch, "lat.csv")
        runs = min(self.args.runs, 3)
        with Server(self.args.server, records, per_page, latency) as server:
            base = [self.args.apifetch, server.url, "--page-size", str(per_page), "--quiet", "--out", out]
            check = lambda: check_csv(out, records)
            one = self.repeat("--concurrency 1", server, base + ["--concurrency", "1"], check, runs, out)
            eight = self.repeat("--concurrency 8", server, base + ["--concurrency", "8"], check, runs, out)
        return records, per_page, latency, one, eight


class Shapes:
    """One-page bodies of awkward shapes, served from memory on 127.0.0.1 (with a
    Content-Length, as the pages of bench/server): only memory is measured on them."""

    def __init__(self, bodies):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = bodies[self.path.split("?")[0].strip("/")]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def sparse_keys(records):
    """A page whose records each have a key of their own: a table of `records` columns."""
    return json.dumps({"data": [{"id": i, f"key{i}": i} for i in range(1, records + 1)]}).encode()


def large_value(mb, escaped):
    """A page of one record holding one string of `mb` MiB, with or without escapes."""
    unit = "a\\nb" if escaped else "abcd"
    text = unit * (mb * (1 << 20) // len(unit))
    return ('{"data": [{"id": 1, "big": "' + text + '"}]}').encode()


def memory(bench):
    """Peak RSS on one page of each awkward shape: sparse keys (within --max-columns, and
    past it, which must fail with exit 5) and one large value, to CSV and to JSON Lines."""
    bodies = {
        "sparse-5000": sparse_keys(5000),
        "sparse-20000": sparse_keys(20000),
        "large-40": large_value(40, False),
        "escaped-40": large_value(40, True),
    }
    scenarios = [
        ("5,000 records, each its own key → CSV", "sparse-5000", "csv", 0, 5000),
        ("20,000 records, each its own key → CSV (past --max-columns: exit 5)", "sparse-20000", "csv", 5, 0),
        ("one 40 MiB string → CSV", "large-40", "csv", 0, 1),
        ("one 40 MiB string → JSONL", "large-40", "jsonl", 0, 1),
        ("one 40 MiB string of escapes → CSV", "escaped-40", "csv", 0, 1),
    ]
    rows = []
    with Shapes(bodies) as shapes:
        for label, name, fmt, code, records in scenarios:
            out = os.path.join(bench.scratch, "shape." + fmt)
            results = []
            for _ in range(min(bench.args.runs, 3)):
                if os.path.exists(out):
                    os.unlink(out)
                argv = [bench.args.apifetch, shapes.url + name, "--paginate", "none", "--quiet",
                        "--out", out]
                run, _ = timed(argv, code=code)
                if code == 0:
                    (check_csv if fmt == "csv" else check_jsonl)(out, records)
                results.append(run)
            run = median_run(results)
            rows.append((label, len(bodies[name]), run))
            print(f"  {label:<70} {run.wall:8.3f}s rss {run.rss_kb / 1024:7.1f} MB",
                  file=sys.stderr, flush=True)
    return rows


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(l.split()[1] for l in f if l.startswith("MemTotal")))
            mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Linux {platform.release()}"


def report(bench, lat, shapes):
    mb = lambda r: r.server.bytes / 1e6
    lines = [f"Machine: {machine()}. Median of {bench.args.runs} runs "
             f"({bench.args.baseline_runs} for the Python baseline). Each run writes a new "
             "output file: the previous run's is deleted first, untimed.", ""]
    lines.append("| records | per page | MB of JSON | tool | wall s | CPU s | peak RSS MB | records/s | MB/s | × floor | Python ÷ this |")
    lines.append("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for records, per_page, run, floor, baseline in bench.rows:
        vs_base = f"{baseline.wall / run.wall:.1f}" if baseline else "–"
        lines.append(
            f"| {records:,} | {per_page:,} | {mb(run):.0f} | {run.label} | {run.wall:.3f} | {run.cpu:.3f} | "
            f"{run.rss_kb / 1024:.1f} | {records / run.wall:,.0f} | {mb(run) / run.wall:,.0f} | "
            f"{run.wall / floor.wall:.1f} | {vs_base} |")
    if lat:
        records, per_page, latency, one, eight = lat
        lines += ["", f"Latency-bound: {records:,} records at {per_page} per page, {latency} ms per request.", "",
                  "| apifetch | wall s | records/s | speed-up |", "| --- | ---: | ---: | ---: |",
                  f"| {one.label} | {one.wall:.3f} | {records / one.wall:,.0f} | 1.0 |",
                  f"| {eight.label} | {eight.wall:.3f} | {records / eight.wall:,.0f} | {one.wall / eight.wall:.1f} |"]
    if shapes:
        lines += ["", "Memory by record shape: one page each, median of the runs.", "",
                  "| page | MB of JSON | wall s | peak RSS MB | RSS ÷ body |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for label, size, run in shapes:
            lines.append(f"| {label} | {size / 1e6:.1f} | {run.wall:.3f} | {run.rss_kb / 1024:.1f} | "
                         f"{run.rss_kb * 1024 / size:.1f} |")
    if "jsonl" in bench.notes:
        lines += ["", "JSON Lines skipped: this apifetch has no `--format jsonl`."]
    if "concurrency" in bench.notes:
        lines += ["", "Latency scenario skipped: this apifetch has no `--concurrency`."]
    lines += ["", "Targets:"] + [f"- {t}" for t in targets(bench, lat, shapes)]
    return "\n".join(lines)


def targets(bench, lat, shapes):
    out = []
    key = {(r, p, run.label): (run, floor, base) for r, p, run, floor, base in bench.rows}
    hit = key.get((*TARGET, "apifetch → CSV"))
    if hit:
        run, floor, base = hit
        if base:
            x = base.wall / run.wall
            out.append(f"{'met' if x >= 20 else 'NOT met'}: 200k at 1000/page to CSV ≥ 20× faster than Python ({x:.1f}×)")
        x = run.wall / floor.wall
        replacing = key.get((*TARGET, "apifetch → CSV, replacing it"))
        also = f"; {replacing[0].wall / floor.wall:.1f}× when replacing the previous output" if replacing else ""
        out.append(f"{'met' if x <= 4 else 'NOT met'}: 200k at 1000/page to CSV within 4× of the floor ({x:.1f}×{also})")
    csv_rss = [run.rss_kb / 1024 for r, p, run, *_ in bench.rows if run.label == "apifetch → CSV"]
    if csv_rss:
        top = max(csv_rss)
        out.append(f"{'met' if top < 20 else 'NOT met'}: peak RSS < 20 MB (apifetch → CSV: "
                   f"{min(csv_rss):.1f}–{top:.1f} MB across sizes)")
    large = [(run.rss_kb * 1024 / size, label) for label, size, run in shapes if size > 1 << 20]
    if large:
        worst, label = max(large)
        out.append(f"{'met' if worst <= 3 else 'NOT met'}: peak RSS within 3× the largest body "
                   f"(worst {worst:.1f}×: {label})")
    if lat:
        x = lat[3].wall / lat[4].wall
        out.append(f"{'met' if x >= 6 else 'NOT met'}: --concurrency 8 ≥ 6× sequential at 50 ms ({x:.1f}×)")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--apifetch", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--python", help="interpreter with requests installed; no baseline without it")
    p.add_argument("--baseline", default=os.path.join(os.path.dirname(__file__), "baseline.py"))
    p.add_argument("--sizes", default="10000,200000")
    p.add_argument("--per-page", default="100,1000")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--baseline-runs", type=int, default=3)
    p.add_argument("--baseline-max", type=int, default=200_000,
                   help="largest dataset the Python baseline runs on (it holds every record in memory)")
    p.add_argument("--no-latency", action="store_true")
    p.add_argument("--no-shapes", action="store_true", help="skip the memory-by-record-shape pages")
    a = p.parse_args()
    bench = Bench(a)
    try:
        for records in map(int, a.sizes.split(",")):
            for per_page in map(int, a.per_page.split(",")):
                bench.dataset(records, per_page)
        lat = None if a.no_latency else bench.concurrency()
        shapes = [] if a.no_shapes else memory(bench)
    finally:
        shutil.rmtree(bench.scratch, ignore_errors=True)
    print(report(bench, lat, shapes))


if __name__ == "__main__":
    main()
