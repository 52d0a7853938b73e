"""Run every benchmark (server, client, dashboard) and print a summary.

Each benchmark starts its own server in a temp dir and prints its detailed table; the summary
at the end repeats the headline figures. Takes about 25 minutes on a 2-core machine (2 with
--quick); `bench/data_growth.py --database-url postgresql+psycopg://...` repeats the growth
figures on PostgreSQL. The figures depend on what else the machine is doing: the load average
is printed with each.

Run: .venv/bin/python bench/run_all.py [--quick]   (or `make bench`)
"""

import argparse
import platform
import time

import client_overhead
import client_upload
import data_growth
import export_predict
import first_paint
import hotpaths
import metrics_ingest
import metrics_readback
import overload
from common import Figure, heading, load_note, print_figures


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's guess."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 s ingest runs and a 128 MiB upload (a smoke run)"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    print(f"machine: {cpu_model()}, Python {platform.python_version()}, {load_note()}")
    figures: list[Figure] = []
    figures += hotpaths.run(5 if args.quick else 15, 128 if args.quick else 1024)
    figures += metrics_ingest.run(seconds=5 if args.quick else 20)
    figures += metrics_readback.run()
    figures += client_overhead.run(500 if args.quick else 2000)
    figures += client_upload.run(128 if args.quick else 1024)
    figures += first_paint.run(runs=3 if args.quick else 5)
    figures += overload.run(5 if args.quick else 10, 512 if args.quick else 1024)
    figures += data_growth.run(1000 if args.quick else 10_000, 200 if args.quick else 2_000, None)
    figures += export_predict.run(repeat=10 if args.quick else 50)  # needs .venv-export
    heading(f"summary ({time.perf_counter() - start:.0f} s)")
    print_figures(figures)


if __name__ == "__main__":
    main()
