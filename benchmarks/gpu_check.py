"""rwthlm_py on a CUDA GPU, checked and measured in one run (benchmarks/gpu_check.sh).

    PYTHONPATH=. python benchmarks/gpu_check.py --json gpu_check.json

Runs from the checkout with nothing installed beyond cupy, numpy and pytest (torch is
optional), in about five minutes, and writes one JSON file and a summary:

 1. the device, CUDA and cupy facts, and whether TF32 is in use (it is not, unless
    CUPY_TF32=1 is set; PyTorch's cuDNN is held to full float32 alike);
 2. `pytest -m gpu`: every fused kernel against its numpy body (float64 to 1e-12, float32
    to 1e-5), a network's log p, state and gradients against numpy, 20 identical-seed
    training batches whose float64 parameters agree with numpy's to 1e-9, and the tests
    that run on every backend;
 3. the built-in gradient self-test on cupy in float64 (every layer type);
 4. words/s of training (momentum 0.9) for 1x200 and 2x650 LSTMs at B=64, T=35,
    V=10,000 with 100 frequency-binned classes, and of scoring at B=64 and B=1, after
    warm-up; with --counts, each with the kernel launches and waits of one batch (counted
    on the strict cupy double with the CUDA kernels run on the CPU, about 20 s a case on
    two cores, which is why they are off by default: benchmarks/device_counts.py prints
    them on any machine without spending the GPU's time);
 5. where PyTorch is importable, torch.nn.LSTM (cuDNN) of the same sizes with a full
    softmax, timed in the same run, and the ratio;
 6. the host's time per 2x650 training batch (B=64, T=35): from the call of train_batch
    to its return, the device idle at the start and not waited for at the end (the loss
    stays on the device), the fastest of 10 batches after warm-up, beside the whole
    batch's time with the device's work (benchmarks/device_counts.py gives the same
    figure without a GPU, on the strict double without arithmetic: the host's work minus
    cupy's own cost per call, which only this measures).

`--backend numpy` runs steps 4 and 5 on the CPU instead (a dry run of this script on a
machine without a GPU). Without cupy or a device it says so and exits with status 2.
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import numpy
from common import MODELS, benchmark_vocabulary, synthetic_batches, zipf_stream

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import cupy_device_count, get_backend
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import train_batch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

CASES = [("1x200", "train", 64), ("2x650", "train", 64), ("1x200", "score", 64), ("2x650", "score", 64),
         ("1x200", "score", 1), ("2x650", "score", 1)]
STEPS, VOCAB, CLASSES = 35, 10000, 100


def main():
    args = parse_arguments()
    started = time.perf_counter()
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node()}
    if args.backend == "cupy" and cupy_device_count() == 0:
        print("no GPU: cupy is not importable or sees no CUDA device; nothing was measured")
        return 2
    backend = get_backend(args.backend, "float32")
    report["device"] = device_facts(backend)
    print(f"device: {report['device']['description']}")
    if args.backend == "cupy" and not args.skip_tests:
        report["pytest_gpu"] = run_command([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                                            str(ROOT / "tests")], timeout=args.test_timeout)
        print(f"pytest -m gpu: {report['pytest_gpu']['last_line']}")
        report["selftest"] = run_command([sys.executable, "-m", "rwthlm_py", "selftest", "--backend", "cupy"],
                                         timeout=args.test_timeout)
        print(f"selftest on cupy (float64): {report['selftest']['last_line']}")
    report["speed"] = [measure_case(backend, model, mode, batch_size, args) for model, mode, batch_size in CASES]
    report["host_time"] = host_time(backend)
    print(f"  {describe_host_time(report['host_time'])}", flush=True)
    report["pytorch"] = pytorch_cases(args) if args.pytorch else []
    report["summary"] = summary_lines(report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    for line in report["summary"]:
        print(line)
    print(f"took {report['seconds']} s")
    if args.json:
        path = pathlib.Path(args.json)
        temporary = path.with_name(path.name + ".part")
        temporary.write_text(json.dumps(report, indent=2) + "\n")
        temporary.replace(path)
        print(f"wrote {path}")
    failed = any(report.get(name, {}).get("returncode", 0) != 0 for name in ("pytest_gpu", "selftest"))
    return 1 if failed else 0


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the report to this file")
    parser.add_argument("--backend", choices=("cupy", "numpy"), default="cupy")
    parser.add_argument("--batches", type=int, default=10, help="batches per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-tests", action="store_true", help="only the speed figures")
    parser.add_argument("--test-timeout", type=int, default=120,
                        help="seconds for pytest -m gpu, and for the self-test")
    parser.add_argument("--pytorch", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--counts", action=argparse.BooleanOptionalAction, default=False,
                        help="also count the launches of a batch of each case on the strict double, on the CPU "
                             "(needs g++; benchmarks/device_counts.py does it without a GPU)")
    return parser.parse_args()


def device_facts(backend):
    facts = {"description": backend.describe(), "python": platform.python_version(), "numpy": numpy.__version__}
    if backend.on_host:
        return facts
    cupy = backend.xp
    properties = cupy.cuda.runtime.getDeviceProperties(backend.device_id)
    name = properties["name"]
    facts.update({
        "name": name.decode() if isinstance(name, bytes) else name,
        "compute_capability": f"{properties['major']}.{properties['minor']}",
        "memory_gib": round(properties["totalGlobalMem"] / 2 ** 30, 1),
        "multiprocessors": properties["multiProcessorCount"],
        "cupy": cupy.__version__,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "tf32": os.environ.get("CUPY_TF32", "0") == "1",
    })
    return facts


def run_command(command, timeout):
    """Runs a check from the checkout (PYTHONPATH=.); its status and last line."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as timed_out:
        output = (timed_out.stdout or b"").decode() if isinstance(timed_out.stdout, bytes) else (timed_out.stdout or "")
        return {"command": " ".join(command), "returncode": 124, "last_line": f"timed out after {timeout} s",
                "tail": output[-4000:]}
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return {"command": " ".join(command), "returncode": done.returncode,
            "last_line": lines[-1] if lines else "", "tail": "\n".join(lines[-40:])}


def measure_case(backend, model, mode, batch_size, args):
    """words/s of one case (the fastest of the repeats, after two batches of warm-up)."""
    hidden, layers = MODELS[model]
    vocab = benchmark_vocabulary(VOCAB, CLASSES)
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab, backend, seed=1)
    optimizer = Sgd(network, momentum=0.9)
    batches = synthetic_batches(vocab, batch_size, STEPS, args.batches)

    def work():
        for batch in batches:
            if mode == "train":  # the loss left on the device, as the training loop leaves it
                train_batch(network, optimizer, batch, None, 1e-3, read_loss=False)
            else:
                float(backend.to_numpy(network.log_probs(batch)[0]).sum())

    seconds = best_seconds(work, backend, args.repeats)
    words = sum(batch.num_targets for batch in batches)
    record = {"model": model, "mode": mode, "batch": batch_size, "steps": STEPS, "vocab": VOCAB, "classes": CLASSES,
              "words_per_second": round(words / seconds), "ms_per_batch": round(1000 * seconds / len(batches), 3)}
    if args.counts:
        record.update(launch_counts(model, mode, batch_size))
    print(f"  {describe_case(record)}", flush=True)
    return record


def best_seconds(work, backend, repeats, warm_up=2):
    synchronize = (lambda: None) if backend.on_host else backend.xp.cuda.Device(backend.device_id).synchronize
    for _ in range(warm_up):
        work()
    synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def host_time(backend, model="2x650", batch_size=64, batches=10, warm_up=3):
    """The host's time per training batch (the fastest of `batches` after `warm_up`):
    train_batch from call to return, the device idle at the call; and the whole batch,
    waited for."""
    hidden, layers = MODELS[model]
    vocab = benchmark_vocabulary(VOCAB, CLASSES)
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab, backend, seed=1)
    optimizer = Sgd(network, momentum=0.9)
    synchronize = (lambda: None) if backend.on_host else backend.xp.cuda.Device(backend.device_id).synchronize
    host, whole = float("inf"), float("inf")
    for number, batch in enumerate(synthetic_batches(vocab, batch_size, STEPS, warm_up + batches)):
        synchronize()
        started = time.perf_counter()
        train_batch(network, optimizer, batch, None, 1e-3, read_loss=False)
        returned = time.perf_counter()
        synchronize()
        if number >= warm_up:
            host, whole = min(host, returned - started), min(whole, time.perf_counter() - started)
    return {"model": model, "batch": batch_size, "steps": STEPS, "vocab": VOCAB, "classes": CLASSES,
            "host_ms_per_batch": round(1000 * host, 3), "ms_per_batch": round(1000 * whole, 3)}


def describe_host_time(record):
    return (f"{record['model']} train B={record['batch']}: the host's time {record['host_ms_per_batch']:.2f} ms "
            f"a batch (the whole batch {record['ms_per_batch']:.2f} ms)")


def launch_counts(model, mode, batch_size):
    from device_counts import count_one_batch

    from rwthlm_py.testing import cuda_on_cpu

    if cuda_on_cpu.compiler() is None:
        return {"launches_per_batch": None, "counts_note": "no C++ compiler to run the CUDA kernels on the CPU"}
    counts = count_one_batch(model, mode, batch_size, STEPS, VOCAB, CLASSES)
    return {"launches_per_batch": counts.total("launches"), "waits_per_batch": counts.total("waits"),
            "operand_copies_per_batch": counts.total("operand_copies")}


def describe_case(record):
    counted = ""
    if record.get("launches_per_batch") is not None:
        counted = f", {record['launches_per_batch']} launches and {record['waits_per_batch']} waits a batch"
    return (f"{record['model']} {record['mode']:5s} B={record['batch']:<3d}: {record['words_per_second']:>10,} words/s "
            f"({record['ms_per_batch']:.2f} ms a batch{counted})")


def pytorch_cases(args):
    """torch.nn.LSTM (cuDNN) with a full softmax, same sizes, where PyTorch is importable."""
    try:
        import torch
    except Exception as error:  # noqa: BLE001 - PyTorch is optional
        print(f"PyTorch not importable ({type(error).__name__}); no cuDNN comparison")
        return []
    device = "cuda" if args.backend == "cupy" else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    records = []
    for model, mode, batch_size in CASES:
        records.append(time_pytorch(torch, device, model, mode, batch_size, args))
        print(f"  PyTorch {describe_case(records[-1])}", flush=True)
    return records


def time_pytorch(torch, device, model, mode, batch_size, args):
    hidden, layers = MODELS[model]
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(VOCAB, hidden).to(device)
    lstm = torch.nn.LSTM(hidden, hidden, num_layers=layers).to(device)
    output = torch.nn.Linear(hidden, VOCAB).to(device)
    parameters = list(embedding.parameters()) + list(lstm.parameters()) + list(output.parameters())
    optimizer = torch.optim.SGD(parameters, lr=1e-3, momentum=0.9)
    stream = zipf_stream(VOCAB, (STEPS + 1) * batch_size * args.batches).astype("int64")
    data = torch.from_numpy(stream).view(args.batches, STEPS + 1, batch_size).to(device)

    def work():
        for k in range(args.batches):
            if mode == "train":
                optimizer.zero_grad()
                states, _ = lstm(embedding(data[k, :-1]))
                loss = torch.nn.functional.cross_entropy(output(states).view(-1, VOCAB), data[k, 1:].reshape(-1),
                                                         reduction="sum")
                loss.backward()
                optimizer.step()
                loss.item()
            else:
                with torch.no_grad():
                    states, _ = lstm(embedding(data[k, :-1]))
                    log_probs = torch.log_softmax(output(states), dim=-1)
                    log_probs.gather(-1, data[k, 1:].unsqueeze(-1)).sum().item()

    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(2):
        work()
    synchronize()
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        work()
        synchronize()
        best = min(best, time.perf_counter() - start)
    words = STEPS * batch_size * args.batches
    return {"model": model, "mode": mode, "batch": batch_size, "steps": STEPS, "vocab": VOCAB,
            "output": "full softmax", "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version() if device == "cuda" else None,
            "words_per_second": round(words / best), "ms_per_batch": round(1000 * best / args.batches, 3)}


def summary_lines(report):
    lines = [f"device: {report['device']['description']}"]
    for name in ("pytest_gpu", "selftest"):
        if name in report:
            lines.append(f"{name}: {'passed' if report[name]['returncode'] == 0 else 'FAILED'} "
                         f"({report[name]['last_line']})")
    theirs = {(r["model"], r["mode"], r["batch"]): r for r in report["pytorch"]}
    for record in report["speed"]:
        line = describe_case(record)
        other = theirs.get((record["model"], record["mode"], record["batch"]))
        if other:
            ratio = record["words_per_second"] / other["words_per_second"]
            record["ratio_to_pytorch"] = round(ratio, 3)
            line += f" | PyTorch {other['words_per_second']:,} words/s, {ratio:.2f}x"
        lines.append(line)
    if report.get("host_time"):
        lines.append(describe_host_time(report["host_time"]))
    return lines


if __name__ == "__main__":
    sys.exit(main())
