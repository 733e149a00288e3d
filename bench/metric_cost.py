"""What FID / KID / IS during training cost, against the training time of configs/dcgan_cifar10.yaml.

configs/dcgan_cifar10.yaml itself configures no metric callback; the cadence measured here is the
`SampleMetrics` block of README.md (Inception features and logits, FID + KID (100 subsets of 1000) +
IS (10 splits), 10,000 samples every 5 epochs, batch 200), on that config's training (DCGAN, nets of
base width 64, batch 128, 45,000 training images, so 351 batches an epoch).

Short by design: it times a few batches of each part and extrapolates linearly, which holds because
every part is a fixed amount of work per image or per batch:
  * training: `--train-batches` timed Lightning batches (after `--warmup`), x batches per epoch;
  * one evaluation: G's sampling and one Inception forward (features and logits together, as the
    callback runs it) timed on `--measure-images` images, x `--num-samples`; plus the metrics'
    computation itself, run in full on random features of the real sizes (10,000 generated, the
    whole train split real; what the numbers are does not change what they cost);
  * the real features, extracted once per data set and extractor and then cached on disk, are a
    one-off cost, reported apart.
The Inception weights are not available offline: the network is the FID Inception (torch-fidelity's
architecture through `InceptionFeatures`) with randomly initialised weights of the real file's shapes.
A forward costs the same whatever the weights' values.

    python bench/metric_cost.py [--device cpu --train-batches 6 --measure-images 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conv_throughput  # noqa: E402
import throughput  # noqa: E402

from lightning_dgm.callbacks import SampleMetrics  # noqa: E402
from lightning_dgm.callbacks.budget import TimeShare  # noqa: E402
from lightning_dgm.losses import NonSaturating  # noqa: E402
from lightning_dgm.metrics import InceptionFeatures  # noqa: E402
from lightning_dgm.metrics.distances import feature_sums, statistics_from_sums  # noqa: E402
from lightning_dgm.metrics.generated import GeneratedSet  # noqa: E402
from lightning_dgm.models import GAN  # noqa: E402
from lightning_dgm.nets.noise import GaussianNoise  # noqa: E402
from lightning_dgm.types import signed_unit_to_uint8  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=128, help="training batch (dcgan_cifar10.yaml: 128)")
    p.add_argument("--train-images", type=int, default=45_000, help="CIFAR-10's 50,000 minus val_size 5,000")
    p.add_argument("--train-batches", type=int, default=6, help="timed training batches")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--every-n-epochs", type=int, default=5)
    p.add_argument("--num-samples", type=int, default=10_000)
    p.add_argument("--metric-batch-size", type=int, default=200, help="SampleMetrics' batch_size")
    p.add_argument("--measure-images", type=int, default=40, help="images timed through G and Inception")
    p.add_argument("--weights", default=None, help="the real Inception weights file, if you have it")
    p.add_argument("--max-time-share", type=float, default=0.1, help="SampleMetrics' max_time_share to simulate")
    p.add_argument("--epochs", type=int, default=200, help="epochs of training to simulate it over")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    return p.parse_args(argv)


def stand_in_weights(folder: Path) -> Path:
    """A file shaped like the FID Inception weights (torch-fidelity's keys are torchvision's
    Inception3 with 1008 classes and no aux head), with random values."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = folder / "inception-random-weights.pth"
    torch.save(inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008).state_dict(), path)
    return path


def timed(fn, device: torch.device) -> float:
    throughput.sync(device)
    start = time.perf_counter()
    fn()
    throughput.sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    device = throughput.setup(args)
    load_before = os.getloadavg()[0]
    train_args = argparse.Namespace(
        batches=args.train_batches, warmup=args.warmup, batch_size=args.batch_size, precision="32-true", compile=False
    )
    model = GAN(*conv_throughput.dcgan_nets(), NonSaturating(), GaussianNoise())
    loader = throughput.random_loader(train_args, conv_throughput.IMAGE_SHAPE, 10_000)
    train_per_batch = args.batch_size / throughput.run_lightning(model, loader, train_args, device)
    batches_per_epoch = args.train_images // args.batch_size
    epoch_s = train_per_batch * batches_per_epoch

    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights or stand_in_weights(Path(folder))
        callback = SampleMetrics(
            feature=InceptionFeatures(weights),
            classifier=InceptionFeatures(weights, feature="logits_unbiased"),
            num_samples=args.num_samples,
            every_n_epochs=args.every_n_epochs,
            batch_size=args.metric_batch_size,
        )
    extractors = callback.extractors.to(device)
    model = model.to(device).eval()
    chunk = min(args.measure_images, args.metric_batch_size)
    rounds = max(1, args.measure_images // chunk)
    generator = torch.Generator(device).manual_seed(0)
    images = signed_unit_to_uint8(model.sample(chunk, generator=generator))
    extractors(images[:2], features=True, logits=True)  # warm-up: first-call allocations
    with torch.no_grad():
        sample_s = timed(lambda: [model.sample(chunk, generator=generator) for _ in range(rounds)], device)
        inception_s = timed(lambda: [extractors(images, features=True, logits=True) for _ in range(rounds)], device)
    per_image = (sample_s + inception_s) / (chunk * rounds)

    # The metrics on full-size random inputs: 10,000 generated features and logits, the whole split real.
    generated = GeneratedSet(callback.needs, 2048).to(device)
    for start in range(0, args.num_samples, args.metric_batch_size):
        n = min(args.metric_batch_size, args.num_samples - start)
        generated.update(torch.randn(n, 2048, device=device), torch.randn(n, 1008, device=device))
    real = torch.randn(args.train_images, 2048, device=device)

    def compute() -> None:
        inputs = generated.compute()._replace(
            real_features=real, real_statistics=statistics_from_sums(len(real), *feature_sums(real))
        )
        for metric in callback.metrics:
            metric.compute(inputs, torch.Generator().manual_seed(0))

    compute_s = timed(compute, device)
    evaluation_s = args.num_samples * per_image + compute_s
    between = args.every_n_epochs * epoch_s
    share = evaluation_s / (between + evaluation_s)
    real_once_s = args.train_images * inception_s / (chunk * rounds)

    print(f"Training: {train_per_batch * 1e3:,.0f} ms a batch of {args.batch_size} ({args.train_batches} timed)")
    print(f"  x {batches_per_epoch} batches = {epoch_s:,.0f} s an epoch")
    print(f"One evaluation ({args.num_samples:,} samples):")
    print(f"  sampling G      {sample_s / (chunk * rounds) * 1e3:8.2f} ms an image ({chunk * rounds} timed)")
    print(f"  Inception       {inception_s / (chunk * rounds) * 1e3:8.2f} ms an image (features + logits, one forward)")
    print(f"  FID + KID + IS  {compute_s:8.2f} s (full size)")
    print(f"  = {evaluation_s:,.0f} s an evaluation")
    print(
        f"Every {args.every_n_epochs} epochs: {between:,.0f} s training + {evaluation_s:,.0f} s metrics: "
        f"metrics are {share:.1%} of the wall time (goal <= 10%)"
    )
    print(f"Once per data set and extractor (then cached on disk): real features, {real_once_s:,.0f} s")
    first_batch_s = args.metric_batch_size * per_image
    epochs, spent, wall = under_share(
        args.max_time_share, args.every_n_epochs, epoch_s, evaluation_s, first_batch_s, args.epochs
    )
    print(
        f"With max_time_share {args.max_time_share}, over {args.epochs} epochs: evaluations after epochs "
        f"{epochs or 'none'}; metrics are {spent / wall:.1%} of the wall time"
    )
    weights_note = "the given weights" if args.weights else "randomly initialised weights of the real file's shapes"
    throughput.report(args, device, load_before)
    print(f"Inception: {weights_note} (a forward costs the same whatever the values)")
    return dict(epoch_s=epoch_s, evaluation_s=evaluation_s, share=share, real_once_s=real_once_s, epochs=epochs)


def under_share(share: float, every: int, epoch_s: float, evaluation_s: float, first_batch_s: float, epochs: int = 200):
    """The epochs SampleMetrics(max_time_share=share) evaluates after, over `epochs` epochs of `epoch_s`
    seconds, by its own rule (`TimeShare` on a clock advanced by these costs); with the seconds spent
    and the wall time."""
    clock = [0.0]
    budget = TimeShare(share, clock=lambda: clock[0])
    evaluated = []
    for epoch in range(epochs):
        clock[0] += epoch_s
        if (epoch + 1) % every or not budget.due():
            continue
        allowance = budget.allowance()
        if budget.expected is None and budget.over(first_batch_s, round(evaluation_s / first_batch_s), allowance):
            clock[0] += first_batch_s
            budget.spend(first_batch_s, completed=False)
            continue
        clock[0] += evaluation_s
        budget.spend(evaluation_s, completed=True)
        evaluated.append(epoch)
    return evaluated, budget.spent, clock[0]


if __name__ == "__main__":
    main()
