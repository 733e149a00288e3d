"""GAN training throughput: the Lightning `GAN` system under `L.Trainer` vs a plain PyTorch loop.

Both contenders train the same MLP GAN (MLPGenerator / MLPDiscriminator, NonSaturating loss,
Gaussian noise from a generator reseeded every step, Adam 2e-4 / (0.5, 0.999), one G forward
shared by the D and G steps) from the same DataLoader, on the same device, in one process.
Measured: real images per second over `--batches` training batches, after `--warmup` untimed
batches; repeats alternate which contender runs first. The ratio Lightning / plain is the
share of plain-PyTorch speed the framework keeps (1.0 = no overhead).

The data is random uint8 of MNIST shape (1x28x28) held in memory, so nothing is downloaded;
pixel values do not affect the speed of these dense networks. The plain loop does no logging:
the cost of the system's `self.log` calls counts as Lightning's.

    python bench/train_throughput.py [--batch-size 64 --batches 300 --repeats 5 --device cpu]
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import statistics
import time
import warnings
from contextlib import nullcontext

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler

from lightning_dgm.datamodules import TensorImageDataset
from lightning_dgm.datamodules.base import keep_batch
from lightning_dgm.losses import NonSaturating
from lightning_dgm.models import GAN
from lightning_dgm.nets.mlp import MLPDiscriminator, MLPGenerator
from lightning_dgm.nets.noise import GaussianNoise

SEED = 0
IMAGE_SHAPE = (1, 28, 28)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=300, help="timed training batches per repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=20, help="untimed batches before the timed ones")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    p.add_argument("--latent-dim", type=int, default=100)
    p.add_argument("--hidden", default="256,512", help="G's hidden widths; D uses them reversed")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    return p.parse_args()


def make_loader(args: argparse.Namespace) -> DataLoader:
    n = max(60_000, (args.warmup + args.batches) * args.batch_size)
    images = torch.randint(0, 256, (n, *IMAGE_SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(SEED))
    dataset = TensorImageDataset(images, torch.zeros(n, dtype=torch.long))
    # The sampler the datamodules use, so both contenders shuffle the same way.
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=SEED)
    return DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True, collate_fn=keep_batch)


def make_nets(args: argparse.Namespace) -> tuple[MLPGenerator, MLPDiscriminator]:
    hidden = [int(w) for w in args.hidden.split(",")]
    torch.manual_seed(SEED)
    return (
        MLPGenerator(args.latent_dim, hidden, IMAGE_SHAPE),
        MLPDiscriminator(IMAGE_SHAPE, hidden[::-1]),
    )


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


def run_lightning(args: argparse.Namespace, device: torch.device) -> float:
    generator, discriminator = make_nets(args)
    adam = functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
    model = GAN(generator, discriminator, NonSaturating(), GaussianNoise(), g_optimizer=adam, d_optimizer=adam)
    total = args.warmup + args.batches
    timer = BatchTimer(args.warmup, total - 1)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision=args.precision,
        # max_steps would count optimizer steps (2 per batch): limit batches instead.
        max_epochs=1, limit_train_batches=total, limit_val_batches=0, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[timer],
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=make_loader(args))
    return args.batches * args.batch_size / timer.seconds


def run_plain(args: argparse.Namespace, device: torch.device) -> float:
    generator, discriminator = (net.to(device) for net in make_nets(args))
    g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loss, noise = NonSaturating(), GaussianNoise()
    rng = torch.Generator(device=device)
    base = int(os.environ.get("PL_GLOBAL_SEED", SEED))
    autocast = (
        functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
        if args.precision == "bf16-mixed" else nullcontext
    )  # fmt: skip
    total, step = args.warmup + args.batches, 0
    loader = make_loader(args)
    loader.sampler.set_epoch(0)  # as Lightning does at each epoch start
    for batch_idx, batch in enumerate(loader):
        if batch_idx == total:
            break
        real = batch.image.to(device)
        if batch_idx == args.warmup:
            sync(device)
            start = time.perf_counter()
        # Reseeded per step like AdversarialSystem.noise_generator, so the RNG cost matches.
        rng.manual_seed(hash((base, 0, step)) & 0x7FFF_FFFF_FFFF_FFFF)
        with autocast():
            fake = generator(noise.sample((len(real), args.latent_dim), generator=rng, device=device))
            d_loss = loss.d_loss(discriminator(real), discriminator(fake.detach()))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            # Frozen D in the G step, as Lightning's toggled_optimizer does: no D weight grads.
            discriminator.requires_grad_(False)
            g_loss = loss.g_loss(discriminator(fake))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            discriminator.requires_grad_(True)
        step += 2  # one D and one G optimizer step, like trainer.global_step
    sync(device)
    return args.batches * args.batch_size / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    L.seed_everything(SEED, verbose=False)
    device = torch.device(args.device)

    load_before = os.getloadavg()  # the 1-minute load before this benchmark adds its own
    print("| repeat | Lightning img/s | plain PyTorch img/s | ratio (Lightning / plain) |")
    print("|---:|---:|---:|---:|")
    rows = []
    for repeat in range(args.repeats):
        # Alternate the order so drift (thermals, a busy neighbour) does not favour one side.
        order = (run_lightning, run_plain) if repeat % 2 == 0 else (run_plain, run_lightning)
        result = {fn: fn(args, device) for fn in order}
        lit, plain = result[run_lightning], result[run_plain]
        rows.append((lit, plain, lit / plain))
        print(f"| {repeat + 1} | {lit:,.0f} | {plain:,.0f} | {lit / plain:.3f} |", flush=True)

    lit, plain, ratio = (statistics.median(col) for col in zip(*rows))
    print(f"\nMedian: Lightning {lit:,.0f} img/s, plain PyTorch {plain:,.0f} img/s, ratio {ratio:.3f}")
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda"
        else f"CPU, os.cpu_count()={os.cpu_count()}, torch threads={torch.get_num_threads()}"
    )  # fmt: skip
    used = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())
    print(f"Reproduce: python bench/train_throughput.py {used}")
    print(f"Device: {where}; torch {torch.__version__}, lightning {L.__version__}, precision {args.precision}")
    print(f"Load average (1 min): {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after (this run adds ~1-2)")


if __name__ == "__main__":
    main()
