"""Cold start of the ``tfapprox`` command line against ``python -c "import tensorflow"``.

Every measurement is a fresh Python process (a cold interpreter; the
operating system's file cache is warm, as it is for a user running commands
one after another), timed with `time.perf_counter` around `subprocess.run`.
Measured in the same run:

- ``python -c pass``: the interpreter alone;
- ``python -c "import tensorflow"``: the stock alternative, what any command
  that touched TensorFlow would pay at least;
- ``tfapprox --help``;
- ``tfapprox bound ... --m-ff 128`` and ``--params 50000 --d 1 --json`` with
  the sympy derivation cached (the normal case: no sympy import);
- ``tfapprox bound ... --latex`` (imports sympy to render);
- ``tfapprox bound --memory ...`` and ``--kernel ... --json`` (paper B's
  rates: plain Python, no sympy);
- ``tfapprox bound`` with an empty user cache (the first run after
  installing: the derivation bundled in ``tfapprox_data`` is read);
- the sympy derivation from scratch (what a first run would cost without
  the bundled derivation, e.g. with another sympy version: once, then
  cached).

The derivation cache lives in a temporary folder (``TFAPPROX_CACHE_DIR``),
so the user's cache is neither used nor touched. The issue's target is a
cold ``tfapprox bound`` under 1 second.

Usage: ``python -m analysis.bench_cli [--quick] [--repeats N] [--json]``.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BOUND = ["bound", "--tau", "16", "--beta", "1.0", "--alpha", "0.5", "--m-ff", "128"]
BOUND_PARAMS = [
    "bound",
    "--tau",
    "16",
    "--beta",
    "1.0",
    "--alpha",
    "0.5",
    "--params",
    "50000",
    "--d",
    "1",
    "--json",
]
MEMORY = ["bound", "--memory", "48,56,99", "--rpe", "log", "--heads", "32", "--width", "256"]
KERNEL = ["bound", "--kernel", "exp:5,power:0.5", "--heads", "8", "--json"]
TARGET_SECONDS = 1.0


def _tfapprox_command():
    """The installed console script next to this interpreter, else ``python -m tfapprox_cli``."""
    script = os.path.join(os.path.dirname(sys.executable), "tfapprox")
    if os.path.exists(script):
        return [script]
    found = shutil.which("tfapprox")
    return [found] if found else [sys.executable, "-m", "tfapprox_cli"]


def _time(command, env, repeats):
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
    return _summary(seconds)


def _summary(seconds):
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "runs": seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats, 1 empty-cache run.")
    parser.add_argument(
        "--repeats", type=int, default=None, help="Repeats per command (default 7)."
    )
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    cold_repeats = 1 if args.quick else 2

    tfapprox = _tfapprox_command()
    python = [sys.executable]
    with tempfile.TemporaryDirectory(prefix="tfapprox-bench-") as folder:
        env = {
            **os.environ,
            "TFAPPROX_CACHE_DIR": os.path.join(folder, "warm"),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        # Fill the derivation cache once (not measured).
        subprocess.run(tfapprox + BOUND, env=env, check=True, stdout=subprocess.DEVNULL)
        commands = {
            "python -c pass": (python + ["-c", "pass"], env, repeats),
            "python -c 'import tensorflow'": (python + ["-c", "import tensorflow"], env, repeats),
            "tfapprox --help": (tfapprox + ["--help"], env, repeats),
            "tfapprox bound --m-ff 128": (tfapprox + BOUND, env, repeats),
            "tfapprox bound --params 50000 --json": (tfapprox + BOUND_PARAMS, env, repeats),
            "tfapprox bound --latex": (tfapprox + BOUND + ["--latex"], env, repeats),
            "tfapprox bound --memory (paper B)": (tfapprox + MEMORY, env, repeats),
            "tfapprox bound --kernel --json (paper B)": (tfapprox + KERNEL, env, repeats),
        }
        timings = {name: _time(*spec) for name, spec in commands.items()}
        empty = []
        for index in range(cold_repeats):
            cold_env = {**env, "TFAPPROX_CACHE_DIR": os.path.join(folder, f"empty-{index}")}
            empty.append(_time(tfapprox + BOUND, cold_env, 1)["runs"][0])
        timings["tfapprox bound, empty user cache"] = _summary(empty)
        # What the bundled derivation saves: sympy deriving from scratch.
        derive = python + ["-c", "from tfapprox import theory; theory._derive()"]
        timings["sympy derivation from scratch"] = _time(
            derive, {**env, "TFAPPROX_LAZY_IMPORT": "1"}, cold_repeats
        )

    reference = timings["python -c 'import tensorflow'"]["median_s"]
    ratios = {name: t["median_s"] / reference for name, t in timings.items()}
    bound_s = timings["tfapprox bound --m-ff 128"]["median_s"]
    result = {
        "repeats": repeats,
        "timings": timings,
        "ratio_to_import_tensorflow": ratios,
        "bound_seconds": bound_s,
        "bound_under_target": bound_s <= TARGET_SECONDS,
        "target_seconds": TARGET_SECONDS,
        "speedup_vs_import_tensorflow": reference / bound_s,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return result
    width = max(len(name) for name in timings)
    print(
        f"cold wall time, median of {repeats} fresh processes "
        f"({os.cpu_count()} CPUs, Python {result['python']})"
    )
    print(f"{'command':<{width}}  {'median s':>9}  {'min s':>7}  {'/ import tensorflow':>19}")
    for name, t in timings.items():
        print(f"{name:<{width}}  {t['median_s']:>9.3f}  {t['min_s']:>7.3f}  {ratios[name]:>19.3f}")
    verdict = "within" if result["bound_under_target"] else "OVER"
    print(
        f"tfapprox bound: {bound_s:.3f} s, {verdict} the {TARGET_SECONDS:g} s target; "
        f"{result['speedup_vs_import_tensorflow']:.1f}x faster than importing TensorFlow"
    )
    return result


if __name__ == "__main__":
    main()
