"""The ``segalloc`` command line: one ``cmd_<name>`` function a subcommand.

Errors go to stderr with exit code 1 (2 for usage errors, as argparse does); ``--json`` prints
one JSON document on stdout for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from segalloc.bench.tables import format_table, rich_table

__all__ = ["build_parser", "main", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000**2,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30, "t": 1 << 40,
          "tb": 1000**4, "tib": 1 << 40}


def parse_size(text: str) -> int:
    """'65536', '256MiB', '64k', '1T' -> bytes (argparse type); 0 is refused, not read as
    the default."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 65536, 64KiB, 256MiB, 1TiB)")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if size == 0:
        raise argparse.ArgumentTypeError(f"a size must be at least 1 byte, got {text!r} (leave "
                                         "the option out for the default)")
    return size


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]],
           title: str | None = None) -> str:
    """A table drawn by rich on a terminal, plain text (under its title) when piped."""
    if sys.stdout.isatty():
        return rich_table(headers, rows, title)
    text = format_table(headers, rows)
    return f"{title}\n{text}" if title else text


def _emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


# -- segalloc plugins ---------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    """List the registered algorithms and backends with their constants and whether each runs
    compiled (SEGALLOC_PURE_PYTHON=1 runs every module interpreted)."""
    from segalloc import PURE_PYTHON, is_compiled, plugins

    host = plugins()
    algorithms: list[dict[str, Any]] = [
        {
            "name": name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "compiled": is_compiled(cls),
            "layout_version": cls.layout_version,
            "ALIGNMENT": cls.ALIGNMENT,
            "PAYLOAD_PER_ALLOCATION": cls.PAYLOAD_PER_ALLOCATION,
            "MIN_SEGMENT_SIZE": cls.MIN_SEGMENT_SIZE,
        }
        for name, cls in host.algorithms.items()
    ]
    backends: list[dict[str, Any]] = [
        {"name": name, "class": f"{cls.__module__}.{cls.__qualname__}",
         "compiled": is_compiled(cls), "managed_class": cls.managed_class_name,
         "named": cls.named}
        for name, cls in host.backends.items()
    ]
    if args.json:
        _emit_json({"algorithms": algorithms, "backends": backends, "pure_python": PURE_PYTHON})
        return 0
    print("Algorithms")
    print(_table(
        ["name", "ALIGNMENT", "PAYLOAD_PER_ALLOCATION", "MIN_SEGMENT_SIZE", "layout", "build",
         "class"],
        [[a["name"], a["ALIGNMENT"], a["PAYLOAD_PER_ALLOCATION"], a["MIN_SEGMENT_SIZE"],
          a["layout_version"], _build(a["compiled"]), a["class"]] for a in algorithms],
    ))
    print("\nBackends")
    print(_table(
        ["name", "managed class", "named", "build", "class"],
        [[b["name"], b["managed_class"], "yes" if b["named"] else "no", _build(b["compiled"]),
          b["class"]] for b in backends],
    ))
    if PURE_PYTHON:
        print("\nSEGALLOC_PURE_PYTHON=1: every module runs interpreted")
    return 0


def _build(compiled: bool) -> str:
    return "compiled" if compiled else "interpreted"


# -- segalloc replay ----------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a trace on one algorithm and print its metrics (docs/architecture.md)."""
    from segalloc import plugins
    from segalloc.bench.replay import default_segment_size, median_run, replay_trace
    from segalloc.bench.traces import read_trace

    plugins().algorithm(args.algorithm)  # unknown names fail before the trace is read
    if args.repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {args.repeat}")
    trace = read_trace(args.trace)
    size = args.segment_size or default_segment_size(trace)
    result = median_run([replay_trace(trace, args.algorithm, size) for _ in range(args.repeat)])
    document = {"algorithm": args.algorithm, "backend": "heap", "segment_size": size,
                "trace": str(args.trace)}
    metrics = result.as_dict()
    del metrics["first_failure_utilisation"]
    document.update(metrics)
    if args.probes:
        from segalloc.bench.runner import probe

        document.update(probe(trace, args.algorithm, size)[0])
    if result.failures:
        print(f"segalloc: warning: {result.failures:,} allocations failed in the "
              f"{size:,}-byte segment (their IDs stay unbound; a larger --segment-size "
              "replays them)", file=sys.stderr)
    if args.json:
        _emit_json(document)
    else:
        print(_table(["metric", "value"], [[k, v] for k, v in document.items()]))
    return 0


# -- segalloc scenarios -------------------------------------------------------------------
def _key_figures(cell: dict[str, Any]) -> str:
    """The cell's figures that Boost also measured (all observed ones when it measured none
    in that scenario), each with Boost's value in brackets when its counterpart has one."""
    from segalloc.bench.boost_figures import BOOST_FIGURES
    from segalloc.bench.scenarios import Status

    if cell["status"] == Status.NOT_APPLICABLE.value:
        return ""
    figures, boost = cell["figures"], cell["boost"]
    parts = []
    for name in BOOST_FIGURES.get(cell["scenario"], figures):
        ours = figures.get(name)
        text = f"{name} {'-' if ours is None else ours}"
        if name in boost:
            text += f" ({boost[name]})"
        parts.append(text)
    return ", ".join(parts)


def cmd_scenarios(args: argparse.Namespace) -> int:
    """Run the nine documented scenarios on every algorithm x backend (or those given) and set
    the figures observed beside Boost 1.74's; exit 1 when any cell fails."""
    import tempfile
    from pathlib import Path

    from segalloc import plugins
    from segalloc.bench.scenarios import Status, run_scenarios

    host = plugins()
    algorithms = args.algorithms or list(host.algorithms)
    backends = args.backends or list(host.backends)
    with tempfile.TemporaryDirectory(prefix="segalloc-scenarios-") as scratch:
        cells = run_scenarios(algorithms, backends, Path(scratch))
    counts = {status: sum(cell["status"] == status.value for cell in cells) for status in Status}
    if args.json:
        _emit_json(cells)
    else:
        print(_table(
            ["#", "title", "algorithm", "backend", "status", "reason",
             "figures (Boost 1.74's in brackets)"],
            [[cell["scenario"], cell["title"], cell["algorithm"], cell["backend"],
              cell["status"], cell["reason"] or "", _key_figures(cell)] for cell in cells],
        ))
        print("\n" + ", ".join(f"{count} {status.value.replace('_', ' ')}"
                               for status, count in counts.items()))
    return 1 if counts[Status.FAILED] else 0


def _add_scenarios_parser(sub: Any) -> None:
    p = sub.add_parser("scenarios", help="run the nine documented scenarios",
                       description=cmd_scenarios.__doc__)
    p.add_argument("--algorithm", action="append", dest="algorithms", metavar="NAME",
                   help="registered algorithm to run on (repeatable; default: every one)")
    p.add_argument("--backend", action="append", dest="backends", metavar="NAME",
                   help="registered backend to run on (repeatable; default: every one)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON list, an object per cell: scenario, title, algorithm, "
                        "backend, status, reason, figures, and beside figures boost (Boost "
                        "1.74's figures of the same names) and boost_algorithm")
    p.set_defaults(func=cmd_scenarios)


# -- segalloc check / inspect -------------------------------------------------------------
#: seconds ``check`` / ``inspect`` wait for a segment's lock (a stopped holder blocks for ever)
LOCK_TIMEOUT = 5.0


def _open_for_examination(args: argparse.Namespace) -> Any:
    """The segment named on the command line, opened read-only; None (after printing why to
    stderr) when it cannot be opened as a segment."""
    from segalloc import InvalidSegment
    from segalloc.bench.inspect import FILE_BACKEND, SHM_BACKEND, open_read_only

    backend, name = (SHM_BACKEND, args.shm) if args.shm is not None else (FILE_BACKEND, args.path)
    try:
        return open_read_only(backend, name, args.timeout)
    except InvalidSegment as exc:
        print(f"segalloc: {name}: not a usable segment: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        if args.json:
            _emit_json({"name": name, "backend": backend, "sane": False,
                        "problem": f"{type(exc).__name__}: {exc}"})
        return None


def cmd_check(args: argparse.Namespace) -> int:
    """Check a segment without changing it: exit 0 when it is sane, 1 with the first
    inconsistency on stderr otherwise (a file that is not a segment included)."""
    from segalloc.bench.inspect import check

    segment = _open_for_examination(args)
    if segment is None:
        return 1
    name = args.shm if args.shm is not None else args.path
    with segment:
        problem = check(segment)
    if args.json:
        _emit_json({"name": name, "backend": segment.storage.name, "sane": problem is None,
                    "problem": problem})
    if problem is not None:
        print(f"segalloc: {name}: {problem}", file=sys.stderr)
        return 1
    if not args.json:
        print(f"{name}: sane")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Show a segment without changing it: header, algorithm and its constants, sizes, named
    and unique objects, free blocks and fragmentation (1 - largest / total free). Exit 1
    when the segment cannot be opened or is not sane."""
    from segalloc.bench.inspect import format_inspection, inspect

    segment = _open_for_examination(args)
    if segment is None:
        return 1
    with segment:
        report = inspect(segment)
    if args.json:
        _emit_json(report)
    else:
        print("\n".join(format_inspection(report)))
    return 0 if report["sane"] else 1


def _add_segment_argument(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("path", nargs="?", help="a segment file (opened through mapped_file)")
    where.add_argument("--shm", metavar="NAME", type=shm_name,
                       help="a POSIX shared-memory segment, NAME or /NAME as shm_open takes it "
                            "(opened through shared_memory)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--timeout", type=float, default=LOCK_TIMEOUT, metavar="S",
                   help="give up (exit 1, naming the lock's holder) when the segment's lock "
                        f"stays taken for S seconds (default {LOCK_TIMEOUT:g})")


def _add_check_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="check a segment's consistency (read-only)",
                       description=cmd_check.__doc__)
    _add_segment_argument(p)
    p.set_defaults(func=cmd_check)


def _add_inspect_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show a segment's header, objects and free blocks "
                                       "(read-only)", description=cmd_inspect.__doc__)
    _add_segment_argument(p)
    p.set_defaults(func=cmd_inspect)


# -- segalloc bench / report / compare ----------------------------------------------------
def _bench_parameters(args: argparse.Namespace) -> Any:
    from segalloc.bench.runner import BenchParameters, available_cores

    return BenchParameters(
        profile=args.profile,
        algorithms=tuple(args.algorithms or ()),
        backends=tuple(args.backends or ("heap",)),
        workloads=tuple(args.workloads or ()),
        traces=tuple(args.traces or ()),
        seed=args.seed,
        jobs=available_cores() if args.jobs in (None, 0) else args.jobs,
        executor=args.executor,
        scheduler=args.scheduler,
        scenarios=not args.no_scenarios,
        boost=not args.no_boost,
        scale=args.scale,
        trace_limit=args.trace_limit,
        cell_seconds=args.cell_seconds,
        repeat=args.repeat,
        shipped_traces=not args.no_shipped_traces,
    )


def _print_report_summary(document: dict[str, Any]) -> None:
    from segalloc.bench.report import (
        HEADLINES,
        boost_rows,
        build_line,
        headline_rows,
        unfinished_cells,
    )

    print(build_line(document["environment"]["build"]) + "\n")
    for figure, title in HEADLINES:
        print(_table(*headline_rows(document, figure), title=title) + "\n")
    for line in unfinished_cells(document):
        print(line)
    statuses = [cell["status"] for cell in document["scenarios"].get("cells", [])]
    if statuses:
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("passed", "failed", "not_applicable"))
        print(f"Documented scenarios: {counts}")
    ratios = boost_rows(document)
    if ratios[1]:
        print()
        print(_table(*ratios, title="Boost reference (ratios: ours / Boost's)"))
    elif not document["boost"].get("available"):
        print(f"\nBoost reference absent: {document['boost'].get('reason')}")
    if "peers" in document:
        print()
        _print_peers(document["peers"])


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the scenarios, the stress loads and the traces on every algorithm x backend, with
    Boost's reference when it can be built; print a summary and write report.json, report.md
    and report.html (with --peers also segalloc peers' section). Exit 1 when a cell errs, a
    scenario fails or a peers result does not check out (the reports are written)."""
    from segalloc.bench.report import write_reports
    from segalloc.bench.runner import PROFILES, run_bench

    document = run_bench(_bench_parameters(args), progress_stream=sys.stderr)
    peers_failed = 0
    if args.peers:
        from segalloc.bench.peers import run_peers

        quick = args.profile == "quick"
        try:
            document["peers"] = run_peers(_peer_counts(quick, None, None),
                                          args.repeat or PROFILES[args.profile].repeat,
                                          quick=quick, progress=_peers_progress())
            document["wall_seconds"] += document["peers"]["wall_seconds"]
        except RuntimeError as exc:  # a scaling worker that failed: the sweep is still written
            print(f"segalloc: error: {exc}", file=sys.stderr)
            peers_failed = 1
    paths = write_reports(document, args.out, figures=not args.no_figures)
    if args.json:
        _emit_json(document)
    else:
        _print_report_summary(document)
        print(f"\nwrote {', '.join(str(path) for path in paths)} "
              f"in {document['wall_seconds']:.1f} s")
    failed = [cell for cell in document["cells"] if cell["status"] == "error"]
    failed += [cell for cell in document["scenarios"]["cells"] if cell["status"] == "failed"]
    if "peers" in document:
        peers_failed = _report_peer_failures(document["peers"])
    return 1 if failed or peers_failed else 0


def _profile_help(profile: Any) -> str:
    traces = ("whole traces" if profile.trace_limit is None
              else f"traces cut to {profile.trace_limit:,} operations")
    return (f"{profile.name}: loads of {profile.scale:,} operations, {traces}, a cell stopped "
            f"after {profile.cell_seconds:g} s, {profile.repeat} replay"
            f"{'s' if profile.repeat > 1 else ''} a cell")


def _add_bench_parser(sub: Any) -> None:
    from segalloc.bench.runner import PROFILES
    from segalloc.bench.workloads import WORKLOADS

    p = sub.add_parser("bench", help="run the benchmark sweep and write the reports",
                       description=cmd_bench.__doc__)
    p.add_argument("--profile", choices=list(PROFILES), default="quick",
                   help="quick: under 2 minutes on 2 cores, full: under 30 minutes. "
                        + "; ".join(map(_profile_help, PROFILES.values()))
                        + ". Default quick")
    p.add_argument("--algorithm", action="append", dest="algorithms", metavar="NAME",
                   help="registered algorithm (repeatable; default: every one)")
    p.add_argument("--backend", action="append", dest="backends", metavar="NAME",
                   help="registered backend (repeatable; default: heap)")
    p.add_argument("--workload", action="append", dest="workloads", metavar="NAME",
                   help=f"synthetic load (repeatable; default: every one): {', '.join(WORKLOADS)}")
    p.add_argument("--trace", action="append", dest="traces", metavar="FILE",
                   help="a trace file to replay besides the shipped ones (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic loads (default 0)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="cells run at once, one process each, at most one a core "
                        "(default and 0: every core)")
    p.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="local process pool (default) or an existing Dask cluster "
                        "(needs the [dask] extra and --scheduler)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--out", default="bench-out", metavar="DIR",
                   help="directory for report.json, report.md, report.html and figures/ (each "
                        "figure as SVG and PDF; default bench-out)")
    p.add_argument("--json", action="store_true", help="print the report document on stdout")
    _add_no_figures(p)
    tuning = p.add_argument_group("overrides of the profile (experiments and tests)")
    tuning.add_argument("--scale", type=int, default=None, metavar="OPS",
                        help="operations a synthetic load emits (0: the profile's)")
    tuning.add_argument("--trace-limit", type=int, default=None, metavar="OPS",
                        help="cut every trace to its first OPS operations (0: the profile's)")
    tuning.add_argument("--cell-seconds", type=float, default=None, metavar="S",
                        help="stop a cell after S CPU seconds of timed replay and report a "
                             "timeout (0: the profile's)")
    tuning.add_argument("--repeat", type=int, default=None, metavar="N",
                        help="replay each cell (and Boost's reference) N times, each on a new "
                             "segment, one round of the sweep after another; ns/op is the "
                             "median; compare needs 4 or more (default: the profile's)")
    p.add_argument("--peers", action="store_true",
                   help="after the sweep, run segalloc peers (its --quick counts with the quick "
                        "profile, its full counts with full; --repeat or the profile's repeats) "
                        "and add its tables and figures to the report (exit 1 when a peers "
                        "result does not check out)")
    tuning.add_argument("--no-scenarios", action="store_true", help="skip the nine scenarios")
    tuning.add_argument("--no-boost", action="store_true", help="skip Boost's reference")
    tuning.add_argument("--no-shipped-traces", action="store_true",
                        help="replay only the --trace files, not bench/data's")
    p.set_defaults(func=cmd_bench)


def _add_no_figures(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-figures", action="store_true",
                   help="skip the figures (DIR/figures/*.svg and *.pdf, and those inline in "
                        "report.html): a few seconds less")


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild report.md and report.html (and a normalised report.json) from a run's JSON."""
    from pathlib import Path

    from segalloc.bench.report import load_report, write_reports

    document = load_report(args.run)
    paths = write_reports(document, args.out or Path(args.run).parent,
                          figures=not args.no_figures)
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0


def _add_report_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="rebuild the reports of a bench run",
                       description=cmd_report.__doc__)
    p.add_argument("run", metavar="RUN.json", help="a report.json written by segalloc bench")
    p.add_argument("--out", metavar="DIR", help="where to write (default: beside RUN.json)")
    _add_no_figures(p)
    p.set_defaults(func=cmd_report)


def cmd_compare(args: argparse.Namespace) -> int:
    """Show what changed between two runs beyond noise. ns/op is judged from each cell's
    repeated replays (run both with --repeat 5): a Mann-Whitney rank test (p < 0.05) and a
    change of the median beyond --threshold give '1.23x faster / slower', anything else 'not
    significant'; deterministic figures (footprint, fragmentation, failures, words and lines per
    operation) are shown whenever they differ. Runs made with different parameters are refused
    (--force compares them anyway). Exit 1 when a cell got slower beyond the threshold."""
    from segalloc.bench.compare import compare_reports, comparison_rows
    from segalloc.bench.report import load_report

    result = compare_reports(load_report(args.old), load_report(args.new),
                             threshold=args.threshold / 100, force=args.force)
    for warning in result["warnings"]:
        print(f"segalloc: WARNING: {warning}", file=sys.stderr)
    if args.json:
        _emit_json(result)
    else:
        print(_table(*comparison_rows(result)))
        for label in ("only_old", "only_new"):
            for load, algorithm, backend in result[label]:
                print(f"{label.replace('_', ' ')}: {load} {algorithm} {backend}")
        for entry in result["not_comparable"]:
            print(f"not comparable: {' '.join(entry['cell'])} "
                  f"({entry['old_status']} -> {entry['new_status']})")
        verdicts = [c["verdict"] for c in result["changes"] if c["figure"] == "ns_per_op"]
        significant = sum(v.endswith(("faster", "slower")) for v in verdicts)
        print(f"\n{significant} of {len(verdicts)} ns/op cells changed beyond "
              f"{args.threshold:g} %: {len(result['slower'])} slower")
    return 1 if result["slower"] else 0


def _percent(text: str) -> float:
    """A percentage for --threshold ('5', '5%', '2.5'): refused unless between 0 and 1000."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r} (e.g. 5 or 5%)") from None
    if not 0 <= value < 1000:
        raise argparse.ArgumentTypeError(f"a threshold between 0 and 1000 %, got {text!r}")
    return value


def _add_compare_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare two bench runs", description=cmd_compare.__doc__)
    p.add_argument("old", metavar="OLD.json", help="the earlier report.json")
    p.add_argument("new", metavar="NEW.json", help="the later report.json")
    p.add_argument("--threshold", type=_percent, default=5.0, metavar="PERCENT",
                   help="smallest change of a cell's median ns/op that counts, in percent "
                        "(default 5)")
    p.add_argument("--force", action="store_true",
                   help="compare runs made with different parameters (warned about)")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    p.set_defaults(func=cmd_compare)


# -- segalloc peers ----------------------------------------------------------------------
def _peers_progress() -> Any:
    """Progress lines on stderr when it is a terminal (None: silent)."""
    if not sys.stderr.isatty():
        return None
    return lambda step: print(f"segalloc peers: {step}", file=sys.stderr)


def _print_peers(document: dict[str, Any]) -> None:
    from segalloc.bench.peers import caption, scaling_rows, timed_rows

    for job in document["jobs"]:
        print(_table(*timed_rows(job), title=f"{job['job']}: {job['count']:,} {job['title']}")
              + "\n")
    if document["scaling"] is not None:
        scaling = document["scaling"]
        print(_table(*scaling_rows(scaling),
                     title=f"scaling: aggregate operations a second, {scaling['keys']:,} keys")
              + "\n")
    if document["not_installed"]:
        print(f"not installed: {', '.join(document['not_installed'])} "
              "(pip install 'segalloc[peers]' brings lmdb and UltraDict, 'segalloc[numpy]' "
              "numpy)")
    print(caption(document))


def _report_peer_failures(document: dict[str, Any]) -> int:
    """Exit status of a peers run: 1 (each failure on stderr) when a result did not check
    out."""
    from segalloc.bench.peers import verification_failures

    failures = verification_failures(document)
    for line in failures:
        print(f"segalloc: error: {line}", file=sys.stderr)
    return 1 if failures else 0


def _peer_counts(quick: bool, seconds: float | None, processes: list[int] | None) -> Any:
    from dataclasses import replace

    from segalloc.bench.peers import FULL, QUICK

    counts = QUICK if quick else FULL
    if seconds is not None:
        counts = replace(counts, scaling_seconds=seconds)
    if processes:
        counts = replace(counts, processes=tuple(processes))
    return counts


def cmd_peers(args: argparse.Namespace) -> int:
    """Run the same jobs on segalloc and on what users would pick instead, each peer when
    installed (pip install 'segalloc[peers]': lmdb, UltraDict; multiprocessing's Manager and
    shared_memory are always there): 10,000 str -> int inserts, updates and gets; appends and
    an iteration of 100,000 ints; 1,000 named 128-element float64 arrays created and found;
    1, 2, 4, 8 processes doing allocate + free pairs and dict gets on one shared-memory
    segment (lmdb and UltraDict gets beside them). Prints the time of each operation and its
    ratio to segalloc's, measured in the same run (medians of --repeat runs). Exit 1 when a
    result does not check out (a dict without all its keys, an array not holding what was
    written)."""
    from segalloc.bench.peers import run_peers

    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    try:
        document = run_peers(_peer_counts(args.quick, args.seconds, args.processes), repeat,
                             args.jobs, quick=args.quick, progress=_peers_progress())
    except RuntimeError as exc:  # a scaling worker that failed or never reported
        print(f"segalloc: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        _emit_json(document)
    else:
        _print_peers(document)
    return _report_peer_failures(document)


def _process_counts(text: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8] (argparse type): each at least 1."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of process counts: {text!r} "
                                         "(e.g. 1,2,4,8)") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"process counts must be 1 or more, got {text!r}")
    return sorted(set(counts))


def _add_peers_parser(sub: Any) -> None:
    from segalloc.bench.peers import FULL, JOBS, QUICK

    quick = (f"{QUICK.dict_keys:,} keys, {QUICK.list_items:,} ints, {QUICK.arrays:,} arrays, "
             f"{' and '.join(map(str, QUICK.processes))} processes for "
             f"{QUICK.scaling_seconds:g} s")

    p = sub.add_parser("peers", help="the same jobs on segalloc, lmdb, UltraDict and "
                                     "multiprocessing's Manager and shared_memory",
                       description=cmd_peers.__doc__)
    p.add_argument("--job", action="append", dest="jobs", choices=[*JOBS, "scaling"],
                   help="run only this job (repeatable; default: every one)")
    p.add_argument("--repeat", type=int, default=None, metavar="N",
                   help="run every contender N times, each on a new object, and report the "
                        "medians (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help=f"small counts ({quick}): seconds, for tests and CI; the ratios mean "
                        "little")
    p.add_argument("--seconds", type=float, default=None, metavar="S",
                   help=f"how long each scaling worker runs (default {FULL.scaling_seconds:g}; "
                        f"{QUICK.scaling_seconds:g} with --quick)")
    p.add_argument("--processes", type=_process_counts, default=None, metavar="N,N,...",
                   help="the scaling job's process counts, the first one the base of the "
                        f"speedups (default {','.join(map(str, FULL.processes))}; "
                        f"{','.join(map(str, QUICK.processes))} with --quick)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of tables: jobs (per contender: status, "
                        "ops with ns_per_op, runs and ratio, checks, verified), scaling (per "
                        "series: points with processes, ops_per_second, runs, speedup and each "
                        "round's speedup_runs), "
                        "not_installed, parameters, environment, build (see "
                        "segalloc.bench.peers)")
    p.set_defaults(func=cmd_peers)


# -- segalloc shm ls / rm -----------------------------------------------------------------
def shm_name(text: str) -> str:
    """A POSIX shared-memory name as given to ``shm_open`` ('/name') or plain ('name')."""
    return text[1:] if text.startswith("/") and "/" not in text[1:] else text


def _segalloc_shm_objects() -> list[tuple[str, int]]:
    """(name, size) of the shared-memory objects that hold a segalloc segment: those whose
    first bytes are the segment magic."""
    import os

    from segalloc.backends.shared_memory import SHM_DIR
    from segalloc.header import MAGIC

    found = []
    with os.scandir(SHM_DIR) as entries:
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                with open(entry.path, "rb") as probe:
                    if probe.read(len(MAGIC)) == MAGIC:
                        found.append((entry.name, entry.stat().st_size))
            except OSError:  # another user's object, or gone meanwhile
                continue
    return sorted(found)


def cmd_shm(args: argparse.Namespace) -> int:
    """List segalloc's POSIX shared-memory segments (objects in /dev/shm that start with the
    segment magic), or remove one of them by name."""
    from segalloc import plugins

    objects = dict(_segalloc_shm_objects())
    if args.action == "ls":
        if args.json:
            _emit_json([{"name": name, "size": size} for name, size in objects.items()])
        elif objects:
            print(_table(["name", "bytes"], [[name, size] for name, size in objects.items()]))
        else:
            print("no segalloc shared-memory segments")
        return 0
    name = shm_name(args.name)
    if name not in objects:
        print(f"segalloc: error: no segalloc shared-memory segment named {name!r} (segalloc shm "
              "ls lists them; other shared-memory objects are not segalloc's to remove)",
              file=sys.stderr)
        return 1
    plugins().backend("shared_memory").remove(name)
    print(f"removed {name}")
    return 0


def _add_shm_parser(sub: Any) -> None:
    p = sub.add_parser("shm", help="list or remove segalloc's shared-memory segments",
                       description=cmd_shm.__doc__)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("ls", help="list segalloc's shared-memory segments")
    ls.add_argument("--json", action="store_true", help="print a JSON list of {name, size}")
    rm = actions.add_parser("rm", help="remove one of segalloc's shared-memory segments")
    rm.add_argument("name", metavar="NAME", help="its name, plain or as '/NAME'")
    p.set_defaults(func=cmd_shm)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every option documented for ``--help``)."""
    from segalloc import DEFAULT_ALGORITHM, __version__

    parser = argparse.ArgumentParser(
        prog="segalloc",
        description="Managed memory segments with pluggable allocators, and a benchmark harness.",
    )
    parser.add_argument("--version", action="version", version=f"segalloc {__version__}")
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
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="replay N times, each on a new segment, and report the replay of "
                        "median ns/op (default 1)")
    p.add_argument("--probes", action="store_true",
                   help="also measure each operation's latency (latency_ns: p50, p90, p99, "
                        "p999, max by kind) and the metadata word traffic (words_per_op, "
                        "lines_per_op, ...), each in a further replay")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with the metrics, algorithm, backend, "
                        "segment_size and trace")
    p.set_defaults(func=cmd_replay)
    _add_scenarios_parser(sub)
    _add_check_parser(sub)
    _add_inspect_parser(sub)
    _add_bench_parser(sub)
    _add_report_parser(sub)
    _add_compare_parser(sub)
    _add_peers_parser(sub)
    _add_shm_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segalloc`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        # a broken third-party plugin is reported, whatever the interpreter's warning filters
        warnings.filterwarnings("default", "plugin entry point", RuntimeWarning)
        try:
            return int(args.func(args))
        except KeyboardInterrupt:
            print("segalloc: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # the reader went away (``segalloc bench | head``): end quietly, and point stdout
            # at nothing so the interpreter's last flush does not complain either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except (OSError, ValueError, TypeError, MemoryError) as exc:
            print(f"segalloc: error: {exc}", file=sys.stderr)
            return 1


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
    """A warning as the CLI shows it: one line, no source location."""
    print(f"segalloc: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
