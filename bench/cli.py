"""The ``segalloc`` command line: one ``cmd_<name>`` function a subcommand.

Errors go to stderr with exit code 1 (2 for usage errors, as argparse does); ``--json`` prints
one JSON document on stdout for scripts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from bench.tables import format_table

__all__ = ["build_parser", "main", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000**2,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """'65536', '256MiB', '64k' -> bytes (argparse type)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 65536, 64KiB, 256MiB)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


# -- segalloc plugins ---------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    """List the registered algorithms and backends with their constants."""
    from framework import plugins

    host = plugins()
    algorithms = [
        {
            "name": name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "layout_version": cls.layout_version,
            "ALIGNMENT": cls.ALIGNMENT,
            "PAYLOAD_PER_ALLOCATION": cls.PAYLOAD_PER_ALLOCATION,
            "MIN_SEGMENT_SIZE": cls.MIN_SEGMENT_SIZE,
        }
        for name, cls in host.algorithms.items()
    ]
    backends = [
        {"name": name, "class": f"{cls.__module__}.{cls.__qualname__}",
         "managed_class": cls.managed_class_name, "named": cls.named}
        for name, cls in host.backends.items()
    ]
    if args.json:
        _emit_json({"algorithms": algorithms, "backends": backends})
        return 0
    print("Algorithms")
    print(format_table(
        ["name", "ALIGNMENT", "PAYLOAD_PER_ALLOCATION", "MIN_SEGMENT_SIZE", "layout", "class"],
        [[a["name"], a["ALIGNMENT"], a["PAYLOAD_PER_ALLOCATION"], a["MIN_SEGMENT_SIZE"],
          a["layout_version"], a["class"]] for a in algorithms],
    ))
    print("\nBackends")
    print(format_table(
        ["name", "managed class", "named", "class"],
        [[b["name"], b["managed_class"], "yes" if b["named"] else "no", b["class"]]
         for b in backends],
    ))
    return 0


# -- segalloc replay ----------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a trace on one algorithm and print DESIGN.md's metrics."""
    from bench.replay import default_segment_size, replay_trace
    from bench.traces import read_trace
    from framework import plugins

    plugins().algorithm(args.algorithm)  # unknown names fail before the trace is read
    trace = read_trace(args.trace)
    size = args.segment_size or default_segment_size(trace)
    result = replay_trace(trace, args.algorithm, size)
    document = {"algorithm": args.algorithm, "backend": "heap", "segment_size": size,
                "trace": str(args.trace)}
    metrics = result.as_dict()
    del metrics["first_failure_utilisation"]
    document.update(metrics)
    if args.json:
        _emit_json(document)
    else:
        print(format_table(["metric", "value"], [[k, v] for k, v in document.items()]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every option documented for ``--help``)."""
    from framework import DEFAULT_ALGORITHM

    parser = argparse.ArgumentParser(
        prog="segalloc",
        description="Managed memory segments with pluggable allocators, and a benchmark harness.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plugins", help="list registered algorithms and backends",
                       description=cmd_plugins.__doc__)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("replay", help="replay an allocation trace on one algorithm",
                       description=cmd_replay.__doc__)
    p.add_argument("trace", help="trace file (text or gzip): lines 'a ID SIZE [ALIGN]', 'f ID', "
                                 "'r ID SIZE'")
    p.add_argument("--algorithm", default=DEFAULT_ALGORITHM,
                   help=f"registered algorithm to replay on (default {DEFAULT_ALGORITHM})")
    p.add_argument("--segment-size", type=parse_size, default=None, metavar="BYTES",
                   help="segment size, e.g. 268435456 or 256MiB (default: 4x the trace's peak "
                        "live bytes plus 1 MiB)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with the metrics, algorithm, backend, "
                        "segment_size and trace")
    p.set_defaults(func=cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segalloc`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("segalloc: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, MemoryError) as exc:
        print(f"segalloc: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
