"""The GPU path proved in one run: benchmarks/gpu_check.sh runs this (see there for the environment).

    python benchmarks/gpu_check.py --device cuda --data DATA [--budget-s 420] [--out FILE.md]
    python benchmarks/gpu_check.py --device cpu --data DATA   (tiny shapes: the same code paths in minutes)

Sections, most important first, each skipped (and said so) when the time budget left is below its estimate:
1. ours vs HF GPT-2 at ~150M (benchmarks/_gpu.py GPT_150M), eager, then compiled, with MFU;
2. packing: K processes on one GPU, each training the example proxy with `trainer.train.run`,
   summed tokens/s, next to what automix/resources/_packing.py predicts;
3. fidelity: the example trial's target_val_loss on the GPU (bf16 eager, bf16 compiled, fp32)
   against fp32 on the CPU (trained in the background from the start);
4. the test suite's CUDA tests (`pytest -k cuda`, where pytest is there);
5. lr x width sweep (μP and SP) and 6. coordinate check, widths 128-1024.
Imports only trainer/ (pydantic, mup; pandas for the coordinate check): no Ray, MLflow or optuna.
`worker` is the internal entry point of the processes it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _gpu
import torch

from trainer.config import TrainConfig

HERE = Path(__file__).resolve()
LR_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)  # 2x steps around the example's lr (automix/scaling/_verify.py)


class Check:
    """Sections run against one wall-clock deadline; the report grows in a Markdown file as they finish."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.tiny = args, args.device == "cpu"
        self.deadline = (args.start or time.time()) + args.budget_s
        self.cache = Path(args.cache)
        self.report: list[str] = []
        self.scratch = Path(tempfile.mkdtemp(prefix="automix-gpu-check-"))

    def base(self, **overrides: Any) -> TrainConfig:
        """The example trial on this device, one thread, no checkpoints."""
        return _gpu.example_config(self.args.data, self.cache, {"device": self.args.device, **overrides})

    def left(self) -> float:
        """Seconds left of the budget (at least 1)."""
        return max(1.0, self.deadline - time.time())

    def emit(self, text: str) -> None:
        print(text, flush=True)
        self.report.append(text)
        if self.args.out:
            Path(self.args.out).write_text("\n".join(self.report) + "\n")

    def section(self, name: str, estimate_s: float, body: Callable[[], str]) -> None:
        """Run `body` if `estimate_s` fits in the time left; its Markdown (or its error) goes to the report."""
        left = self.deadline - time.time()
        if left < estimate_s:
            self.emit(f"\n### {name}\n\nskipped: {left:.0f} s left of the budget, ~{estimate_s:.0f} s needed\n")
            return
        start = time.time()
        try:
            text = body()
        except Exception as e:  # one failed section must not cost the others
            traceback.print_exc()
            text = f"\n### {name}\n\nFAILED: {type(e).__name__}: {str(e).strip()[:500]}\n"
        self.emit(f"{text}\n({name}: {time.time() - start:.0f} s)\n")


def spawn(specs: list[dict], scratch: Path, timeout_s: float) -> list[subprocess.Popen]:
    """Start one worker process per spec (this file's `worker` entry point); results go to spec['result']."""
    procs = []
    for i, spec in enumerate(specs):
        path = scratch / f"spec-{time.time_ns()}-{i}.json"
        spec = {**spec, "result": str(path.with_suffix(".result.json")), "deadline": time.time() + timeout_s}
        path.write_text(json.dumps(spec))
        procs.append(subprocess.Popen([sys.executable, "-W", "ignore", str(HERE), "worker", str(path)]))
        procs[-1].result_path = spec["result"]  # type: ignore[attr-defined]
    return procs


def collect(procs: list[subprocess.Popen], timeout_s: float) -> list[list[dict]]:
    """Each worker's results (a list per process); a worker past the timeout is killed and gives none."""
    end, out = time.time() + timeout_s, []
    for p in procs:
        try:
            p.wait(timeout=max(1.0, end - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        path = Path(p.result_path)  # type: ignore[attr-defined]
        out.append(json.loads(path.read_text()) if path.is_file() else [])
    return out


def worker(spec_path: str) -> None:
    """Train the spec's configs in order; with a barrier, warm up first and start with the other workers."""
    spec = json.loads(Path(spec_path).read_text())
    results = []
    for i, raw in enumerate(spec["configs"]):
        config = TrainConfig.model_validate(raw)
        if i == 0 and spec.get("barrier"):
            _gpu.steady_speed(_gpu.with_overrides(config, {"budget.train_tokens": config.budget.total_tokens // 10}))
            _barrier(Path(spec["barrier"]), spec["k"], spec["deadline"])
        start = time.time()
        try:
            speed = _gpu.steady_speed(config)
            results.append({"t0": start, "t1": time.time(), "tokens_per_s": speed.tokens_per_s, **speed.final})
        except Exception as e:  # a diverged run is a result of the sweep, not a failure of the check
            results.append({"t0": start, "t1": time.time(), "error": f"{type(e).__name__}: {e}"})
    Path(spec["result"]).write_text(json.dumps(results))


def _barrier(folder: Path, k: int, deadline: float) -> None:
    """Wait until k workers have arrived (a file each), so that the measured runs overlap."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{os.getpid()}").touch()
    while len(list(folder.iterdir())) < k and time.time() < deadline:
        time.sleep(0.01)


def packing_model():
    """automix/resources/_packing.py: its package imports no Ray, Optuna or MLflow, so it loads here."""
    from automix.resources import _packing

    return _packing


def section_150m(check: Check, compiled: bool) -> str:
    """Ours vs HF at ~150M (tiny: the proxy shape), eager or compiled."""
    shape, timed = (_gpu.PROXY, 10) if check.tiny else (_gpu.GPT_150M, 30)
    text = _gpu.compare(check.base(), shape, timed, (compiled,))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # hand the memory back before other processes need it
    return text


def section_packing(check: Check) -> str:
    """K processes on one GPU, each training the example proxy; summed tokens/s vs K=1."""
    ks, steps = ((2,), 60) if check.tiny else ((1, 4, 8, 16), 600)  # tiny: process start-up dominates
    config = _gpu.shape_config(check.base(compile="off"), _gpu.PROXY, steps, steps // 5)
    from trainer.data import load_datasets

    load_datasets(config)  # tokenized once here: the workers read the cache
    rows, base_rate = [], None
    for k in ks:
        barrier = check.scratch / f"barrier-{k}"
        timeout = min(120.0, check.left())
        procs = spawn([{"configs": [config.model_dump()], "barrier": str(barrier), "k": k}] * k, check.scratch, timeout)
        results = [r[0] for r in collect(procs, timeout) if r and "error" not in r[0]]
        if len(results) < k:
            rows.append([k, f"{len(results)} of {k} workers finished", "", "", ""])
            continue
        tokens = sum(r["tokens"] for r in results)
        summed = tokens / (max(r["t1"] for r in results) - min(r["t0"] for r in results))
        steady = sum(r["tokens_per_s"] for r in results)
        base_rate = base_rate or steady
        per = steady / k
        rows.append(
            [k, f"{summed / 1e6:.2f}M", f"{steady / 1e6:.2f}M", f"{per / 1e6:.3f}M", f"{steady / base_rate:.1f}x"]
        )
    return _gpu.table(
        f"packing: K processes on one {check.args.device} device, example proxy, {steps} steps each; "
        + predicted_packing(check, config),
        ["K", "summed tokens/s (wall)", "summed steady tokens/s", "per process", f"vs K={ks[0]}"],
        rows,
    )


def predicted_packing(check: Check, config: TrainConfig) -> str:
    """What automix/resources/_packing.py says for the proxy and the ~150M shape on this device."""
    packing = packing_model()
    free = torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else 80 * 10**9
    where = f"{free / 1e9:.0f} GB free" + ("" if torch.cuda.is_available() else " (assumed: no GPU)")
    big = _gpu.shape_config(check.base(), _gpu.GPT_150M, 2, 1)
    said = []
    for name, cfg in (("proxy", config), ("~150M", big)):
        p = packing.pack(packing.trial_size(cfg), free, os.cpu_count() or 1)
        said.append(f"{name} k={p.k} ({p.limited_by})")
    return f"_packing predicts on {where}, {os.cpu_count()} cores: " + ", ".join(said)


def fidelity_configs(check: Check) -> dict[str, TrainConfig]:
    """The example trial (tiny: a tenth of its budget), as each fidelity row trains it."""
    tiny = {"budget.unique_tokens": 20_000, "budget.epochs": 2, "eval_every_tokens": 20_000} if check.tiny else {}
    gpu = "cpu" if check.tiny else "cuda"
    return {
        "cpu fp32 (reference)": check.base(**tiny, device="cpu", compile="off", threads=1 if check.tiny else 4),
        f"{gpu} fp32, eager": check.base(**tiny, device=gpu, compile="off", precision="fp32"),
        f"{gpu} default precision, eager": check.base(**tiny, device=gpu, compile="off"),
        f"{gpu} default precision, compiled": check.base(**tiny, device=gpu, compile="on"),
    }


def section_fidelity(check: Check, reference: list[subprocess.Popen]) -> str:
    """target_val_loss of the example trial per device/precision/compile against fp32 on the CPU."""
    configs = fidelity_configs(check)
    names = list(configs)
    if check.tiny and not check.args.tiny_compile:
        names.remove(names[-1])
    ref = collect(reference, check.left())[0]
    results = {names[0]: ref[0] if ref else {"error": "the CPU reference did not finish"}}
    for name in names[1:]:
        start = time.time()
        speed = _gpu.steady_speed(configs[name])
        results[name] = {**speed.final, "t0": start, "t1": time.time(), "notes": "; ".join(speed.notes)}
    ref_loss = results[names[0]].get("target_val_loss")
    rows = []
    for name in names:
        r = results[name]
        if "error" in r:
            rows.append([name, r["error"], "", "", "", ""])
            continue
        delta = f"{r['target_val_loss'] - ref_loss:+.4f}" if ref_loss is not None else "-"
        wall = f"{r['t1'] - r['t0']:.1f}"
        rows.append([name, f"{r['target_val_loss']:.4f}", delta, f"{r['train_loss']:.4f}", wall, r.get("notes", "")])
    cfg = configs[names[0]]
    title = (
        f"fidelity: the example trial (w{cfg.model.width} d{cfg.model.depth}, U={cfg.budget.unique_tokens:,}, "
        f"E={cfg.budget.epochs:g}, r={cfg.budget.mix_ratio:g}, {cfg.budget.total_tokens:,} tokens)"
    )
    return _gpu.table(title, ["run", "target_val_loss", "vs CPU fp32", "train_loss", "wall s", "notes"], rows)


def section_sweep(check: Check) -> str:
    """lr x width, μP and SP: the example trial at each width (base width: the smallest), in parallel processes."""
    widths = (32, 64) if check.tiny else (128, 256, 512, 1024)
    mults = (0.5, 2.0) if check.tiny else LR_MULTIPLIERS
    tiny = {"budget.unique_tokens": 8_000, "budget.epochs": 1, "eval_every_tokens": 8_000} if check.tiny else {}
    base = check.base(**tiny, compile="off")
    lines = {}
    for param in ("mup", "sp"):
        for width in widths:
            over = {"model.width": width, "model.base_width": widths[0], "model.parametrization": param}
            lrs = [base.optim.learning_rate * m for m in mults]
            lines[param, width] = [_gpu.with_overrides(base, {**over, "optim.learning_rate": lr}) for lr in lrs]
    # A process per line on a GPU (8 at once); on CPU (tiny) one per parametrisation: start-up dominates there.
    groups = [[(p, w) for w in widths] for p in ("mup", "sp")] if check.tiny else [[key] for key in lines]
    specs = [{"configs": [c.model_dump() for key in group for c in lines[key]]} for group in groups]
    timeout = min(300.0, check.left())
    results = {}
    for group, done in zip(groups, collect(spawn(specs, check.scratch, timeout), timeout), strict=True):
        for i, key in enumerate(group):
            results[key] = done[i * len(mults) : (i + 1) * len(mults)]
    rows, best = [], {}
    for param in ("mup", "sp"):
        for j, m in enumerate(mults):
            cells = [_loss(results[param, w], j) for w in widths]
            rows.append([param, f"{base.optim.learning_rate * m:.2e}", *(f"{c:.4f}" for c in cells)])
        for w in widths:
            losses = [_loss(results[param, w], j) for j in range(len(mults))]
            best[param, w] = min(range(len(mults)), key=losses.__getitem__)
    for param in ("mup", "sp"):
        steps = [best[param, w] for w in widths]
        rows.append([param, "best lr", *(f"{base.optim.learning_rate * mults[s]:.2e}" for s in steps)])
        rows.append([param, "drift (2x steps)", str(max(steps) - min(steps)), *[""] * (len(widths) - 1)])
    title = (
        f"lr x width: example trial, final target_val_loss (μP transfers if its drift <= 1), depth {base.model.depth}"
    )
    return _gpu.table(title, ["param", "lr", *(f"w{w}" for w in widths)], rows)


def _loss(results: list[dict], j: int) -> float:
    r = results[j] if j < len(results) else {}
    return r.get("target_val_loss", float("inf"))


def section_coord(check: Check) -> str:
    """Activation-scale slopes vs width over the first steps (trainer/coord_check.py), μP and SP."""
    try:
        from trainer.coord_check import coord_check, width_slopes
    except ImportError as e:
        return f"\n### coordinate check\n\nskipped: {e} (benchmarks/prepare_gpu_carry.sh carries pandas)\n"
    widths = (32, 64) if check.tiny else (128, 256, 512, 1024)
    config = check.base(threads=min(8, os.cpu_count() or 1), **{"model.base_width": widths[0]})
    slopes = width_slopes(coord_check(config, widths, steps=2 if check.tiny else 4))
    last = slopes[slopes.t == slopes.t.max()]
    rows = [[p, m, f"{s:+.2f}"] for p, m, s in last[["parametrization", "module", "slope"]].itertuples(index=False)]
    title = f"coordinate check (CPU), widths {widths}: slope of log mean|x| vs log width at step {last.t.max()}"
    return _gpu.table(title + " (μP: ~0; SP: grows)", ["param", "module", "slope"], rows)


def section_tests(check: Check) -> str:
    """The test suite's CUDA tests (they skip without a GPU), where pytest is installed or carried."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-o",
        "filterwarnings=",
    ]
    # automix.resources imports no Ray: the packing test runs where only the trainer's needs are installed
    command += ["-rs", "-k", "cuda", "tests/trainer/test_compile.py", "tests/trainer/test_train.py"]
    command += ["tests/resources/test_packing.py"]
    try:
        done = subprocess.run(command, cwd=_gpu.ROOT, capture_output=True, text=True, timeout=check.left())
    except subprocess.TimeoutExpired:
        return "\n### CUDA tests\n\nstopped: out of time\n"
    tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
    return "\n### CUDA tests (pytest -k cuda)\n\n```\n" + "\n".join(tail) + "\n```\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--data", default=str(_gpu.ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "automix-gpu-check-cache"))
    parser.add_argument("--budget-s", type=float, default=420, help="wall-clock budget from --start")
    parser.add_argument("--start", type=float, default=None, help="epoch seconds the budget counts from")
    parser.add_argument("--out", default=None, help="write the Markdown report here as it grows")
    parser.add_argument("--tiny-compile", action="store_true", help="cpu: include the compiled variants")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible (DEVICE=cpu runs the tiny CPU mode)")
    check = Check(args)
    reference = spawn([{"configs": [next(iter(fidelity_configs(check).values())).model_dump()]}], check.scratch, 600)
    check.emit(f"## automix GPU check ({'tiny CPU mode' if check.tiny else 'GPU'})\n\n{_gpu.machine()}\n")
    compiles = args.device == "cuda" or args.tiny_compile
    check.section("ours vs HF, eager", 20 if check.tiny else 60, lambda: section_150m(check, False))
    if compiles:
        check.section("ours vs HF, compiled", 60 if check.tiny else 150, lambda: section_150m(check, True))
    check.section("packing", 20 if check.tiny else 110, lambda: section_packing(check))
    check.section("fidelity", 10 if check.tiny else 50, lambda: section_fidelity(check, reference))
    check.section("CUDA tests", 15 if check.tiny else 60, lambda: section_tests(check))
    check.section("lr x width sweep", 20 if check.tiny else 80, lambda: section_sweep(check))
    check.section("coordinate check", 10 if check.tiny else 25, lambda: section_coord(check))
    for p in reference:
        p.kill()  # still running only if the fidelity section was skipped


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        worker(sys.argv[2])
    else:
        main()
