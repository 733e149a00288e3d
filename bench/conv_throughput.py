"""Conv-net training throughput: DCGAN at 32x32 and the convolutional VAE under `L.Trainer` vs
plain PyTorch loops, by the method of bench/train_throughput.py (bench/throughput.py: same
networks from the same seed, same data through the same sampler, same batch and device, one
process, alternating order, medians of repeats).

  * DCGAN: the project's DCGANGenerator / DCGANDiscriminator as configs/dcgan_cifar10.yaml builds
    them (z 100, base width 64, 3x32x32), the `GAN` system (NonSaturating, Adam 2e-4 / (0.5, 0.999))
    against the plain GAN step of bench/throughput.py.
  * VAE: the project's ConvEncoder / ConvDecoder as configs/vae_cifar10.yaml builds them (32-64-128
    channels, 128 latents, Gaussian pixels with std 0.1, Adam 1e-3), the `VAE` system against a
    plain loop computing the same negative ELBO with the same likelihood and posterior classes.

The data is random uint8 of CIFAR-10 shape (3x32x32) held in memory; pixel values do not change the
speed of these networks.

    python bench/conv_throughput.py [--models dcgan,vae --batch-size 64 --batches 30 --repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput  # noqa: E402

from lightning_dgm.losses import GaussianLikelihood, NonSaturating  # noqa: E402
from lightning_dgm.losses.likelihoods import DiagonalGaussian  # noqa: E402
from lightning_dgm.models import GAN, VAE  # noqa: E402
from lightning_dgm.nets import ConvDecoder, ConvEncoder, DCGANDiscriminator, DCGANGenerator  # noqa: E402
from lightning_dgm.nets.noise import GaussianNoise  # noqa: E402

IMAGE_SHAPE = (3, 32, 32)
CIFAR_TRAIN = 50_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    throughput.add_common_args(p, batches=30, warmup=5)
    p.add_argument("--models", default="dcgan,vae", help="comma-separated: dcgan, vae")
    return p.parse_args(argv)


# -- DCGAN ------------------------------------------------------------------------------------
def dcgan_nets() -> tuple[DCGANGenerator, DCGANDiscriminator]:
    torch.manual_seed(throughput.SEED)
    return DCGANGenerator(100, IMAGE_SHAPE, 64), DCGANDiscriminator(IMAGE_SHAPE, 64)


def dcgan_lightning(args: argparse.Namespace, device: torch.device) -> float:
    adam = functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
    model = GAN(*dcgan_nets(), NonSaturating(), GaussianNoise(), g_optimizer=adam, d_optimizer=adam)
    data = throughput.training_data(args, IMAGE_SHAPE, CIFAR_TRAIN, device, trainer=True)
    return throughput.run_lightning(model, data, args, device)


def dcgan_plain(args: argparse.Namespace, device: torch.device) -> float:
    step = throughput.plain_gan_step(*dcgan_nets(), NonSaturating(), GaussianNoise(), 100, args, device)
    data = throughput.training_data(args, IMAGE_SHAPE, CIFAR_TRAIN, device, trainer=False)
    return throughput.run_plain(step, data, args, device)


# -- VAE --------------------------------------------------------------------------------------
def vae_nets() -> tuple[ConvEncoder, ConvDecoder]:
    torch.manual_seed(throughput.SEED)
    encoder = ConvEncoder(IMAGE_SHAPE, (32, 64, 128), 128, gaussian_posterior=True)
    return encoder, ConvDecoder(128, (128, 64, 32), IMAGE_SHAPE)


def vae_lightning(args: argparse.Namespace, device: torch.device) -> float:
    model = VAE(*vae_nets(), GaussianLikelihood(0.1), optimizer=functools.partial(torch.optim.Adam, lr=1e-3))
    data = throughput.training_data(args, IMAGE_SHAPE, CIFAR_TRAIN, device, trainer=True)
    return throughput.run_lightning(model, data, args, device)


def vae_plain(args: argparse.Namespace, device: torch.device) -> float:
    encoder, decoder = throughput.plain_networks(args, device, *vae_nets())
    likelihood = GaussianLikelihood(0.1)
    params = [*encoder.parameters(), *decoder.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    rng = torch.Generator(device=device)
    base = int(os.environ.get("PL_GLOBAL_SEED", throughput.SEED))
    context = throughput.autocast(args, device)

    def step(real: Tensor, batch_idx: int) -> None:
        rng.manual_seed(hash((base, 1, batch_idx)) & 0x7FFF_FFFF_FFFF_FFFF)  # reseeded per step, as the VAE's
        with context():
            q = DiagonalGaussian(encoder(real))
            output = decoder(q.sample(generator=rng))
            loss = (-likelihood.log_prob(output, real) + q.kl()).mean()
        # The Trainer's automatic optimisation: zero_grad (to None), backward, step.
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    data = throughput.training_data(args, IMAGE_SHAPE, CIFAR_TRAIN, device, trainer=False)
    return throughput.run_plain(step, data, args, device)


MODELS = {"dcgan": ("DCGAN 32x32", dcgan_lightning, dcgan_plain), "vae": ("conv VAE 32x32", vae_lightning, vae_plain)}


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float, float]]:
    args = parse_args(argv)
    device = throughput.setup(args)
    load_before = os.getloadavg()[0]
    results = {}
    for name in args.models.split(","):
        title, lightning, plain = MODELS[name]
        title += f", batch {args.batch_size}, {args.precision}" + throughput.variant(args)
        results[name] = throughput.compare(
            title, functools.partial(lightning, args, device), functools.partial(plain, args, device), args
        )
    throughput.report(args, device, load_before)
    return results


if __name__ == "__main__":
    main()
