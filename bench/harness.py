"""The benchmark harness: ``python -m bench NAME [options]`` runs any benchmark.

A benchmark is a function decorated with ``@benchmark`` in a module of ``bench/`` (speed and
memory) or ``experiments/`` (quality studies) that returns its figures as a flat dict. The
harness builds its options from the function's signature (type hints and defaults; a
``model`` parameter gets a model trained briefly on a synthetic town, cached), runs it
``--repeat`` times, each in a fresh Python so its peak memory is its own, takes the median
of each figure, records the machine (cores, CPU and its flags, device, torch and GDAL
versions) and the commit, prints the figures and writes ``bench-out/NAME/COMMIT.json``.
``--record`` also keeps it as ``bench/results/NAME/MACHINE.json``, which the documentation's
benchmarks page is built from (``python -m bench report``): figures are never copied by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import os
import pkgutil
import platform
import re
import statistics
import subprocess
import sys
import time
import typing
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench-out"  # ignored by git: scenes, models, every run's record
RESULTS = ROOT / "bench" / "results"  # kept: the current figures of each machine kind
FOLDERS = ("bench", "experiments")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    function: Callable[..., dict]
    kind: str  # "speed", "memory", "quality", or "script" (its own options, passed through)
    folder: str
    script_doc: str = ""

    @property
    def doc(self) -> str:
        return self.script_doc or inspect.getdoc(self.function) or ""


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(kind: str = "speed", name: str | None = None):
    """Register a function returning its figures (``{"name": number or text}``) as a benchmark."""
    def register(function: Callable[..., dict]) -> Callable[..., dict]:
        key = name or function.__name__.replace("_", "-")
        folder = function.__module__.split(".")[0]
        BENCHMARKS[key] = Benchmark(key, function, kind, folder)
        return function
    return register


def discover() -> dict[str, Benchmark]:
    """Import every module of ``bench/`` and ``experiments/`` (their imports of torch and geoseg
    are inside the functions, so this is quick)."""
    sys.path.insert(0, str(ROOT))
    for folder in FOLDERS:
        for module in pkgutil.iter_modules([str(ROOT / folder)]):
            if module.name.startswith("_") or module.name == "harness":
                continue
            before = set(BENCHMARKS)
            mod = importlib.import_module(f"{folder}.{module.name}")
            if set(BENCHMARKS) == before and hasattr(mod, "main"):  # a script with its own options
                key = module.name.replace("_", "-")
                BENCHMARKS[key] = Benchmark(key, _script(f"{folder}.{module.name}"), "script", folder,
                                            inspect.getdoc(mod) or "")
    return BENCHMARKS


def _script(module: str) -> Callable[..., dict]:
    """A benchmark still written as a script with its own argument parser: run as ``python -m
    module ARGS``; its figures are its last line when that is JSON, else its output's tail."""
    def run_script(argv: list[str]) -> dict:
        out = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{module}: exit {out.returncode}")
        lines = out.stdout.strip().splitlines()
        print("\n".join(lines))
        try:
            last = json.loads(lines[-1])
            return last if isinstance(last, dict) else {"rows": last}
        except (ValueError, IndexError):
            return {"output": "\n".join(lines[-20:])}
    return run_script


def _parser(bench: Benchmark) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python -m bench {bench.name}", description=bench.doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(bench.function)
    for p in inspect.signature(bench.function).parameters.values():
        kind = hints.get(p.name, str)
        args = [k for k in typing.get_args(kind) if k is not type(None)]
        if args and typing.get_origin(kind) is not tuple:
            kind = args[0]
        flag = f"--{p.name.replace('_', '-')}"
        default = None if p.default is inspect.Parameter.empty else p.default
        if kind is bool:
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            ap.add_argument(flag, default=default, help=f"comma-separated [default: {default}]",
                            type=lambda text, item=item: tuple(item(v) for v in text.split(",")))
        else:
            ap.add_argument(flag, type=kind, default=default, required=p.default is inspect.Parameter.empty
                            and p.name != "model", help=f"[default: {default}]" if default is not None else None)
    ap.add_argument("--repeat", type=int, default=1, help="runs, each in a fresh process; figures are the median")
    ap.add_argument("--record", action="store_true", help="keep the figures as this machine's in bench/results/")
    return ap


def _cpu() -> tuple[str, list[str]]:
    name, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
        name = re.search(r"model name\s*:\s*(.+)", text).group(1).strip()
        flags = re.search(r"flags\s*:\s*(.+)", text).group(1).split()
    except (OSError, AttributeError):
        pass
    return name, sorted(f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"))


def environment() -> dict:
    """The machine and the code a figure came from."""
    import rasterio
    import torch

    cpu, flags = _cpu()
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "geoseg", "cli"]).returncode != 0
    return {"commit": (commit or "unknown") + ("-dirty" if dirty else ""),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cpu": cpu, "cpu_flags": flags,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__, "gdal": rasterio.__gdal_version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def machine_kind(env: dict) -> str:
    """A file name for a kind of machine: its device, or its CPU and cores."""
    what = env["device"] if env["device"] != "cpu" else f"{env['cpu']} {env['cores']} cores"
    return re.sub(r"[^A-Za-z0-9]+", "-", what).strip("-").lower()


def _child(name: str, kwargs: str) -> None:
    """Run one benchmark in this process and print its figures and peak RSS as JSON, last."""
    import resource

    bench = discover()[name]
    if bench.kind == "script":
        figures = bench.function(json.loads(kwargs)["argv"])
        who = resource.RUSAGE_CHILDREN
    else:
        figures = bench.function(**json.loads(kwargs))
        who = resource.RUSAGE_SELF
    figures["peak_rss_mib"] = resource.getrusage(who).ru_maxrss / 1024
    print(json.dumps(figures))


def _median(runs: list[dict]) -> dict:
    out = {}
    for key, value in runs[0].items():
        values = [r.get(key) for r in runs]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        out[key] = statistics.median(values) if numeric and len(values) > 1 else value
    return out


def run(name: str, argv: list[str]) -> dict:
    bench = discover()[name]
    if bench.kind == "script":  # its own options; the harness's are taken off the front
        ap = argparse.ArgumentParser(add_help=False)
        ap.add_argument("--repeat", type=int, default=1)
        ap.add_argument("--record", action="store_true")
        known, rest = ap.parse_known_args(argv)
        args = {"repeat": known.repeat, "record": known.record, "argv": rest}
    else:
        args = vars(_parser(bench).parse_args(argv))
    repeat, record = args.pop("repeat"), args.pop("record")
    if bench.kind != "script" and "model" in args and args["model"] is None:
        from bench._common import ensure_model

        args["model"] = str(ensure_model(WORK))
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.items()}
    runs = []
    for i in range(repeat):
        out = subprocess.run([sys.executable, "-m", "bench", "_child", name, json.dumps(kwargs, default=str)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{name}: run {i + 1} failed (exit {out.returncode})")
        lines = out.stdout.strip().splitlines()
        print("\n".join(lines[:-1]))
        runs.append(json.loads(lines[-1]))
    env = environment()
    result = {"benchmark": name, "kind": bench.kind, "folder": bench.folder, "options": kwargs, "repeat": repeat,
              "figures": _median(runs), "runs": runs, "environment": env,
              "command": " ".join(["python -m bench", name, *argv])}
    path = WORK / name / f"{env['commit']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str))
    width = max(map(len, result["figures"]))
    for key, value in result["figures"].items():
        print(f"{key:>{width}}  {value:.4g}" if isinstance(value, float) else f"{key:>{width}}  {value}")
    print(f"→ {path}")
    if record:
        kept = RESULTS / name / f"{machine_kind(env)}.json"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(json.dumps(result, indent=1, default=str))
        print(f"→ {kept}")
    return result


def report(out: Path) -> None:
    """The benchmarks page: one table per machine kind from ``bench/results``, with the command."""
    by_machine: dict[str, list[dict]] = {}
    for path in sorted(RESULTS.glob("*/*.json")):
        result = json.loads(path.read_text())
        by_machine.setdefault(path.stem, []).append(result)
    lines = ["# Benchmarks", "",
             "Generated by `python -m bench report` from the figures each benchmark keeps with `--record`",
             "(`bench/results/NAME/MACHINE.json`); never edited by hand. Every figure is the median of",
             "the runs shown, each run in a fresh process. Compare figures within one machine's table.", ""]
    benches = discover()
    for _, results in sorted(by_machine.items()):
        env = results[0]["environment"]
        lines += [f"## {env['cpu']}, {env['cores']} cores, {env['device']}", "",
                  f"CPU flags: {', '.join(env['cpu_flags']) or 'none of note'}; torch {env['torch']}, "
                  f"GDAL {env['gdal']}.", "", "| benchmark | figures | runs | commit | command |",
                  "| --- | --- | --- | --- | --- |"]
        for r in sorted(results, key=lambda r: r["benchmark"]):
            figures = "; ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in r["figures"].items())
            lines.append(f"| {r['benchmark']} | {figures} | {r['repeat']} | {r['environment']['commit']} |"
                         f" `{r['command']}` |")
        lines.append("")
    lines += ["## Every benchmark", "", "| name | kind | folder | what it measures |", "| --- | --- | --- | --- |"]
    for b in sorted(benches.values(), key=lambda b: (b.folder, b.name)):
        lines.append(f"| `{b.name}` | {b.kind} | `{b.folder}/` | {b.doc.splitlines()[0] if b.doc else ''} |")
    out.write_text("\n".join(lines) + "\n")
    print(f"→ {out}")


def main(argv: list[str]) -> None:
    if argv[:1] == ["_child"]:
        return _child(argv[1], argv[2])
    if argv[:1] == ["report"]:
        return report(Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "benchmarks.md")
    benches = discover()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in benches:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"unknown benchmark {argv[0]!r}", file=sys.stderr)
        print("usage: python -m bench NAME [options]   (python -m bench NAME --help for its options)\n"
              "       python -m bench report [docs/benchmarks.md]\n")
        for b in sorted(benches.values(), key=lambda b: (b.folder, b.name)):
            print(f"  {b.name:24s} {b.kind:8s} {b.folder}/  {b.doc.splitlines()[0] if b.doc else ''}")
        raise SystemExit(0 if not argv or argv[0] in ("-h", "--help") else 2)
    run(argv[0], argv[1:])
