"""The sweep: algorithm x backend x load cells, each replayed in a process of its own.

A cell replays one load (a synthetic workload or a trace file) on one algorithm and backend and
returns its figures as plain JSON-ready data. Timings are taken one cell per process and never
two timed cells on one core: the local executor is a process pool of at most one worker a core,
each worker replaced after one cell (``max_tasks_per_child=1``), so no cell inherits another's
heap, caches or garbage. The Dask executor sends the same cells to an existing cluster; run its
workers with one thread each (``dask worker --nthreads 1``) for the same guarantee there.

The document this module assembles (``run_bench``) is what ``report.json`` holds; rendering it
is ``segalloc.bench.report``'s job.
"""

from __future__ import annotations

import datetime
import itertools
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from segalloc import PURE_PYTHON, Mode, is_compiled, plugins
from segalloc.bench import metrics
from segalloc.bench.probes import CostResult, measure_cost, measure_latency
from segalloc.bench.replay import (
    ReplayResult,
    default_segment_size,
    fresh_allocator,
    median_index,
    replay_trace,
)
from segalloc.bench.traces import Trace, read_trace, write_trace
from segalloc.bench.workloads import WORKLOADS, trace_from_ops, workload_trace

__all__ = [
    "DATA_DIR",
    "PROFILES",
    "BenchParameters",
    "CellSpec",
    "Load",
    "Profile",
    "Progress",
    "available_cores",
    "build_record",
    "cell_figures",
    "execute",
    "merge_rounds",
    "plan_cells",
    "plan_loads",
    "probe",
    "probe_figures",
    "run_bench",
    "run_cell",
    "shipped_traces",
]

#: the real traces shipped with the project (copies of ../shared/traces/)
DATA_DIR = Path(__file__).with_name("data")


# -- profiles and parameters ---------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """How big a run is."""

    name: str
    #: operations a synthetic load emits (about)
    scale: int
    #: live-bytes / high-water / spread samples a cell records over its run
    samples: int
    #: real traces are cut to their first ``trace_limit`` operations (None: whole)
    trace_limit: int | None
    #: CPU seconds a cell's timed replay may take before it is stopped and reported as a timeout
    cell_seconds: float
    #: replays of each cell (and of Boost's reference); ns/op is their median
    repeat: int


PROFILES: dict[str, Profile] = {
    # 2 minutes on 2 cores, scenarios and Boost included: perl is cut just past its peak (op 120,070), before
    # the halving of its hash makes sequential_fit's first-fit scan take minutes (136 s whole);
    # the budget stops plugins that walk every block (the example implicit_fit: ms per op)
    "quick": Profile("quick", scale=10_000, samples=32, trace_limit=122_000, cell_seconds=3.0,
                     repeat=1),
    "full": Profile("full", scale=100_000, samples=64, trace_limit=None, cell_seconds=150.0,
                    repeat=3),
}


@dataclass(frozen=True)
class BenchParameters:
    """Everything that decides what a run measures (recorded in the report)."""

    profile: str = "quick"
    algorithms: tuple[str, ...] = ()
    backends: tuple[str, ...] = ("heap",)
    workloads: tuple[str, ...] = ()
    traces: tuple[str, ...] = ()
    seed: int = 0
    jobs: int = 1
    executor: str = "local"
    scheduler: str | None = None
    scenarios: bool = True
    boost: bool = True
    #: override the profile's figures (tests and experiments)
    scale: int | None = None
    samples: int | None = None
    trace_limit: int | None = None
    cell_seconds: float | None = None
    repeat: int | None = None
    shipped_traces: bool = True

    def resolved(self) -> BenchParameters:
        """Defaults filled in and names checked (``ValueError`` listing the known ones)."""
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; known: {', '.join(PROFILES)}")
        profile = PROFILES[self.profile]
        host = plugins()
        algorithms = self.algorithms or tuple(host.algorithms)
        for name in algorithms:
            host.algorithm(name)
        for name in self.backends:
            host.backend(name)
        workloads = self.workloads or tuple(WORKLOADS)
        for name in workloads:
            if name not in WORKLOADS:
                raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
        if self.executor not in ("local", "dask"):
            raise ValueError(f"unknown executor {self.executor!r}; known: local, dask")
        if self.executor == "dask" and not self.scheduler:
            raise ValueError("--executor dask needs --scheduler ADDRESS")
        for option, value in (("scale", self.scale), ("cell-seconds", self.cell_seconds),
                              ("trace-limit", self.trace_limit), ("samples", self.samples)):
            if value is not None and not value >= 0:  # NaN too
                raise ValueError(f"--{option} must be 0 (the profile's) or more, got {value}")
        if self.repeat is not None and self.repeat < 1:
            raise ValueError(f"repeat must be at least 1, got {self.repeat}")
        cores = available_cores()
        if not 1 <= self.jobs <= cores:
            raise ValueError(f"jobs must be between 1 and the {cores} cores here (0: every core), "
                             f"got {self.jobs}")
        return replace(
            self,
            algorithms=algorithms,
            workloads=workloads,
            scale=self.scale or profile.scale,
            samples=profile.samples if self.samples is None else self.samples,
            trace_limit=self.trace_limit or profile.trace_limit,
            cell_seconds=self.cell_seconds or profile.cell_seconds,
            repeat=self.repeat or profile.repeat,
        )


def available_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# -- loads and cells -----------------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    """One load: a synthetic workload (made in the worker) or a parsed trace (shipped to it)."""

    name: str
    kind: str  # "workload" or "trace"
    seed: int = 0
    scale: int = 0
    trace: Trace | None = field(default=None, repr=False)
    #: the trace file Boost replays (a cut copy when the profile truncates)
    path: str | None = None
    segment_size: int | None = None

    def build(self) -> Trace:
        """The operations to replay."""
        if self.trace is not None:
            return self.trace
        return workload_trace(self.name, self.seed, self.scale)


def shipped_traces() -> list[Path]:
    """The real traces in ``bench/data`` (sorted)."""
    return sorted(DATA_DIR.glob("*.trace.gz"))


def _truncated(trace: Trace, path: Path, limit: int | None, scratch: Path) -> tuple[Trace, Path]:
    """The trace cut to its first ``limit`` operations, written to ``scratch`` for Boost."""
    if limit is None or len(trace.ops) <= limit:
        return trace, path
    stem = path.name.split(".")[0]
    cut_path = scratch / f"{stem}.first-{limit}.trace.gz"
    write_trace(trace.ops[:limit], cut_path)
    return trace_from_ops(cut_path.name, trace.ops[:limit]), cut_path


def plan_loads(params: BenchParameters, scratch: Path) -> list[Load]:
    """The workloads and the traces (shipped and given) of a resolved run; traces are parsed
    here so a missing or malformed file fails before anything runs."""
    loads = [
        Load(name, "workload", seed=params.seed, scale=params.scale or 0,
             segment_size=WORKLOADS[name].segment_size)
        for name in params.workloads
    ]
    paths = [*(shipped_traces() if params.shipped_traces else []), *map(Path, params.traces)]
    seen: set[str] = set()
    for path in paths:
        trace, replayed = _truncated(read_trace(path), path, params.trace_limit, scratch)
        if trace.name in seen:
            raise ValueError(f"two traces named {trace.name!r}: {path}")
        seen.add(trace.name)
        loads.append(Load(trace.name, "trace", trace=trace, path=str(replayed)))
    return loads


@dataclass(frozen=True)
class CellSpec:
    """What one process measures: one replay of a cell (``round`` of the run's repeats)."""

    algorithm: str
    backend: str
    load: Load
    samples: int
    scratch: str
    budget_seconds: float | None = None
    #: which of the run's replays of the cell this is; the first also runs the probes
    #: (latency and word traffic), which need measuring once
    round: int = 0


def plan_cells(params: BenchParameters, loads: Sequence[Load], scratch: Path,
               round: int = 0) -> list[CellSpec]:
    """Every algorithm x backend x load for one round, load-major (so a report reads load by
    load)."""
    return [
        CellSpec(algorithm, backend, load, params.samples or 0, str(scratch),
                 params.cell_seconds, round)
        for load, algorithm, backend in itertools.product(
            loads, params.algorithms, params.backends)
    ]


_unique = itertools.count()


def _segment_arguments(backend: str, size: int, scratch: Path) -> tuple[tuple[Any, ...], str | None]:
    """Arguments making a new segment of ``size`` bytes in ``backend``, and the name to remove
    afterwards (named backends)."""
    from segalloc.bench.scenarios import BackendKind, backend_kind

    storage = plugins().backend(backend)
    kind = backend_kind(storage, scratch)
    if kind is BackendKind.HEAP:
        return (size,), None
    if kind is BackendKind.EXTERNAL:
        return (Mode.CREATE_ONLY, bytearray(size)), None
    name = f"segalloc-bench-{os.getpid()}-{next(_unique)}"
    if kind is BackendKind.FILE:
        name = str(scratch / name)
    return (Mode.CREATE_ONLY, name, size), name


def cell_figures(result: ReplayResult) -> dict[str, Any]:
    """The replay metrics plus ``segalloc.bench.metrics``'s, flat (the report's ``figures``;
    docs/architecture.md, "Metric names")."""
    figures = result.as_dict()
    seen = result.observations
    assert seen is not None, "replay always records observations"
    policy = metrics.policy_heap(result.high_water, seen.blocks_at_high_water,
                                 seen.overhead_per_block)
    spreads = [sample.spread for sample in seen.timeline]
    # a segment that ran out capped the heap: the policy estimate, which assumes the heap grows
    # as the policy asks (Johnstone & Wilson's unbounded heap), is then not defined
    capped = result.failures > 0
    figures.update(
        overhead_per_block=seen.overhead_per_block,
        live_at_high_water=seen.live_at_high_water,
        fragmentation_1=metrics.fragmentation_1([s.high_water for s in seen.timeline],
                                                [s.live for s in seen.timeline]),
        fragmentation_3=metrics.fragmentation_3(result.high_water, seen.live_at_high_water),
        fragmentation_4=metrics.fragmentation_4(result.high_water, result.peak_live),
        fragmentation_3_policy=None if capped else metrics.fragmentation_3(
            policy, seen.live_at_high_water),
        fragmentation_4_policy=None if capped else metrics.fragmentation_4(
            policy, result.peak_live),
        peak_utilisation=metrics.peak_utilisation(result.peak_live, result.high_water),
        spread_at_peak=metrics.sawicki_spread(seen.free_sizes_at_peak),
        spread_mean=sum(spreads) / len(spreads) if spreads else None,
        spread_max=max(spreads, default=None),
        largest_free_at_peak=max(seen.free_sizes_at_peak, default=0),
        free_blocks_at_peak=len(seen.free_sizes_at_peak),
        ns_per_op_runs=list(seen.ns_per_op_runs),
        cpu_ns_per_op_runs=[seen.cpu_ns_per_op],
    )
    return figures


def probe_figures(cost: CostResult, latency: dict[str, list[int]],
                  clock_ns: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The probes' figures (merged into ``figures``) and the latency CDFs (the cell's
    ``latency_cdf``, for plots)."""
    figures = {
        "words_per_op": metrics.mean_and_max(cost.words, cost.weights),
        "reads_per_op": metrics.mean_and_max(cost.reads, cost.weights),
        "writes_per_op": metrics.mean_and_max(cost.writes, cost.weights),
        "lines_per_op": metrics.mean_and_max(cost.lines, cost.weights),
        "cost_ops": cost.ops,
        "failures_with_enough_free": cost.failures_with_enough_free,
        "latency_ns": {kind: metrics.percentiles(spans) for kind, spans in latency.items()},
        "latency_clock_ns": clock_ns,
    }
    return figures, {kind: metrics.cdf_points(spans) for kind, spans in latency.items()}


def probe(trace: Trace, algorithm: str, size: int, backend: str = "heap",
          scratch: Path | None = None,
          budget_seconds: float | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Latency and word traffic of ``trace`` on ``algorithm``, each on a new segment of its own
    (``probe_figures``' pair); ``scratch`` holds a file backend's segments."""
    results: list[Any] = []
    for measure in (measure_cost, measure_latency):
        args, name = _segment_arguments(backend, size, scratch or Path(tempfile.gettempdir()))
        try:
            with fresh_allocator(algorithm, size, backend, args) as (alg, buf):
                budget = () if measure is measure_cost else (budget_seconds,)
                results.append(measure(trace, alg, buf, *budget))
        finally:
            if name is not None:
                plugins().backend(backend).remove(name)
    cost, (latency, clock_ns) = results
    return probe_figures(cost, latency, clock_ns)


def run_cell(spec: CellSpec) -> dict[str, Any]:
    """Replay one cell (and, in round 0, probe it); errors of the algorithm are reported in
    the cell, never raised."""
    cell: dict[str, Any] = {"algorithm": spec.algorithm, "backend": spec.backend,
                            "load": spec.load.name, "kind": spec.load.kind}
    try:
        trace = spec.load.build()
        size = spec.load.segment_size or default_segment_size(trace)
        args, name = _segment_arguments(spec.backend, size, Path(spec.scratch))
        try:
            result = replay_trace(trace, spec.algorithm, size, spec.backend, segment_args=args,
                                  samples=spec.samples, budget_seconds=spec.budget_seconds)
        finally:
            if name is not None:
                plugins().backend(spec.backend).remove(name)
        seen = result.observations
        assert seen is not None
        stopped = seen.stopped_at is not None
        probed: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        if spec.round == 0 and not stopped:
            probed = probe(trace, spec.algorithm, size, spec.backend, Path(spec.scratch),
                           spec.budget_seconds)
    except Exception as exc:  # a failing algorithm is a finding of the run, not a crash of it
        cell.update(status="error", error=f"{type(exc).__name__}: {exc}", segment_size=None,
                    figures={}, timeline={}, free_histogram_at_peak={}, latency_cdf={})
        return cell
    figures = cell_figures(result)
    figures.update(probed[0])
    cell.update(
        status="timeout" if stopped else "ok",
        error=f"stopped after {seen.stopped_at:,} of {len(trace.ops):,} operations: over the "
              f"{spec.budget_seconds:g} s budget of a cell" if stopped else None,
        segment_size=size,
        figures=figures,
        timeline={
            "op": [s.op for s in seen.timeline],
            "live": [s.live for s in seen.timeline],
            "high_water": [s.high_water for s in seen.timeline],
            "spread": [s.spread for s in seen.timeline],
            "largest_free": [s.largest_free for s in seen.timeline],
        },
        free_histogram_at_peak=metrics.size_histogram(seen.free_sizes_at_peak),
        latency_cdf=probed[1],
    )
    return cell


def merge_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One cell from its replays in successive rounds: round 0's cell (the probes' figures and
    the deterministic ones), with ns/op and seconds of the replay of median ns/op, every
    replay's ns/op in ``ns_per_op_runs`` and CPU ns/op in ``cpu_ns_per_op_runs`` (run order).
    A round that did not finish makes the
    cell that round's."""
    for cell in rounds:
        if cell["status"] != "ok":
            return cell
    timings = [cell["figures"]["ns_per_op"] for cell in rounds]
    median = rounds[median_index(timings)]["figures"]
    merged = {**rounds[0], "figures": {**rounds[0]["figures"]}}
    merged["figures"].update(
        ns_per_op=median["ns_per_op"], seconds=median["seconds"], ns_per_op_runs=timings,
        cpu_ns_per_op_runs=[cpu for cell in rounds for cpu in cell["figures"]["cpu_ns_per_op_runs"]])
    return merged


# -- progress ------------------------------------------------------------------------------
class Progress:
    """A progress bar with an ETA, drawn by ``rich`` on a terminal; silent when the stream is
    not one. ``total`` may grow while it runs (later rounds of repeated replays)."""

    def __init__(self, total: int, stream: IO[str] | None = None, enabled: bool | None = None):
        self.total, self.done = total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._task: Any = None

    def advance(self, label: str) -> None:
        """One more step finished; ``label`` says which."""
        self.done += 1
        if not self.enabled:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(),
                            TextColumn("{task.description}"),
                            console=Console(file=self.stream, force_terminal=True),
                            transient=False)
            self._bar.start()
            self._task = self._bar.add_task("", total=self.total)
        self._bar.update(self._task, completed=self.done, total=self.total,
                         description=label[:40])
        if self.done >= self.total:
            self._bar.stop()
            self._bar = None


# -- executors -----------------------------------------------------------------------------
def _execute_local(specs: Sequence[CellSpec], jobs: int,
                   done: Callable[[int, dict[str, Any]], None]) -> None:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["segalloc.bench.runner"])
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                             max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_cell, spec): index for index, spec in enumerate(specs)}
        for future in as_completed(futures):
            done(futures[future], future.result())


def _execute_dask(specs: Sequence[CellSpec], scheduler: str,
                  done: Callable[[int, dict[str, Any]], None]) -> None:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise ValueError("--executor dask needs the [dask] extra: "
                         "pip install 'segalloc[dask]'") from None
    with Client(scheduler, timeout="30s") as client:  # type: ignore[no-untyped-call]
        futures = client.map(run_cell, list(specs), pure=False)
        index = {future.key: position for position, future in enumerate(futures)}
        for future in dask_completed(futures):  # type: ignore[no-untyped-call]
            done(index[future.key], future.result())


def execute(specs: Sequence[CellSpec], params: BenchParameters,
            progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run every cell on the chosen executor; the cells come back in ``specs`` order."""
    cells: list[dict[str, Any] | None] = [None] * len(specs)

    def done(index: int, cell: dict[str, Any]) -> None:
        cells[index] = cell
        if progress is not None:
            progress.advance(f"{cell['load']} {cell['algorithm']}")

    if params.executor == "dask":
        assert params.scheduler is not None, "resolved() checks the scheduler"
        _execute_dask(specs, params.scheduler, done)
    else:
        _execute_local(specs, params.jobs, done)
    assert all(cell is not None for cell in cells), "every cell reports back"
    return [cell for cell in cells if cell is not None]


# -- the run's document --------------------------------------------------------------------
def _git_commit() -> str | None:
    try:
        run = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10, check=False)
    except OSError:
        return None
    if run.returncode != 0:
        return None
    return run.stdout.strip() or None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build_record(algorithms: Iterable[str]) -> dict[str, Any]:
    """Which build runs: whether ``SEGALLOC_PURE_PYTHON`` asked for the interpreted one, and
    for each algorithm whether its module runs compiled. The local executor's cells run in
    processes started from this one, so they run the same build; a Dask cluster's workers
    run what their own machines installed."""
    host = plugins()
    return {"pure_python": PURE_PYTHON,
            "algorithms": [{"name": name, "compiled": is_compiled(host.algorithm(name))}
                           for name in algorithms]}


def environment(algorithms: Iterable[str] = ()) -> dict[str, Any]:
    """The machine, the Python and the code a run measured (the build of ``algorithms``)."""
    return {
        "machine": {"system": platform.system(), "release": platform.release(),
                    "architecture": platform.machine(), "cpu": _cpu_model(),
                    "cores": available_cores()},
        "python": {"implementation": platform.python_implementation(),
                   "version": platform.python_version()},
        "git_commit": _git_commit(),
        "build": build_record(algorithms),
    }


def _scenarios(params: BenchParameters, scratch: Path) -> dict[str, Any]:
    try:
        from segalloc.bench.scenarios import run_scenarios
    except ImportError as exc:
        return {"ran": False, "reason": f"segalloc.bench.scenarios is not importable: {exc}", "cells": []}
    cells = run_scenarios(list(params.algorithms), list(params.backends), scratch)
    return {"ran": True, "reason": None, "cells": cells}


def _boost(loads: Iterable[Load], repeat: int) -> dict[str, Any]:
    paths = [Path(load.path) for load in loads if load.path is not None]
    try:
        from segalloc.bench.boost_reference import BOOST_COUNTERPART, boost_reference
    except ImportError as exc:
        return {"available": False, "reason": f"segalloc.bench.boost_reference is not importable: {exc}"}
    reference = boost_reference(paths, repeat=repeat)
    reference["counterparts"] = dict(BOOST_COUNTERPART)
    return reference


def _rounds(specs: Sequence[CellSpec], params: BenchParameters,
            progress: Progress) -> list[dict[str, Any]]:
    """Every cell replayed ``params.repeat`` times, one round of the sweep after another, each
    later round in an order of its own (so a cell's replays sample the machine at different
    moments and beside different neighbours, as two runs would); a cell that did not finish
    its first round is not replayed again."""
    repeat = params.repeat or 1
    rounds = [[cell] for cell in execute(specs, params, progress)]
    again = [index for index, cell in enumerate(rounds) if cell[0]["status"] == "ok"]
    progress.total += len(again) * (repeat - 1)
    for number in range(1, repeat):
        random.Random(number).shuffle(again)  # seeded: a run's order is reproducible
        later = execute([replace(specs[index], round=number) for index in again], params,
                        progress)
        for index, cell in zip(again, later):
            rounds[index].append(cell)
    return [merge_rounds(cell_rounds) for cell_rounds in rounds]


def run_bench(params: BenchParameters, progress_stream: IO[str] | None = None,
              progress: bool | None = None) -> dict[str, Any]:
    """Scenarios, Boost's reference and every cell, one after the other (so nothing else runs
    beside the timed cells); returns the report document (``segalloc.bench.report`` renders it)."""
    from segalloc.bench.report import REPORT_VERSION

    params = params.resolved()
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="segalloc-bench-") as tmp:
        scratch = Path(tmp)
        loads = plan_loads(params, scratch)
        specs = plan_cells(params, loads, scratch)
        steps = Progress(len(specs) + params.scenarios + params.boost, progress_stream, progress)
        scenarios: dict[str, Any] = {"ran": False, "reason": "not asked for", "cells": []}
        if params.scenarios:
            scenarios = _scenarios(params, scratch)
            steps.advance("scenarios")
        boost: dict[str, Any] = {"available": False, "reason": "not asked for"}
        if params.boost:
            boost = _boost(loads, params.repeat or 1)
            steps.advance("Boost reference")
        cells = _rounds(specs, params, steps)
    finished = datetime.datetime.now(datetime.timezone.utc)
    return {
        "version": REPORT_VERSION,
        "kind": "segalloc-bench",
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": round((finished - started).total_seconds(), 3),
        "environment": environment(params.algorithms),
        "parameters": {key: list(value) if isinstance(value, tuple) else value
                       for key, value in asdict(params).items()},
        "loads": [{"name": load.name, "kind": load.kind,
                   "description": WORKLOADS[load.name].description if load.kind == "workload"
                   else f"trace {Path(load.path or load.name).name}",
                   "ops": None if load.trace is None else len(load.trace.ops)}
                  for load in loads],
        "cells": cells,
        "scenarios": scenarios,
        "boost": boost,
    }
