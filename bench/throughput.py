"""What the throughput benchmarks share: their command-line settings, the in-memory random data, the
timed Lightning run and the timed plain-PyTorch loop, the GAN's plain training step, and the table of
repeats (alternating which contender goes first) with medians, machine, load and the command line.

Measured: real images per second over `--batches` training batches, after `--warmup` untimed
batches. The ratio Lightning / plain is the share of plain-PyTorch speed the framework keeps
(1.0 = no overhead). Both contenders build the same networks from the same seed, read the same
data through the same sampler, and run on the same device in the same process.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from lightning_dgm.callbacks import CompileNetworks
from lightning_dgm.callbacks.speed import retain_freed_memory
from lightning_dgm.datamodules import ImageDataModule, TensorImageDataset
from lightning_dgm.datamodules.base import keep_batch
from lightning_dgm.types import ImageBatch, to_signed_unit

SEED = 0


def add_common_args(parser: argparse.ArgumentParser, batches: int, warmup: int) -> None:
    """The settings every throughput benchmark takes."""
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=batches, help="timed training batches per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed batches before the timed ones")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks (both contenders)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager: a quick check)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--retain-freed-memory",
        action="store_true",
        help="glibc keeps freed host memory for reuse (the RetainFreedMemory callback; process-wide: both contenders)",
    )
    parser.add_argument(
        "--on-device",
        action="store_true",
        help="data on the device, batches sliced there: Lightning through a datamodule with on_device, plain by hand",
    )


def quiet() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


def random_loader(args: argparse.Namespace, image_shape: Sequence[int], size: int) -> DataLoader:
    """`size` random uint8 images of `image_shape` (more if the run needs them) held in memory (pixel
    values do not change the speed of these networks), served as the datamodules serve them: whole
    batches from `__getitems__`, shuffled by a DistributedSampler (the base of their EpochSampler)."""
    n = max(size, (args.warmup + args.batches) * args.batch_size)
    images = torch.randint(0, 256, (n, *image_shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(SEED))
    dataset = TensorImageDataset(images, torch.zeros(n, dtype=torch.long))
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=SEED)
    return DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True, collate_fn=keep_batch)


class InMemoryImages(ImageDataModule):
    """An image datamodule over given uint8 images, for `--on-device` (the Trainer side)."""

    def __init__(self, images: Tensor, batch_size: int, on_device: bool = True) -> None:
        super().__init__(batch_size=batch_size, seed=SEED, on_device=on_device)
        self.images = images

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def load_train(self) -> tuple[Tensor, Tensor]:
        return self.images, torch.zeros(len(self.images), dtype=torch.long)


class DeviceSlices:
    """`--on-device` for the plain loop: the loader's images moved to `device` once, batches sliced
    there in its sampler's order."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.sampler, self.batch_size = loader.sampler, loader.batch_size
        self.images = loader.dataset.images.to(device)

    def __iter__(self):
        index = torch.as_tensor(list(self.sampler)).to(self.images.device)
        for start in range(0, len(index) - self.batch_size + 1, self.batch_size):
            yield ImageBatch(to_signed_unit(self.images[index[start : start + self.batch_size]]), None)


def training_data(args: argparse.Namespace, image_shape: Sequence[int], size: int, device: torch.device, trainer: bool):
    """What a contender trains on: the DataLoader of `random_loader`, or with `--on-device` the same
    images on the device (a datamodule with `on_device` for the Trainer, `DeviceSlices` for the plain loop)."""
    loader = random_loader(args, image_shape, size)
    if not getattr(args, "on_device", False):
        return loader
    return InMemoryImages(loader.dataset.images, args.batch_size) if trainer else DeviceSlices(loader, device)


def variant(args: argparse.Namespace) -> str:
    """The title's words for the switches that are on."""
    switches = {
        "compiled": args.compile,
        "data on device": args.on_device,
        "freed memory retained": args.retain_freed_memory,
    }
    return "".join(f", {name}" for name, on in switches.items() if on)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BatchTimer(L.Callback):
    """Times from the start of batch `first` (already fetched and on device) to the end of `last`."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last, self.seconds = first, last, float("nan")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.first:
            sync(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.last:
            sync(pl_module.device)
            self.seconds = time.perf_counter() - self.start


def run_lightning(model: L.LightningModule, loader, args, device: torch.device, callbacks: Sequence = ()) -> float:
    """Images per second of `model` under `L.Trainer` (with `callbacks` too; a progress bar among them
    is shown, none otherwise) over the timed batches."""
    total = args.warmup + args.batches
    timer = BatchTimer(args.warmup, total - 1)
    callbacks = [timer, *callbacks] + ([CompileNetworks(backend=args.compile_backend)] if args.compile else [])
    bar = any(isinstance(callback, ProgressBar) for callback in callbacks)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision=args.precision,
        # max_steps would count optimizer steps (2 per batch for a GAN): limit batches instead.
        max_epochs=1, limit_train_batches=total, limit_val_batches=0, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=bar, enable_model_summary=False,
        callbacks=callbacks,
    )  # fmt: skip
    if isinstance(loader, L.LightningDataModule):
        trainer.fit(model, datamodule=loader)
    else:
        trainer.fit(model, train_dataloaders=loader)
    return args.batches * args.batch_size / timer.seconds


def autocast(args: argparse.Namespace, device: torch.device):
    """What the Trainer's precision plugin wraps a training step in."""
    if args.precision == "bf16-mixed":
        return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
    return nullcontext


def run_plain(step: Callable[[Tensor, int], None], loader, args: argparse.Namespace, device: torch.device) -> float:
    """Images per second of a hand-written loop calling `step(real, batch_idx)` over the timed batches."""
    total = args.warmup + args.batches
    loader.sampler.set_epoch(0)  # as Lightning does at each epoch start
    start = None
    for batch_idx, batch in enumerate(loader):
        if batch_idx == total:
            break
        real = batch.image.to(device)
        if batch_idx == args.warmup:
            sync(device)
            start = time.perf_counter()
        step(real, batch_idx)
    sync(device)
    return args.batches * args.batch_size / (time.perf_counter() - start)


def plain_networks(args: argparse.Namespace, device: torch.device, *networks: nn.Module) -> tuple[nn.Module, ...]:
    """The networks on `device`, compiled in place as CompileNetworks does when `--compile` is on."""
    moved = tuple(net.to(device) for net in networks)
    if args.compile:
        for net in moved:
            net.compile(backend=args.compile_backend)
    return moved


def plain_gan_step(
    generator: nn.Module, discriminator: nn.Module, loss, noise, latent_dim: int, args, device
) -> Callable[[Tensor, int], None]:
    """The GAN system's training step written out in plain PyTorch: one G forward shared by the D and
    G steps, Adam(2e-4, (0.5, 0.999)), D frozen in the G step, z from a generator reseeded every step."""
    generator, discriminator = plain_networks(args, device, generator, discriminator)
    g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    rng = torch.Generator(device=device)
    base = int(os.environ.get("PL_GLOBAL_SEED", SEED))
    context = autocast(args, device)

    def step(real: Tensor, batch_idx: int) -> None:
        # Reseeded per step like the systems' random streams, so the RNG cost matches.
        rng.manual_seed(hash((base, 0, 2 * batch_idx)) & 0x7FFF_FFFF_FFFF_FFFF)
        with context():
            fake = generator(noise.sample((len(real), latent_dim), generator=rng, device=device))
            d_loss = loss.d_loss(discriminator(real), discriminator(fake.detach()))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            # Frozen D in the G step, as the system does: no D weight gradients.
            discriminator.requires_grad_(False)
            g_loss = loss.g_loss(discriminator(fake))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            discriminator.requires_grad_(True)

    return step


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}), os.cpu_count()={os.cpu_count()}, torch threads={torch.get_num_threads()}"


def page_faults(run: Callable[[], float]) -> tuple[float, int]:
    """`run()` and the minor page faults (fresh pages from the kernel) it took."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    value = run()
    return value, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def compare(
    title: str,
    lightning: Callable[[], float],
    plain: Callable[[], float],
    args: argparse.Namespace,
) -> tuple[float, float, float]:
    """Runs `args.repeats` pairs, alternating which goes first; prints a markdown table and the
    medians; returns the medians (Lightning img/s, plain img/s, ratio)."""
    print(f"\n{title}\n")
    print("| repeat | Lightning img/s | plain PyTorch img/s | ratio (Lightning / plain) |")
    print("|---:|---:|---:|---:|")
    rows, faults = [], []
    for repeat in range(args.repeats):
        # Alternate the order so drift (thermals, a busy neighbour) does not favour one side.
        order = (lightning, plain) if repeat % 2 == 0 else (plain, lightning)
        result = {fn: page_faults(fn) for fn in order}
        (lit, lit_faults), (pla, pla_faults) = result[lightning], result[plain]
        rows.append((lit, pla, lit / pla))
        faults.append((lit_faults, pla_faults))
        print(f"| {repeat + 1} | {lit:,.0f} | {pla:,.0f} | {lit / pla:.3f} |", flush=True)
    medians = tuple(statistics.median(col) for col in zip(*rows))
    print(f"\nMedian: Lightning {medians[0]:,.0f} img/s, plain PyTorch {medians[1]:,.0f} img/s, ratio {medians[2]:.3f}")
    if len(rows) >= 4:  # how far apart the repeats are: on a shared machine, wide
        low, _, high = statistics.quantiles([row[2] for row in rows], n=4)
        print(f"Quartiles of the ratio over the repeats: {low:.3f} to {high:.3f}")
    batches = args.warmup + args.batches
    lit_faults, pla_faults = (statistics.median(col) / batches for col in zip(*faults))
    print(f"Minor page faults a batch (median; set-up included): Lightning {lit_faults:,.0f}, plain {pla_faults:,.0f}")
    return medians


def setup(args: argparse.Namespace) -> torch.device:
    quiet()
    torch.set_num_threads(args.threads)
    if getattr(args, "retain_freed_memory", False):
        retain_freed_memory()
    L.seed_everything(SEED, verbose=False)
    return torch.device(args.device)


def report(args: argparse.Namespace, device: torch.device, load_before: float) -> None:
    """The command that reproduces the run, the machine, the versions and the load."""
    script = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "bench/..."
    flags = []
    for key, value in vars(args).items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool) or value is None:
            flags += [flag] if value is True else []
        else:
            flags.append(f"{flag} {value}")
    print(f"\nReproduce: python {script} {' '.join(flags)}")
    versions = f"torch {torch.__version__}, lightning {L.__version__}"
    print(f"Device: {machine(device)}; {versions}, precision {getattr(args, 'precision', '32-true')}")
    print(f"Load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after (this run adds ~1-2)")
