"""The GAN system: which network each step changes, d_steps, batch sizes, sampling."""

import lightning as L
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from lightning_dgm.datamodules import DigitsDataModule
from lightning_dgm.losses import GradientPenalty, Hinge, LeastSquares, Minimax, NonSaturating, Wasserstein
from lightning_dgm.models import GAN
from lightning_dgm.nets import MLPDiscriminator, MLPGenerator, UniformNoise


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


class RecordingGAN(GAN):
    """A real GAN that records what each named step changes."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.records: list[tuple[str, bool, bool]] = []  # (step, G changed, D changed)

    def discriminator_step(self, real, fake, **kwargs):
        g0, d0 = snapshot(self.generator), snapshot(self.discriminator)
        super().discriminator_step(real, fake, **kwargs)
        self.records.append(("d", not same(g0, snapshot(self.generator)), not same(d0, snapshot(self.discriminator))))

    def generator_step(self, fake, **kwargs):
        g0, d0 = snapshot(self.generator), snapshot(self.discriminator)
        super().generator_step(fake, **kwargs)
        self.records.append(("g", not same(g0, snapshot(self.generator)), not same(d0, snapshot(self.discriminator))))


def tiny_gan(cls=GAN, **kwargs) -> GAN:
    return cls(
        generator=MLPGenerator(latent_dim=8, hidden_dims=[16], image_shape=(1, 8, 8)),
        discriminator=MLPDiscriminator(image_shape=(1, 8, 8), hidden_dims=[16], out_features=kwargs.pop("out", 1)),
        **kwargs,
    )


def fit(model: GAN, batches: int = 4, batch_size: int = 8, **trainer_kwargs) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **trainer_kwargs,
    )
    trainer.fit(model, DigitsDataModule(batch_size=batch_size))
    return trainer


@pytest.mark.parametrize("loss", [NonSaturating(), Minimax(), Hinge(), LeastSquares(), Wasserstein()])
def test_d_step_leaves_g_unchanged_and_g_step_leaves_d_unchanged(loss):
    model = tiny_gan(RecordingGAN, loss=loss)
    fit(model, batches=3)
    assert [r[0] for r in model.records] == ["d", "g"] * 3
    for step, g_changed, d_changed in model.records:
        assert (g_changed, d_changed) == ((False, True) if step == "d" else (True, False))


def test_d_steps_gives_k_d_updates_per_g_update_and_global_step_counts_optimizer_steps():
    model = tiny_gan(RecordingGAN, d_steps=3)
    trainer = fit(model, batches=6)
    assert [r[0] for r in model.records] == ["d", "d", "d", "g"] * 2
    assert trainer.global_step == 8  # 6 D steps + 2 G steps, not 6 batches


class BatchSizes(nn.Module):
    """A real D that remembers the batch sizes it judged."""

    def __init__(self):
        super().__init__()
        self.net = MLPDiscriminator(image_shape=(1, 8, 8), hidden_dims=[16], out_features=2)
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.net(x)


def test_lecture_batching_16_real_plus_16_fake_for_d_and_32_for_g():
    d = BatchSizes()
    model = GAN(
        generator=MLPGenerator(latent_dim=8, hidden_dims=[16], image_shape=(1, 8, 8)),
        discriminator=d,
        g_batch_size=32,
        noise=UniformNoise(),
    )
    fit(model, batches=2, batch_size=16)
    assert d.sizes == [16, 16, 32] * 2  # D(real), D(fake), then D(G(z)) for G's step


def test_gradient_penalty_runs_in_the_d_step():
    model = tiny_gan(RecordingGAN, loss=Wasserstein(), penalty=GradientPenalty())
    fit(model, batches=2)
    assert [r[0] for r in model.records] == ["d", "g"] * 2


def test_sample_protocol():
    model = tiny_gan()
    a = model.sample(5, generator=torch.Generator().manual_seed(3))
    b = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5, 1, 8, 8) and a.abs().max() <= 1
    assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, model.sample(5, generator=torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="d_steps"):
        tiny_gan(d_steps=0)


def test_training_makes_d_and_g_move_and_logs_the_named_metrics():
    model = tiny_gan(out=2)
    trainer = fit(model, batches=5, log_every_n_steps=1)
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(trainer.logged_metrics)
    assert all(torch.isfinite(v) for v in trainer.logged_metrics.values())
