"""Both throughput benchmarks on a GPU, in fp32, bf16-mixed, compiled (torch.compile of the
networks, fp32) and with the data on the device (fp32, `data.on_device`), written as one markdown
table with the device, torch and CUDA versions, the date, the load and the command.

    python bench/gpu.py [--out bench/gpu_results.md]

On a machine without a CUDA GPU it stops with one line. `--device cpu` runs the same pieces on the
CPU, for checking the script (the test suite does: `--device cpu --batches 2 --compile-backend eager`).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conv_throughput  # noqa: E402
import lightning as L  # noqa: E402
import train_throughput  # noqa: E402

#: variant -> (precision, flags)
VARIANTS = {
    "fp32": ("32-true", []),
    "bf16": ("bf16-mixed", []),
    "compile": ("32-true", ["--compile"]),
    "on_device": ("32-true", ["--on-device"]),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--batches", type=int, default=None, help="timed batches per repeat (default: each benchmark's)")
    p.add_argument("--warmup", type=int, default=None, help="untimed batches (default: each benchmark's; compile: 20)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mlp-batch-sizes", default="64,256")
    p.add_argument("--conv-batch-size", type=int, default=128)
    p.add_argument("--conv-models", default="dcgan,vae", help="conv_throughput.py's --models")
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument("--out", default=None, help="also write the table to this file")
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: no CUDA GPU is visible (torch.cuda.is_available() is False); nothing was run")
    load_before = os.getloadavg()[0]
    rows = []
    for variant in args.variants.split(","):
        precision, flags = VARIANTS[variant]
        compiled = "--compile" in flags
        common = ["--device", args.device, "--precision", precision, "--repeats", str(args.repeats), *flags]
        common += ["--compile-backend", args.compile_backend] if compiled else []
        for flag, value in (("--batches", args.batches), ("--warmup", args.warmup or (20 if compiled else None))):
            common += [flag, str(value)] if value is not None else []
        for batch in args.mlp_batch_sizes.split(","):
            medians = train_throughput.main([*common, "--batch-size", batch])
            rows.append(("MLP GAN (train_throughput.py)", batch, variant, *medians))
        conv = ["--batch-size", str(args.conv_batch_size), "--models", args.conv_models]
        results = conv_throughput.main([*common, *conv])
        for name, medians in results.items():
            title = conv_throughput.MODELS[name][0]
            rows.append((f"{title} (conv_throughput.py)", str(args.conv_batch_size), variant, *medians))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    lines = [
        f"{datetime.date.today()}, {where}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"lightning {L.__version__}; 1-minute load {load_before:.2f} before the run; "
        f"medians of {args.repeats} repeats.",
        "",
        f"    python bench/gpu.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip(),
        "",
        "| benchmark | batch | variant | Lightning img/s | plain PyTorch img/s | ratio |",
        "|---|---:|---|---:|---:|---:|",
        *(f"| {b} | {n} | {v} | {lit:,.0f} | {pla:,.0f} | {r:.3f} |" for b, n, v, lit, pla, r in rows),
    ]
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        with open(args.out, "w") as file:
            file.write(table + "\n")
    return table


if __name__ == "__main__":
    run()
