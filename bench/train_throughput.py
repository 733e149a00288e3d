"""GAN training throughput: the Lightning `GAN` system under `L.Trainer` vs a plain PyTorch loop.

Both contenders train the same MLP GAN (MLPGenerator / MLPDiscriminator, NonSaturating loss,
Gaussian noise from a generator reseeded every step, Adam 2e-4 / (0.5, 0.999), one G forward
shared by the D and G steps) from the same DataLoader, on the same device, in one process.
Measured: real images per second over `--batches` training batches, after `--warmup` untimed
batches; repeats alternate which contender runs first (bench/throughput.py). The ratio
Lightning / plain is the share of plain-PyTorch speed the framework keeps (1.0 = no overhead).

The data is random uint8 of MNIST shape (1x28x28) held in memory, so nothing is downloaded;
pixel values do not affect the speed of these dense networks. The plain loop does no logging:
the cost of the system's `self.log` calls counts as Lightning's.

    python bench/train_throughput.py [--batch-size 64 --batches 300 --repeats 5 --device cpu]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput  # noqa: E402  (bench/throughput.py, shared with conv_throughput.py)

from lightning_dgm.losses import NonSaturating  # noqa: E402
from lightning_dgm.models import GAN  # noqa: E402
from lightning_dgm.nets.mlp import MLPDiscriminator, MLPGenerator  # noqa: E402
from lightning_dgm.nets.noise import GaussianNoise  # noqa: E402

IMAGE_SHAPE = (1, 28, 28)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    throughput.add_common_args(p, batches=300, warmup=20)
    p.add_argument("--latent-dim", type=int, default=100)
    p.add_argument("--hidden", default="256,512", help="G's hidden widths; D uses them reversed")
    return p.parse_args(argv)


def make_nets(args: argparse.Namespace) -> tuple[MLPGenerator, MLPDiscriminator]:
    hidden = [int(w) for w in args.hidden.split(",")]
    torch.manual_seed(throughput.SEED)
    return MLPGenerator(args.latent_dim, hidden, IMAGE_SHAPE), MLPDiscriminator(IMAGE_SHAPE, hidden[::-1])


def run_lightning(args: argparse.Namespace, device: torch.device, callbacks: Sequence = ()) -> float:
    generator, discriminator = make_nets(args)
    adam = functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
    model = GAN(generator, discriminator, NonSaturating(), GaussianNoise(), g_optimizer=adam, d_optimizer=adam)
    data = throughput.training_data(args, IMAGE_SHAPE, 60_000, device, trainer=True)
    return throughput.run_lightning(model, data, args, device, callbacks)


def run_plain(args: argparse.Namespace, device: torch.device) -> float:
    step = throughput.plain_gan_step(*make_nets(args), NonSaturating(), GaussianNoise(), args.latent_dim, args, device)
    data = throughput.training_data(args, IMAGE_SHAPE, 60_000, device, trainer=False)
    return throughput.run_plain(step, data, args, device)


def main(argv: list[str] | None = None) -> tuple[float, float, float]:
    args = parse_args(argv)
    device = throughput.setup(args)
    load_before = os.getloadavg()[0]  # the 1-minute load before this benchmark adds its own
    title = f"MLP GAN, batch {args.batch_size}, {args.precision}" + throughput.variant(args)
    medians = throughput.compare(
        title, functools.partial(run_lightning, args, device), functools.partial(run_plain, args, device), args
    )
    throughput.report(args, device, load_before)
    return medians


if __name__ == "__main__":
    main()
