"""Pix2Pix and CycleGAN as algorithms: one training batch on tiny nets, checked against the papers'
update written out by hand; the image pool; the linear-decay schedule; the translation grid."""

import copy
from functools import partial

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close
from torch.utils.data import DataLoader, TensorDataset
from torchvision.io import read_image

from lightning_dgm.callbacks import TranslationGrid
from lightning_dgm.losses import LeastSquares, NonSaturating
from lightning_dgm.models import CycleGAN, Pix2Pix
from lightning_dgm.models.cyclegan import ImagePool
from lightning_dgm.schedules import LinearDecayLR
from lightning_dgm.types import ImagePair

SGD = partial(torch.optim.SGD, lr=0.1)


def translator() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh())


def pairs(n: int = 4, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.rand(n, 3, size, size, generator=g) * 2 - 1


class PairData(L.LightningDataModule):
    """ImagePair batches from two tensors, in order; its validation split (for TranslationGrid) is
    the same pairs, through the framework's evaluation-data API."""

    def __init__(self, source, target, batch_size=2) -> None:
        super().__init__()
        self.source, self.target, self.batch_size = source, target, batch_size

    def split_size(self, split):
        return len(self.source)

    def evaluation_batches(self, split, count=None, *, batch_size=256, generator=None):
        count = len(self.source) if count is None else count
        for start in range(0, count, batch_size):
            end = min(start + batch_size, count)
            yield ImagePair(self.source[start:end], self.target[start:end])

    def _loader(self):
        return DataLoader(
            TensorDataset(self.source, self.target),
            batch_size=self.batch_size,
            collate_fn=lambda items: ImagePair(*map(torch.stack, zip(*items))),
        )

    def train_dataloader(self):
        return self._loader()

    def val_dataloader(self):
        return self._loader()


def fit(model, data, tmp_path, **trainer_args) -> L.Trainer:
    args = dict(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer = L.Trainer(**(args | trainer_args))
    trainer.fit(model, datamodule=data)
    return trainer


def sgd_step(module: nn.Module, loss: torch.Tensor, lr: float = 0.1) -> nn.Module:
    grads = torch.autograd.grad(loss, list(module.parameters()))
    stepped = copy.deepcopy(module)
    with torch.no_grad():
        for parameter, grad in zip(stepped.parameters(), grads):
            parameter -= lr * grad
    return stepped


def assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert_close(p, q, msg=name)


def test_pix2pix_step_is_the_papers_update(tmp_path):
    torch.manual_seed(0)
    g, d = translator(), nn.Conv2d(6, 1, 3)  # D judges (input, image) pairs
    model = Pix2Pix(copy.deepcopy(g), copy.deepcopy(d), g_optimizer=SGD, d_optimizer=SGD)
    x, y = pairs(2)
    fit(model, PairData(x, y), tmp_path)
    # 1. D on 1/2 [BCE(D(x, y), real) + BCE(D(x, G(x)), fake)]
    fake = g(x)
    loss = NonSaturating()
    d_new = sgd_step(d, 0.5 * loss.d_loss(d(torch.cat([x, y], 1)), d(torch.cat([x, fake.detach()], 1))))
    # 2. G on BCE(D_new(x, G(x)), real) + 100 |y - G(x)|, judged by the updated D
    g_new = sgd_step(g, loss.g_loss(d_new(torch.cat([x, fake], 1))) + 100 * F.l1_loss(fake, y))
    assert_same_parameters(model.discriminator, d_new)
    assert_same_parameters(model.generator, g_new)


@pytest.mark.parametrize("identity_weight", [0.5, 0.0])
def test_cyclegan_step_is_the_papers_update(tmp_path, identity_weight):
    torch.manual_seed(0)
    g_ab, g_ba, d_a, d_b = translator(), translator(), nn.Conv2d(3, 1, 3), nn.Conv2d(3, 1, 3)
    model = CycleGAN(
        *map(copy.deepcopy, (g_ab, g_ba, d_a, d_b)), identity_weight=identity_weight, g_optimizer=SGD, d_optimizer=SGD
    )
    a, b = pairs(2)
    fit(model, PairData(a, b), tmp_path)
    lsgan = LeastSquares()
    generators = nn.ModuleList([g_ab, g_ba])
    # 1. G and F together: 2 * LSGAN (the paper's E[(D(G(x)) - 1)^2]) + 10 * cycle + 0.5 * 10 * identity
    fake_b, fake_a = g_ab(a), g_ba(b)
    g_loss = (
        2 * (lsgan.g_loss(d_b(fake_b)) + lsgan.g_loss(d_a(fake_a)))
        + 10 * (F.l1_loss(g_ba(fake_b), a) + F.l1_loss(g_ab(fake_a), b))
        + identity_weight * 10 * (F.l1_loss(g_ab(b), b) + F.l1_loss(g_ba(a), a))
    )
    g_new = sgd_step(generators, g_loss)
    # 2. D_X and D_Y together, on the fakes of step 1 (the pool is filling: it returns them as they are)
    discriminators = nn.ModuleList([d_a, d_b])
    d_loss = lsgan.d_loss(d_a(a), d_a(fake_a.detach())) + lsgan.d_loss(d_b(b), d_b(fake_b.detach()))
    d_new = sgd_step(discriminators, d_loss)
    assert_same_parameters(nn.ModuleList([model.generator_ab, model.generator_ba]), g_new)
    assert_same_parameters(nn.ModuleList([model.discriminator_a, model.discriminator_b]), d_new)
    assert len(model.pool_a.images) == len(model.pool_b.images) == 2
    assert_close(torch.stack(model.pool_a.images), fake_a.detach())


def test_image_pool_returns_new_or_stored_images_half_the_time():
    pool, g = ImagePool(size=4), torch.Generator().manual_seed(0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert_close(pool.query(first, g), first)  # filling: every image is stored and returned
    returned_new = 0
    for step in range(400):
        new = torch.full((1, 1, 1, 1), 100.0 + step)
        stored_before = torch.stack(pool.images).flatten().tolist()
        value = pool.query(new, g).item()
        stored_after = torch.stack(pool.images).flatten().tolist()
        if value == new.item():
            returned_new += 1
            assert stored_after == stored_before
        else:  # a stored image came out, and the new one took its place
            slot = stored_before.index(value)
            assert stored_after == stored_before[:slot] + [new.item()] + stored_before[slot + 1 :]
    assert 170 < returned_new < 230  # 400 draws at p = 1/2: mean 200, std 10
    again = ImagePool(size=4)
    again.load_state_dict(pool.state_dict())
    assert_close(torch.stack(again.images), torch.stack(pool.images))
    assert_close(ImagePool(size=0).query(first, g), first)


def test_image_pool_is_seeded_and_kept_in_checkpoints(tmp_path):
    torch.manual_seed(0)
    a, b = pairs(8)
    model = CycleGAN(
        translator(),
        translator(),
        nn.Conv2d(3, 1, 3),
        nn.Conv2d(3, 1, 3),
        pool_size=3,
        g_optimizer=SGD,
        d_optimizer=SGD,
    )
    trainer = fit(model, PairData(a, b), tmp_path, limit_train_batches=4)
    trainer.save_checkpoint(tmp_path / "pools.ckpt")
    restored = CycleGAN.load_from_checkpoint(
        tmp_path / "pools.ckpt",
        generator_ab=translator(),
        generator_ba=translator(),
        discriminator_a=nn.Conv2d(3, 1, 3),
        discriminator_b=nn.Conv2d(3, 1, 3),
        weights_only=False,
    )
    assert_close(torch.stack(restored.pool_b.images), torch.stack(model.pool_b.images))
    with pytest.raises(ValueError, match="pool size"):
        ImagePool(-1)


def test_linear_decay_holds_then_decays_as_the_official_code():
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=2e-4)
    schedule = LinearDecayLR(optimizer, constant_epochs=2, decay_epochs=3)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    # 1 - max(0, e + 1 - 2) / (3 + 1)
    assert_close(torch.tensor(rates), 2e-4 * torch.tensor([1, 1, 0.75, 0.5, 0.25, 0.0]))
    with pytest.raises(ValueError, match="constant_epochs"):
        LinearDecayLR(optimizer, constant_epochs=-1)


def test_schedulers_are_stepped_once_per_epoch(tmp_path):
    model = Pix2Pix(
        translator(),
        nn.Conv2d(6, 1, 3),
        g_optimizer=SGD,
        d_optimizer=SGD,
        g_lr_scheduler=partial(LinearDecayLR, constant_epochs=1, decay_epochs=3),
        d_lr_scheduler=partial(LinearDecayLR, constant_epochs=1, decay_epochs=3),
    )
    fit(model, PairData(*pairs(4)), tmp_path, max_epochs=3, limit_train_batches=2)
    g_opt, d_opt = model.optimizers()
    # stepped after epochs 0, 1, 2: the rate for epoch 3 is 1 - (3 + 1 - 1) / (3 + 1) of the initial one
    assert_close(g_opt.param_groups[0]["lr"], 0.1 * 0.25)
    assert_close(d_opt.param_groups[0]["lr"], 0.1 * 0.25)


def test_translation_systems_do_not_sample_from_noise():
    with pytest.raises(TypeError, match="translate"):
        Pix2Pix(translator(), nn.Conv2d(6, 1, 3)).sample(4)


@pytest.mark.parametrize("system", ["pix2pix", "cyclegan"])
def test_translation_grid_rows_are_input_output_target(tmp_path, system):
    torch.manual_seed(0)
    if system == "pix2pix":
        model, columns = Pix2Pix(translator(), nn.Conv2d(6, 1, 3)), 3
    else:
        model, columns = CycleGAN(translator(), translator(), nn.Conv2d(3, 1, 3), nn.Conv2d(3, 1, 3)), 6
    source, target = pairs(5, size=6)
    fit(
        model,
        PairData(source, target, batch_size=2),
        tmp_path,
        limit_train_batches=1,
        callbacks=[TranslationGrid(num_images=3)],
    )
    grid = read_image(str(tmp_path / "translations" / "epoch_000.png")).float()
    assert grid.shape == (3, 2 + 3 * 8, 2 + columns * 8)  # 3 rows, 6 px tiles + 2 px padding
    model.eval()
    with torch.no_grad():
        expected = model.translation_columns(ImagePair(source[:3], target[:3]))
    for row in range(3):
        for column in range(columns):
            tile = grid[:, 2 + 8 * row : 8 + 8 * row, 2 + 8 * column : 8 + 8 * column]
            pixels = (expected[column][row].clamp(-1, 1) + 1) / 2 * 255  # make_grid's normalize, then PNG rounding
            assert_close(tile, pixels, atol=1.0, rtol=0)
    assert_close(expected[0], source[:3]) and assert_close(expected[-1 if system == "pix2pix" else 3], target[:3])
