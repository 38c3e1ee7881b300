"""The ``logscan`` command line: ``logscan info``, ``logscan bench`` (and ``logscan train`` when present).

This module only parses arguments and prints; the work is done by
:mod:`logscan._machine` (what the machine is) and :mod:`logscan.bench`.
``python -m logscan`` is the same command.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys

import logscan
from logscan import _machine, bench, registry

# The training subcommand lives in logscan.nn.train, which exposes
# add_arguments(parser) and run(args) -> int; it is offered only when that
# module exists, so the command line works without it.
TRAIN_MODULE = "logscan.nn.train"


# ---------------------------------------------------------------- logscan info
def _backend_rows():
    rows = []
    for name in registry.names():
        spec = registry.spec(name)
        missing = spec.missing()
        if missing:
            hint = f" (pip install 'logscan[{spec.extra}]')" if spec.extra else ""
            status = f"no: needs {', '.join(missing)}{hint}"
        else:
            try:
                status = "yes" if spec.is_available() else f"no: no {spec.device.upper()} device found"
            except Exception as error:  # a probe that breaks means "not usable here"
                status = f"no: availability check failed ({type(error).__name__}: {error})"
        rows.append({"name": name, "device": spec.device, "priority": spec.priority, "available": status})
    return rows


def info_report():
    """Everything ``logscan info`` prints, as a dict (also what ``info --json`` prints)."""
    gpus, gpu_note = _machine.gpu_info()
    return {
        "logscan": logscan.__version__,
        "python_executable": sys.executable,
        "versions": _machine.versions(),
        "cpu": _machine.cpu_info(),
        "backends": _backend_rows(),
        "gpus": gpus,
        "gpu_note": gpu_note,
    }


def _print_info(report):
    versions = report["versions"]
    print(f"logscan {report['logscan']}")
    print(f"Python {versions['python']} ({report['python_executable']})")
    print("Packages: " + ", ".join(f"{name} {version or 'not installed'}"
                                    for name, version in versions.items() if name != "python"))
    cpu = report["cpu"]
    print(f"CPU: {cpu['model']} ({cpu['machine']}), {cpu['usable_cores']} usable of {cpu['logical_cores']} "
          f"logical cores")
    print(f"SIMD: {' '.join(cpu['simd']) or 'unknown'}")
    print("Backends ('auto' takes the available one of highest priority for the arrays' device):")
    width = max((len(row["name"]) for row in report["backends"]), default=4)
    for row in report["backends"]:
        print(f"  {row['name']:<{width}}  {row['device']:<4}  priority {row['priority']:>3}  "
              f"available: {row['available']}")
    if report["gpus"]:
        print(f"GPU ({report['gpu_note']}):")
        for gpu in report["gpus"]:
            memory = "" if gpu["memory_bytes"] is None else f", {gpu['memory_bytes'] / 2**30:.1f} GiB"
            print(f"  [{gpu['index']}] {gpu['name']} (compute capability {gpu['compute_capability']}{memory})")
    else:
        print(f"GPU: none seen ({report['gpu_note']})")


def _run_info(args):
    report = info_report()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_info(report)
    return 0


# ---------------------------------------------------------------- logscan bench
def _shape_argument(text):
    try:
        return bench.parse_shape(text)
    except bench.BenchError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _progress_printer():
    """Shows the row being timed on a terminal; silent when stderr is not one."""
    if not sys.stderr.isatty():
        return None

    def show(text):
        sys.stderr.write("\r\033[K" + text[:100])
        sys.stderr.flush()

    return show


def _run_bench(args):
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            args.parser.error(f"--json: folder {folder} does not exist")
    config = bench.Config(shapes=tuple(args.shape) if args.shape else bench.DEFAULT_SHAPES, dtype=args.dtype,
                          backends=args.backend, methods=args.method, quick=args.quick, repeats=args.repeats)
    progress = _progress_printer()

    def echo(line):
        if progress is not None:
            sys.stderr.write("\r\033[K")
        print(line, flush=True)

    try:
        report = bench.run(config, echo=echo, progress=progress)
    except bench.BenchError as error:
        args.parser.error(str(error))
    if progress is not None:
        sys.stderr.write("\r\033[K")
    if args.json:
        bench.save_json(report, args.json)
        print(f"\nresults saved to {args.json}")
    return 0


# ---------------------------------------------------------------- logscan train (optional)
def _find_train_module():
    """Whether logscan.nn.train exists, without importing it (its parent package may be absent)."""
    try:
        return importlib.util.find_spec(TRAIN_MODULE) is not None
    except ImportError:  # logscan.nn itself is not there
        return False


def _add_train(subparsers):
    if not _find_train_module():
        return
    try:
        train = importlib.import_module(TRAIN_MODULE)
    except Exception as error:  # report it when asked for, do not break info/bench
        reason = f"{type(error).__name__}: {error}"
        parser = subparsers.add_parser("train", help="train a model (cannot load here)")
        parser.set_defaults(run=lambda args: _fail(f"logscan train: cannot load {TRAIN_MODULE}: {reason}"))
        return
    doc = (train.__doc__ or "Train a model.").strip()
    parser = subparsers.add_parser("train", help=doc.splitlines()[0], description=doc)
    train.add_arguments(parser)
    parser.set_defaults(run=train.run, parser=parser)


def _fail(message):
    print(message, file=sys.stderr)
    return 1


# ---------------------------------------------------------------- the parser
def build_parser():
    """The ``logscan`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="logscan",
        description="logscan: the linear recurrence h_t = a_t h_{t-1} + b_t by parallel scans, in log and "
                    "linear space, on CPU and GPU.")
    parser.add_argument("--version", action="version", version=f"logscan {logscan.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = subparsers.add_parser("info", help="version, backends, CPU and GPU of this machine",
                                 description="Print logscan's version, its backends and whether each can run "
                                             "here, the CPU, and the GPUs a GPU package can see.")
    info.add_argument("--json", action="store_true", help="print the same facts as JSON")
    info.set_defaults(run=_run_info, parser=info)

    bench_parser = subparsers.add_parser(
        "bench", help="time the scans against a NumPy loop and a memory copy",
        description="Time logscan.scan (forward) and logscan.scan_backward for every method of every CPU "
                    "backend, next to a NumPy loop over T and np.copyto of the same bytes. Arrays are "
                    "(B, T, D), scanned along axis 1.")
    bench_parser.add_argument("--quick", action="store_true",
                              help="fewer repeats, and skip rows estimated above "
                                   f"{bench.SLOW_SECONDS:g} s per call")
    bench_parser.add_argument("--backend", action="append", metavar="NAME",
                              help="bench only this backend (repeatable); default: every CPU backend "
                                   f"({', '.join(n for n in registry.names() if registry.spec(n).device == 'cpu')})")
    bench_parser.add_argument("--method", action="append", metavar="NAME",
                              help="bench only this method (repeatable); default: every method of each backend")
    bench_parser.add_argument("--shape", action="append", type=_shape_argument, metavar="B,T,D",
                              help="a shape to bench (repeatable); default: "
                                   + " and ".join(",".join(map(str, s)) for s in bench.DEFAULT_SHAPES))
    bench_parser.add_argument("--dtype", default="float32", choices=bench.DTYPES, help="default: float32")
    bench_parser.add_argument("--repeats", type=int, metavar="N",
                              help="timed rounds, each calling every row once; a row keeps its best call "
                                   "(default: 5, or 2 with --quick)")
    bench_parser.add_argument("--json", metavar="PATH", help="also save the results as JSON to PATH")
    bench_parser.set_defaults(run=_run_bench, parser=bench_parser)

    _add_train(subparsers)
    return parser


def main(argv=None):
    """Run the ``logscan`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit status (argument errors exit with status 2 through
        :class:`SystemExit`, as argparse does).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader went away (``logscan info | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
