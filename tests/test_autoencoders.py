"""Autoencoders and VAEs: the posterior and likelihoods against torch.distributions, the
importance-weighted estimate against a model whose log p(x) is known exactly, the AE's code
Gaussian, corruption, binarized MNIST, and errors.
"""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch import distributions as D
from torch.testing import assert_close

from lightning_dgm import seeding
from lightning_dgm.datamodules import DigitsDataModule, MNISTDataModule
from lightning_dgm.losses import BernoulliLikelihood, DiagonalGaussian, GaussianLikelihood, standard_normal_log_prob
from lightning_dgm.models import VAE, AutoEncoder, DenoisingAutoEncoder, GaussianCorruption, MaskingCorruption
from lightning_dgm.nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder


def test_posterior_matches_torch_distributions():
    torch.manual_seed(0)
    params = torch.randn(5, 6)
    q = DiagonalGaussian(params)
    reference = D.Independent(D.Normal(params[:, :3], params[:, 3:].mul(0.5).exp()), 1)
    prior = D.Independent(D.Normal(torch.zeros(5, 3), torch.ones(5, 3)), 1)
    assert_close(q.kl(), D.kl_divergence(reference, prior))
    z = torch.randn(7, 5, 3)
    assert_close(q.log_prob(z), reference.log_prob(z))
    assert_close(standard_normal_log_prob(z), prior.log_prob(z))
    assert_close(q.mode(), params[:, :3])
    draws = q.sample((20000,), generator=torch.Generator().manual_seed(1))
    assert_close(draws.mean(0), q.mean, atol=0.05, rtol=0)
    assert_close(draws.std(0), q.std, atol=0.05, rtol=0.02)


def test_reparameterized_sample_carries_gradients():
    params = torch.randn(4, 2, requires_grad=True)
    DiagonalGaussian(params).sample().sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0


def test_likelihoods_match_torch_distributions():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 1, 2, 2)
    x = torch.randint(0, 2, (4, 1, 2, 2)).float() * 2 - 1
    expected = D.Bernoulli(logits=logits).log_prob((x + 1) / 2).flatten(-3).sum(-1)
    assert_close(BernoulliLikelihood().log_prob(logits, x), expected)
    assert_close(BernoulliLikelihood().mean(logits), 2 * torch.sigmoid(logits) - 1)
    means = torch.randn(3, 4, 1, 2, 2)
    grey = torch.rand(4, 1, 2, 2) * 2 - 1
    assert_close(GaussianLikelihood(0.3).log_prob(means, grey), D.Normal(means, 0.3).log_prob(grey).flatten(-3).sum(-1))


def test_bernoulli_refuses_grey_levels_with_what_to_do():
    with pytest.raises(ValueError, match="binarize: true"):
        BernoulliLikelihood().log_prob(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5))


def exact_linear_gaussian_vae(sigma: float = 0.5) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """x = W z + b + sigma * eps with orthogonal columns of W: the true posterior is a diagonal
    Gaussian, so an encoder can be exact and p(x) = N(b, W W^T + sigma^2 I) is known.
    """
    W = torch.tensor([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.5], [-1.0, -0.5]])  # W^T W = diag(4, 1)
    b = torch.tensor([0.1, -0.2, 0.3, 0.0])
    encoder = MLPEncoder(image_shape=(1, 2, 2), hidden_dims=(), latent_dim=2, gaussian_posterior=True)
    decoder = MLPDecoder(latent_dim=2, hidden_dims=(), image_shape=(1, 2, 2))
    post_var = 1 / (1 + torch.diag(W.T @ W) / sigma**2)
    A = post_var[:, None] * W.T / sigma**2  # posterior mean = A (x - b)
    with torch.no_grad():
        decoder.net[0].weight.copy_(W)
        decoder.net[0].bias.copy_(b)
        encoder.net[1].weight.copy_(torch.cat([A, torch.zeros(2, 4)]))
        encoder.net[1].bias.copy_(torch.cat([-A @ b, post_var.log()]))
    model = VAE(encoder, decoder, likelihood=GaussianLikelihood(sigma))
    x = torch.randn(6, 1, 2, 2)
    exact = D.MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(4)).log_prob(x.flatten(1))
    return model, x, exact


def test_importance_weighted_estimate_is_exact_with_the_true_posterior():
    model, x, exact = exact_linear_gaussian_vae()
    for k in (1, 7):
        estimate = model.importance_weighted_log_likelihood(x, k, torch.Generator().manual_seed(k))
        assert_close(estimate, exact, atol=1e-4, rtol=0)


def test_importance_weighting_tightens_the_bound():
    model, x, exact = exact_linear_gaussian_vae()
    with torch.no_grad():  # a worse encoder: shifted means, too-wide variances
        model.encoder.net[1].bias.add_(torch.tensor([0.8, -0.8, 1.0, 1.0]))
    x = torch.randn(200, 1, 2, 2)
    exact = D.MultivariateNormal(
        model.decoder.net[0].bias, model.decoder.net[0].weight @ model.decoder.net[0].weight.T + 0.25 * torch.eye(4)
    ).log_prob(x.flatten(1))
    with torch.no_grad():
        recon_nll, kl, _ = model._terms(x, torch.Generator().manual_seed(0))
    elbo = -(recon_nll + kl).mean()
    iw = [
        model.importance_weighted_log_likelihood(x, k, torch.Generator().manual_seed(2)).mean() for k in (1, 50, 2000)
    ]
    assert elbo < iw[1] < iw[2] < exact.mean() + 1e-3
    assert exact.mean() - iw[2] < 0.1 * (exact.mean() - elbo)  # k = 2000 closes most of the gap


@pytest.mark.parametrize("shape,enc,dec", [((1, 28, 28), (32, 64), (64, 32)), ((3, 32, 32), (8, 16, 32), (32, 16, 8))])
def test_conv_networks_shapes(shape, enc, dec):
    encoder = ConvEncoder(shape, channels=enc, latent_dim=5, gaussian_posterior=True)
    decoder = ConvDecoder(latent_dim=5, channels=dec, image_shape=shape)
    assert encoder(torch.zeros(2, *shape)).shape == (2, 10)
    assert decoder(torch.zeros(2, 5)).shape == (2, *shape)


def test_networks_explain_bad_shapes():
    with pytest.raises(ValueError, match="divisible by 8"):
        ConvEncoder((1, 28, 28), channels=(8, 16, 32))
    with pytest.raises(ValueError, match=r"codes of shape \(N, 3\)"):
        MLPDecoder(latent_dim=3, hidden_dims=(4,))(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same latent_dim"):
        VAE(MLPEncoder(latent_dim=3, gaussian_posterior=True), MLPDecoder(latent_dim=4))
    with pytest.raises(ValueError, match="gaussian_posterior: true"):
        VAE(MLPEncoder(latent_dim=3), MLPDecoder(latent_dim=3))
    with pytest.raises(ValueError, match="gaussian_posterior: false"):
        AutoEncoder(MLPEncoder(latent_dim=3, gaussian_posterior=True), MLPDecoder(latent_dim=3))


def test_vae_sample_protocol():
    model = VAE(MLPEncoder(latent_dim=3, gaussian_posterior=True), MLPDecoder(latent_dim=3))
    a = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert a.shape == (4, 1, 28, 28) and a.min() >= -1 and a.max() <= 1
    assert_close(a, model.sample(4, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=torch.zeros(2, dtype=torch.long))


def digits(batch_size: int = 50) -> DigitsDataModule:
    return DigitsDataModule(image_size=8, batch_size=batch_size, val_size=100, test_size=100)


def test_autoencoder_samples_from_a_gaussian_fit_to_its_training_codes(tmp_path):
    """With a learning rate of 0 the codes of the epoch are those of the fixed encoder, so the
    fitted Gaussian must be exactly their mean and covariance."""
    L.seed_everything(0)
    model = AutoEncoder(
        MLPEncoder((1, 8, 8), (16,), latent_dim=3),
        MLPDecoder(3, (16,), (1, 8, 8)),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.0),
    )
    data = digits()
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        limit_val_batches=0,
    )
    trainer.fit(model, data)
    seen = len(data.train_set) // data.batch_size * data.batch_size  # drop_last
    order = list(iter(trainer.train_dataloader.sampler))[:seen]
    with torch.no_grad():
        codes = model.encoder(data.train_set.__getitems__(order).image).double()
    cov = torch.cov(codes.T, correction=0)
    assert_close(model.code_mean.double(), codes.mean(0), atol=1e-5, rtol=1e-5)
    assert_close(
        (model.code_scale_tril @ model.code_scale_tril.T).double(), cov + 1e-5 * torch.eye(3), atol=1e-5, rtol=1e-4
    )
    samples = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (5, 1, 8, 8) and samples.abs().max() <= 1


def test_corruptions():
    torch.manual_seed(0)
    x = torch.rand(200, 1, 28, 28) * 2 - 1
    masked = MaskingCorruption(0.3)(x)
    dropped = masked != x
    assert (masked[dropped] == -1).all() and abs(dropped.float().mean().item() - 0.3) < 0.01
    noisy = GaussianCorruption(0.5)(x) - x
    assert abs(noisy.std().item() - 0.5) < 0.01 and abs(noisy.mean().item()) < 0.01
    with pytest.raises(ValueError, match="p must be in"):
        MaskingCorruption(1.5)


def test_denoising_autoencoder_trains_on_corrupted_inputs_and_clean_targets(tmp_path):
    L.seed_everything(0)
    dae = DenoisingAutoEncoder(
        MLPEncoder((1, 8, 8), (32,), latent_dim=8), MLPDecoder(8, (32,), (1, 8, 8)), corruption=MaskingCorruption(0.5)
    )
    batch = next(iter(_loader()))
    x = batch.image
    loss = dae.training_step(batch, 0)
    seen = MaskingCorruption(0.5)(x, dae.random_stream(seeding.CORRUPTION))  # the step's own stream
    expected = (dae.decoder(dae.encoder(seen)) - x).pow(2).flatten(1).sum(1).mean()
    assert_close(loss, expected)


def _loader():
    data = digits()
    data.setup("fit")
    return data.train_dataloader()


def test_mnist_binarized(mnist_root):
    data = MNISTDataModule(data_dir=str(mnist_root), download=False, val_size=16, batch_size=8, binarize=True)
    data.setup("fit")
    data.setup("test")
    raw = MNISTDataModule(data_dir=str(mnist_root), download=False, val_size=16, batch_size=8)
    raw.setup("fit")
    index = list(range(len(data.train_set)))

    def served(epoch: int) -> torch.Tensor:
        """Every training image as the loader serves it in `epoch` (JitterSampler's table), in index order."""
        table = data.train_set.draw_jitter(seeding.generator(data.seed, seeding.BINARIZATION, epoch)).tolist()
        return data.train_set.__getitems__([(i, table[i]) for i in index]).image

    first, second = served(0), served(1)
    assert set(first.unique().tolist()) == {-1.0, 1.0}
    assert not torch.equal(first, second)  # new pixels every epoch: dynamic binarization
    grey = raw.train_set.__getitems__(index).image
    assert (first[grey == 1] == 1).all() and (first[grey == -1] == -1).all()
    many = torch.stack([served(epoch) for epoch in range(400)]).mean(0)
    assert (many - grey).abs().mean() < 0.05  # E[pixel] = intensity; one pixel's mean has sd <= 0.05
    assert set(data.val_set.images.unique().tolist()) <= {0, 255} and set(data.test_set.images.unique().tolist()) <= {
        0,
        255,
    }
    again = MNISTDataModule(data_dir=str(mnist_root), download=False, val_size=16, binarize=True)
    again.setup("test")
    assert torch.equal(again.test_set.images, data.test_set.images)  # fixed draw for evaluation


def test_vae_loss_is_negative_elbo_and_decreases(tmp_path):
    L.seed_everything(0)
    model = VAE(
        MLPEncoder((1, 8, 8), (64,), latent_dim=4, gaussian_posterior=True),
        MLPDecoder(4, (64,), (1, 8, 8)),
        likelihood=GaussianLikelihood(0.2),
        iw_samples=20,
    )
    data = digits()
    trainer = L.Trainer(
        max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    before = trainer.validate(model, data, verbose=False)[0]
    trainer.fit(model, data)
    after = trainer.validate(model, data, verbose=False)[0]
    assert after["val/elbo"] > before["val/elbo"] + 10
    test = trainer.test(model, data, verbose=False)[0]
    assert test["test/nll_iw"] < -test["test/elbo"]  # the k-sample bound is tighter than the ELBO
    assert math.isfinite(test["test/mse"]) and test["test/kl"] > 0


def test_linear_probe_sees_the_same_binarized_images_whatever_the_rng(mnist_root, tmp_path):
    from lightning_dgm.callbacks import LatentClassifier

    model = VAE(MLPEncoder(latent_dim=4, gaussian_posterior=True), MLPDecoder(latent_dim=4))
    scores = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # training leaves the global RNG anywhere
        data = MNISTDataModule(data_dir=str(mnist_root), download=False, val_size=16, batch_size=16, binarize=True)
        trainer = L.Trainer(
            logger=False,
            enable_progress_bar=False,
            default_root_dir=tmp_path,
            callbacks=[LatentClassifier(max_train=80)],
        )
        scores.append(trainer.test(model, data, verbose=False)[0])
    assert scores[0]["test/pixel_accuracy"] == scores[1]["test/pixel_accuracy"]
    assert scores[0]["test/latent_accuracy"] == scores[1]["test/latent_accuracy"]
