"""Super-resolution: sub-pixel upsampling, the Y-channel PSNR / SSIM protocol, aligned LR/HR crops,
the VGG content loss's local weights, SRGAN's G loss, predict on a user's folder, tiling."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.testing import assert_close
from torch.utils.data import DataLoader

from lightning_dgm.datamodules import SuperResolutionDataModule
from lightning_dgm.datamodules.superres import bicubic_downscale, bicubic_upscale
from lightning_dgm.errors import CheckpointError, DataError, MissingFileError
from lightning_dgm.losses import NonSaturating, VGGFeatures
from lightning_dgm.losses.content import VGG19_FILE, VGG19_URL, vgg19_layer_index
from lightning_dgm.metrics.restoration import rgb_to_y, y_psnr_ssim
from lightning_dgm.models import SRGAN, SRResNet
from lightning_dgm.nets import SRGANDiscriminator, SRResNetGenerator
from lightning_dgm.nets.srresnet import SubPixelUpsample
from lightning_dgm.types import ResolutionPair, signed_unit_to_uint8, to_signed_unit
from tests.helpers import REPO, run_cli


def stand_in_vgg19(path: Path, layer: str = "relu2_2") -> dict:
    """A file shaped like torchvision's VGG-19 weights (`features.<i>.weight/bias` keys) up to `layer`,
    random values: what VGGFeatures reads from the real file."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["E"])[: vgg19_layer_index(layer) + 1]
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def write_images(folder: Path, sizes: list[tuple[int, int]], mode: str = "RGB", seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (height, width) in enumerate(sizes):
        pixels = np.random.default_rng(seed + i).integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
        Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode).save(folder / f"{i}.png")


def tiny_generator(scale: int = 4) -> SRResNetGenerator:
    torch.manual_seed(0)
    return SRResNetGenerator(scale=scale, features=8, blocks=1, batch_norm=False)


# -- networks --------------------------------------------------------------------------------------
def test_pixel_shuffle_upsampling_places_channels_as_sub_pixels():
    up = SubPixelUpsample(channels=1, factor=2)
    with torch.no_grad():  # the conv: identity into 4 channels, no bias; PReLU slope 1: identity
        up[0].weight.zero_()
        up[0].bias.zero_()
        up[0].weight[:, 0, 1, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])
        up[2].weight.fill_(1.0)
    x = torch.tensor([[[[1.0, 10.0]]]])  # (1, 1, 1, 2)
    # channel a*2 + b of input pixel (i, j) -> output pixel (2i + a, 2j + b)
    expected = torch.tensor([[[[1.0, 2.0, 10.0, 20.0], [3.0, 4.0, 30.0, 40.0]]]])
    assert_close(up(x), expected)
    for scale, stages in ((2, 1), (3, 1), (4, 2)):
        g = SRResNetGenerator(scale=scale, features=8, blocks=2)
        assert len(g.upsample) == stages
        out = g(torch.rand(2, 3, 5, 7) * 2 - 1)
        assert out.shape == (2, 3, 5 * scale, 7 * scale) and out.abs().max() < 1
    d = SRGANDiscriminator((3, 40, 40), features=8, hidden=16)
    assert d(torch.zeros(3, 3, 40, 40)).shape == (3, 1)
    assert sum(isinstance(m, nn.Conv2d) for m in d.modules()) == 8


# -- the metric protocol -------------------------------------------------------------------------------
def test_y_psnr_and_ssim_equal_a_hand_computation():
    # Two flat images: Y differs by a constant, so MSE is that constant squared, and SSIM is the
    # luminance term alone (no variance): (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1).
    hr_rgb, sr_rgb = (100, 150, 200), (110, 150, 190)
    hr = to_signed_unit(torch.tensor(hr_rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 24, 24))
    sr = to_signed_unit(torch.tensor(sr_rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 24, 24))
    y_hr = 16 + (65.481 * 100 + 128.553 * 150 + 24.966 * 200) / 255
    y_sr = 16 + (65.481 * 110 + 128.553 * 150 + 24.966 * 190) / 255
    psnr, ssim = y_psnr_ssim(sr, hr, shave=4)
    assert_close(psnr, torch.tensor([10 * math.log10(255**2 / (y_sr - y_hr) ** 2)], dtype=torch.float64))
    c1 = (0.01 * 255) ** 2
    assert_close(ssim, torch.tensor([(2 * y_sr * y_hr + c1) / (y_sr**2 + y_hr**2 + c1)], dtype=torch.float64))
    # white is Y 235, black 16: MATLAB rgb2ycbcr's range
    assert_close(rgb_to_y(torch.full((1, 3, 1, 1), 255.0)).flatten(), torch.tensor([235.0]), atol=1e-3, rtol=0)
    # the shaved border does not count; identical images: PSNR +inf (not capped), SSIM 1
    noisy = hr.clone()
    noisy[..., :4, :] = -1
    psnr, ssim = y_psnr_ssim(noisy, hr, shave=4)
    assert torch.isinf(psnr).all() and psnr.item() > 0
    assert_close(ssim, torch.ones(1, dtype=torch.float64))


# -- data ------------------------------------------------------------------------------------------
def test_lr_crop_is_the_bicubic_downscale_of_the_hr_crop(tmp_path):
    write_images(tmp_path / "train", [(50, 61), (48, 48), (70, 53)])
    data = SuperResolutionDataModule(
        train_dir=str(tmp_path / "train"), crop_size=48, batch_size=3, data_dir=str(tmp_path / "cache")
    )
    data.setup("fit")
    originals = data.train_set.images
    for epoch in range(2):
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)
        batch = next(iter(loader))
        assert isinstance(batch, ResolutionPair)
        assert batch.low.shape == (3, 3, 12, 12) and batch.high.shape == (3, 3, 48, 48)
        assert_close(batch.low, to_signed_unit(bicubic_downscale(signed_unit_to_uint8(batch.high), 4)))
        # each HR crop is a crop of its image under one of the 8 symmetries of the square
        for crop in signed_unit_to_uint8(batch.high):
            views = [torch.rot90(view, k, (-2, -1)) for view in (crop, crop.flip(-1)) for k in range(4)]
            windows = [image.unfold(1, 48, 1).unfold(2, 48, 1) for image in originals]  # (C, i, j, 48, 48)
            assert any((w == v[:, None, None]).all(0).all(-1).all(-1).any() for w in windows for v in views)
    # the LR is what MATLAB's imresize makes: antialiased, so a fine checkerboard averages to grey
    checker = ((torch.arange(8)[:, None] + torch.arange(8)) % 2 * 255).to(torch.uint8).expand(1, 3, 8, 8)
    assert (bicubic_downscale(checker, 4).int() - 128).abs().max() <= 2
    # validation: whole images cropped to a multiple of the scale, one per batch
    data = SuperResolutionDataModule(val_dir=str(tmp_path / "train"), data_dir=str(tmp_path / "cache"))
    data.setup("validate")
    assert [tuple(b.high.shape[-2:]) for b in data.val_dataloader()] == [(48, 60), (48, 48), (68, 52)]


def test_data_errors_name_the_file(tmp_path):
    write_images(tmp_path / "small", [(40, 60)])
    with pytest.raises(DataError, match=r"small/0.png is 60x40 .* smaller than crop_size 48"):
        SuperResolutionDataModule(train_dir=str(tmp_path / "small"), crop_size=48, data_dir=str(tmp_path)).setup("fit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="no images .* found in .*empty"):
        SuperResolutionDataModule(train_dir=str(tmp_path / "empty"), data_dir=str(tmp_path)).setup("fit")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"could not read image .*bad/broken.png"):
        SuperResolutionDataModule(train_dir=str(tmp_path / "bad"), data_dir=str(tmp_path)).setup("fit")


# -- content losses ----------------------------------------------------------------------------------
def test_vgg_features_load_a_local_stand_in_and_stay_out_of_the_module(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / VGG19_FILE
    with pytest.raises(MissingFileError) as error:
        VGGFeatures()
    message = str(error.value)
    assert f"save them as {expected}" in message and VGG19_URL in message and "\n" not in message
    stand_in = stand_in_vgg19(expected, "relu2_2")
    loss = VGGFeatures(layer="relu2_2")  # found in $TORCH_HOME/hub/checkpoints
    assert_close(loss.network[7].weight, stand_in["features.7.weight"])  # conv2_2
    assert len(loss.network) == 9 and isinstance(loss.network[-1], nn.ReLU)
    assert list(loss.parameters()) == [] and list(loss.state_dict()) == []
    system = SRResNet(tiny_generator(), content=loss)
    assert not any(k.startswith("content") for k in system.state_dict())
    sr, hr = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    features = [loss.network(((x + 1) / 2 - mean) / std) for x in (sr, hr)]
    assert_close(loss(sr, hr), F.mse_loss(features[0], features[1]) / 12.75**2)
    with pytest.raises(CheckpointError, match="does not hold torchvision's VGG-19 weights up to relu3_1"):
        VGGFeatures(layer="relu3_1")  # the stand-in stops at relu2_2


class RecordingSRGAN(SRGAN):
    """SRGAN that keeps what each G step logs (the last `log_training` call of a batch is G's)."""

    def log_training(self, metrics, prog_bar=True):
        self.recorded = {name: value.detach() for name, value in metrics.items()}


def test_srgan_g_loss_is_content_plus_1e_3_adversarial():
    torch.manual_seed(0)
    generator, discriminator = tiny_generator(), SRGANDiscriminator((3, 16, 16), features=4, hidden=8)
    frozen = lambda parameters: torch.optim.SGD(parameters, lr=0.0)  # noqa: E731 - nothing moves: the formula holds after
    system = RecordingSRGAN(generator, discriminator, g_optimizer=frozen, d_optimizer=frozen)
    batch = ResolutionPair(torch.rand(2, 3, 4, 4) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1)
    trainer = L.Trainer(
        accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(system, train_dataloaders=DataLoader([batch], batch_size=None))
    with torch.no_grad():
        fake = generator(batch.low)
        content = F.mse_loss(fake, batch.high)
        expected = content + 1e-3 * NonSaturating().g_loss(discriminator(fake))
    assert_close(system.recorded["g_loss"], expected)
    assert_close(system.recorded["g_content"], content)


def test_srgan_starts_from_an_srresnet_checkpoint(tmp_path):
    source = SRResNet(tiny_generator())
    path = tmp_path / "srresnet.ckpt"
    torch.save({"state_dict": source.state_dict()}, path)
    torch.manual_seed(1)
    target = SRGAN(SRResNetGenerator(features=8, blocks=1, batch_norm=False), SRGANDiscriminator((3, 16, 16)))
    target.load_generator(str(path))
    assert_close(target.generator.state_dict(), source.generator.state_dict())
    wider = SRGAN(SRResNetGenerator(features=16, blocks=1, batch_norm=False), SRGANDiscriminator((3, 16, 16)))
    with pytest.raises(CheckpointError, match="holds no generator of this shape"):
        wider.load_generator(str(path))


# -- predict ----------------------------------------------------------------------------------------
def test_tiled_upscaling_equals_untiled():
    # G's receptive radius in LR pixels: head 9x9 (4) + block (2) + trunk conv (1) + two upsampling
    # convs (1 each, the second at 2x) + tail 9x9 at 4x (1) = 10.
    system = SRResNet(tiny_generator(), tile=16, tile_overlap=12).eval()
    low = torch.rand(1, 3, 40, 36) * 2 - 1
    with torch.no_grad():
        whole = system.generator(low)
        assert_close(system.upscale(low), whole, atol=1e-5, rtol=0)  # context >= radius: equal everywhere
        system.tile_overlap = 4  # less: equal from 6 LR px away from the seams (at 16 and 32 LR px)
        tiled = system.upscale(low)
    near = torch.zeros(40 * 4, dtype=torch.bool)
    for seam in (16, 32):
        near[(seam - 6) * 4 : (seam + 6) * 4] = True
    far = ~near[:, None] & ~near[None, : 36 * 4]
    assert_close(tiled[..., far], whole[..., far], atol=1e-5, rtol=0)
    assert (tiled - whole).abs().max() > 1e-4  # ... and not near them


def test_predict_upscales_a_folder_of_any_images(tmp_path):
    folder, out = tmp_path / "lr", tmp_path / "out"
    sizes = {"rgb": (7, 9, "RGB"), "gray": (5, 6, "L"), "alpha": (11, 4, "RGBA"), "sub/deep": (6, 5, "RGB")}
    for i, (name, (height, width, mode)) in enumerate(sizes.items()):
        write_images(tmp_path / "made" / name, [(height, width)], mode, seed=i)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "made" / name / "0.png").rename(folder / f"{name}.png")
    run_cli(
        "predict",
        f"--config={REPO / 'configs/srresnet_x4_small.yaml'}",  # its train/val/test folders need not exist
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--untrained=true",
        f"--data.predict_dir={folder}",
        f"--data.data_dir={tmp_path / 'cache'}",
        f"--sample_writer.output_dir={out}",
    )
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(f"{name}.png" for name in sizes)
    for name, (height, width, _) in sizes.items():
        image = Image.open(out / f"{name}.png")
        assert image.mode == "RGB" and image.size == (width * 4, height * 4)


def test_fit_logs_y_psnr_beside_bicubic_and_draws_the_grid(tmp_path):
    write_images(tmp_path / "train", [(20, 24)] * 2)
    write_images(tmp_path / "val", [(40, 36), (28, 44)], seed=5)
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs/srresnet_x4_small.yaml'}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        f"--data.train_dir={tmp_path / 'train'}",
        "--data.side_by_side_dirs=[]",
        f"--data.val_dir={tmp_path / 'val'}",
        f"--data.data_dir={tmp_path / 'cache'}",
        "--data.crop_size=16",
        "--data.batch_size=2",
    )
    metrics = cli.trainer.callback_metrics
    data = cli.datamodule
    bicubic = [y_psnr_ssim(bicubic_upscale(b.low, 4), b.high, 4) for b in data.evaluation_batches("val", batch_size=1)]
    assert_close(metrics["val/psnr_bicubic"].double(), torch.cat([p for p, _ in bicubic]).mean(), atol=1e-4, rtol=0)
    assert_close(metrics["val/ssim_bicubic"].double(), torch.cat([s for _, s in bicubic]).mean(), atol=1e-5, rtol=0)
    assert torch.isfinite(metrics["val/psnr"]) and 0 < metrics["val/ssim"] < 1
    grid = Image.open(tmp_path / "runs" / "version_0" / "super_resolution" / "epoch_000.png")
    side = 7 * 4  # the smaller val image's LR side (28 // 4), at 4x: crops of 28 HR px; 4 columns, 2 rows
    assert grid.size == (4 * (side + 2) + 2, 2 * (side + 2) + 2)
