"""pix2pix / CycleGAN networks: U-Net and ResNet generators, PatchGAN discriminator."""

import re

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from torch import nn
from torch.testing import assert_close

from lightning_dgm.nets import BatchNorm, InstanceNorm, PatchGANDiscriminator, ResNetGenerator, UNetGenerator
from lightning_dgm.nets.translation import ResidualBlock

CONVS = (nn.Conv2d, nn.ConvTranspose2d)
NORMS = (nn.BatchNorm2d, nn.InstanceNorm2d)


def count(module: nn.Module, kind) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def convs_feeding_norms(net: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Every conv of `net` (all sit in nn.Sequentials) and whether the next layer is a norm."""
    pairs = []
    for seq in net.modules():
        if isinstance(seq, nn.Sequential):
            layers = list(seq)
            for layer, after in zip(layers, [*layers[1:], None]):
                if isinstance(layer, CONVS):
                    pairs.append((layer, isinstance(after, NORMS)))
    return pairs


# --- U-Net ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "depth"), [(256, 8), (128, 7), (64, 6), (16, 4)])
def test_unet_depth_and_widths_follow_the_image_size(size, depth):
    with torch.device("meta"):
        g = UNetGenerator(image_shape=(3, size, size), base_channels=2)
    downs = [m for m in g.down.modules() if isinstance(m, nn.Conv2d)]
    assert g.num_downs == depth == len(downs) == count(g.up, nn.ConvTranspose2d)
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in downs)
    assert [c.out_channels for c in downs] == [2 * min(2**i, 8) for i in range(depth)]  # C64-C128-C256-C512-C512...


def test_unet_maps_images_to_images_in_range_through_a_1x1_bottleneck():
    torch.manual_seed(0)
    g = UNetGenerator(image_shape=(3, 32, 32), out_channels=2, base_channels=4)
    bottleneck = []
    g.down[-1].register_forward_hook(lambda module, args, out: bottleneck.append(tuple(out.shape)))
    x = torch.randn(2, 3, 32, 32)
    assert g(x).shape == (2, 2, 32, 32)
    assert bottleneck == [(2, 32, 1, 1)]  # base_channels * 8 at 1x1
    with torch.no_grad():
        g.up[-1][1].weight.mul_(1e4)  # drive the tanh into saturation
    y = g(x)
    assert y.abs().max() <= 1 and y.abs().max() > 0.999


def test_unet_with_fewer_downs_keeps_a_larger_bottleneck():
    g = UNetGenerator(image_shape=(3, 32, 32), base_channels=4, num_downs=3)
    bottleneck = []
    g.down[-1].register_forward_hook(lambda module, args, out: bottleneck.append(tuple(out.shape)))
    assert g(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32) and bottleneck == [(1, 16, 4, 4)]


def test_unet_has_no_norm_on_its_first_layer_nor_at_the_bottleneck():
    g = UNetGenerator(image_shape=(3, 32, 32), base_channels=4, norm=nn.BatchNorm2d)
    assert [count(block, nn.BatchNorm2d) for block in g.down] == [0, 1, 1, 1, 0]
    assert [count(block, nn.BatchNorm2d) for block in g.up] == [1, 1, 1, 1, 0]  # none before the tanh
    assert [type(block[0]) for block in g.down[1:]] == [nn.LeakyReLU] * 4
    assert all(block[0].negative_slope == 0.2 for block in g.down[1:])
    assert [type(block[0]) for block in g.up] == [nn.ReLU] * 5


def test_unet_skips_concatenate_the_mirrored_encoder_features():
    g = UNetGenerator(image_shape=(3, 32, 32), base_channels=4, dropout=0.0).eval()
    # Widths 4-8-16-32-32: the bottleneck's up conv reads 32, each later one twice its mirror's width.
    assert [block[1].in_channels for block in g.up] == [32, 64, 32, 16, 8]
    with torch.no_grad():  # kill the bottleneck: without skips the output could no longer follow the input
        g.down[-1][1].weight.zero_()
        g.down[-1][1].bias.zero_()
    x1, x2 = torch.randn(2, 1, 3, 32, 32)
    assert not torch.allclose(g(x1), g(x2), atol=1e-3)
    with torch.no_grad():  # and the decoder's first block now outputs zeros whatever the input
        assert g.up[0](g.down[-1](torch.randn(1, 32, 2, 2))).abs().max() == 0


@pytest.mark.parametrize(("size", "with_dropout"), [(256, 3), (32, 3), (8, 2), (4, 1)])
def test_unet_dropout_sits_on_the_three_innermost_decoder_layers(size, with_dropout):
    with torch.device("meta"):
        g = UNetGenerator(image_shape=(3, size, size), base_channels=2, dropout=0.3)
    flags = [count(block, nn.Dropout) for block in g.up]
    assert flags == [1] * with_dropout + [0] * (g.num_downs - with_dropout)  # never on the output layer
    assert all(m.p == 0.3 for m in g.modules() if isinstance(m, nn.Dropout))
    assert count(UNetGenerator(image_shape=(3, 16, 16), base_channels=2, dropout=0.0), nn.Dropout) == 0


def test_unet_dropout_is_random_in_train_mode_only():
    g = UNetGenerator(image_shape=(3, 16, 16), base_channels=4)
    x = torch.randn(1, 3, 16, 16)
    assert not torch.equal(g(x), g(x))
    g.eval()
    assert torch.equal(g(x), g(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_shape": (3, 48, 48)}, "power of two"),
        ({"image_shape": (3, 32, 32), "num_downs": 6}, r"num_downs in \[1, 5\]"),
        ({"image_shape": (3, 32, 32), "num_downs": 0}, r"num_downs in \[1, 5\]"),
        ({"image_shape": (3, 32, 32), "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_unet_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNetGenerator(base_channels=2, **kwargs)


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (1, 1, 32, 32), (3, 32, 32), (1, 3, 32, 64)])
def test_unet_rejects_the_wrong_input_size(shape):
    g = UNetGenerator(image_shape=(3, 32, 32), base_channels=2)
    with pytest.raises(ValueError, match=re.escape("expects images of shape (N, 3, 32, 32)")):
        g(torch.zeros(shape))


# --- ResNet generator ---------------------------------------------------------------------------------


@pytest.mark.parametrize("num_blocks", [0, 2, 6, 9])
def test_resnet_generator_layout(num_blocks):
    with torch.device("meta"):
        g = ResNetGenerator(base_channels=4, num_blocks=num_blocks)
    assert count(g, ResidualBlock) == num_blocks
    layout = [
        (type(m).__name__, m.kernel_size[0], m.stride[0], m.out_channels) for m in g.modules() if isinstance(m, CONVS)
    ]
    # c7s1-64, d128, d256, R256 x num_blocks (two 3x3 convs each), u128, u64, c7s1-3 (for base 64).
    assert layout == [("Conv2d", 7, 1, 4), ("Conv2d", 3, 2, 8), ("Conv2d", 3, 2, 16)] + [("Conv2d", 3, 1, 16)] * (
        2 * num_blocks
    ) + [("ConvTranspose2d", 3, 2, 8), ("ConvTranspose2d", 3, 2, 4), ("Conv2d", 7, 1, 3)]
    assert count(g, nn.ReflectionPad2d) == 2 + 2 * num_blocks and isinstance(g.net[-1], nn.Tanh)


def test_resnet_generator_maps_any_multiple_of_4_to_the_same_size_in_range():
    torch.manual_seed(0)
    g = ResNetGenerator(in_channels=1, out_channels=3, base_channels=4, num_blocks=2)
    x = torch.randn(2, 1, 32, 48)
    assert g(x).shape == (2, 3, 32, 48)
    with torch.no_grad():
        g.net[-2].weight.mul_(1e4)
    y = g(x)
    assert y.abs().max() <= 1 and y.abs().max() > 0.999


def test_residual_block_adds_its_body_to_the_input():
    torch.manual_seed(0)
    block = ResidualBlock(8)
    x = torch.randn(2, 8, 6, 6)
    assert_close(block(x), x + block.body(x))
    with torch.no_grad():  # a silenced last conv -> zeros after the instance norm -> the identity
        block.body[-2].weight.zero_()
        block.body[-2].bias.zero_()
    assert_close(block(x), x)


@pytest.mark.parametrize(
    ("shape", "message"),
    [((1, 3, 30, 32), "divisible by 4"), ((1, 3, 4, 4), "at least 8"), ((1, 2, 32, 32), r"\(N, 3, H, W\)")],
)
def test_resnet_generator_rejects_bad_inputs(shape, message):
    with pytest.raises(ValueError, match=message):
        ResNetGenerator(base_channels=2, num_blocks=1)(torch.zeros(shape))


# --- PatchGAN -------------------------------------------------------------------------------------------


def test_patchgan_gives_30x30_raw_logits_for_256_pairs():
    torch.manual_seed(0)
    d = PatchGANDiscriminator(in_channels=6, base_channels=2)
    assert d(torch.randn(2, 6, 256, 256)).shape == (2, 1, 30, 30)
    assert isinstance(d.net[-1], nn.Conv2d)  # logits: no sigmoid, the loss decides
    assert d(torch.randn(1, 6, 64, 96)).shape == (1, 1, 6, 10)  # floor(H / 8) - 2
    widths = [m.out_channels for m in d.modules() if isinstance(m, nn.Conv2d)]
    strides = [m.stride[0] for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert (widths, strides) == ([2, 4, 8, 16, 1], [2, 2, 2, 1, 1])  # C64-C128-C256-C512-1 for base 64


@pytest.mark.parametrize(("num_layers", "side"), [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_patchgan_receptive_field_matches_the_gradient_footprint(num_layers, side):
    torch.manual_seed(0)
    # No norm: instance statistics would make every logit depend on every pixel.
    d = PatchGANDiscriminator(in_channels=1, base_channels=2, num_layers=num_layers, norm=nn.Identity)
    assert d.receptive_field == side
    x = torch.randn(1, 1, 256, 256, dtype=torch.float64, requires_grad=True)
    out = d.double()(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero().flatten()
    cols = x.grad[0, 0].abs().sum(0).nonzero().flatten()
    assert 0 < rows.min() and rows.max() < 255 and 0 < cols.min() and cols.max() < 255  # not clipped
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (side, side)
    assert len(rows) == len(cols) == side  # a solid square


@pytest.mark.parametrize(
    ("shape", "message"),
    [((1, 3, 256, 256), r"\(N, 6, H, W\)"), ((1, 6, 23, 64), "needs H and W >= 24")],
)
def test_patchgan_rejects_bad_inputs(shape, message):
    with pytest.raises(ValueError, match=message):
        PatchGANDiscriminator(in_channels=6, base_channels=2)(torch.zeros(shape))


# --- shared: norm choice, init, parameter counts, config -----------------------------------------------

NETS = {
    "unet": lambda **kw: UNetGenerator(image_shape=(3, 16, 16), base_channels=4, **kw),
    "resnet": lambda **kw: ResNetGenerator(base_channels=4, num_blocks=2, **kw),
    "patchgan": lambda **kw: PatchGANDiscriminator(in_channels=6, base_channels=4, **kw),
}


@pytest.mark.parametrize("name", NETS)
def test_norm_choice_sets_the_norm_layers_and_the_conv_biases(name):
    instance, batch, none = NETS[name](), NETS[name](norm=BatchNorm), NETS[name](norm=nn.Identity)
    assert count(instance, nn.InstanceNorm2d) == count(batch, nn.BatchNorm2d) > 0
    assert count(instance, nn.BatchNorm2d) == count(batch, nn.InstanceNorm2d) == count(none, NORMS) == 0
    assert not any(m.affine or m.track_running_stats for m in instance.modules() if isinstance(m, nn.InstanceNorm2d))
    # BatchNorm's beta replaces the bias of the conv feeding it; every other conv keeps its bias.
    for net, drops_bias in ((instance, False), (batch, True), (none, False)):
        pairs = convs_feeding_norms(net)
        assert len(pairs) == count(net, CONVS)
        assert [conv.bias is None for conv, feeds_norm in pairs] == [drops_bias and f for _, f in pairs]
    assert any(feeds_norm for _, feeds_norm in convs_feeding_norms(batch))


def test_norm_must_return_a_module():
    with pytest.raises(TypeError, match="norm must return an nn.Module"):
        PatchGANDiscriminator(norm=lambda channels: channels)


@pytest.mark.parametrize(
    "build",
    [
        lambda: UNetGenerator(image_shape=(3, 32, 32), base_channels=32, norm=nn.BatchNorm2d),
        lambda: ResNetGenerator(base_channels=16, num_blocks=2, norm=nn.BatchNorm2d),
        lambda: PatchGANDiscriminator(in_channels=6, base_channels=16, norm=nn.BatchNorm2d),
    ],
    ids=["unet", "resnet", "patchgan"],
)
def test_init_is_pix2pix_normal(build):
    torch.manual_seed(0)
    net = build()
    convs = [m for m in net.modules() if isinstance(m, CONVS)]
    for conv in convs:
        if conv.weight.numel() >= 30_000:  # large enough for a tight estimate (PyTorch's default std is ~0.01)
            assert abs(conv.weight.std().item() - 0.02) < 0.0005 and abs(conv.weight.mean().item()) < 0.0005
        assert conv.bias is None or not conv.bias.any()
    assert any(conv.weight.numel() >= 30_000 for conv in convs)
    scales = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(scales.mean().item() - 1) < 0.003 and abs(scales.std().item() - 0.02) < 0.003
    assert not any(m.bias.any() for m in net.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize(
    ("build", "norm", "expected", "official"),
    [
        # The official code logs 54.414 M for pix2pix's unet_256 (batch norm): 54,413,955, as it also
        # drops the biases of the two convs with no norm after them (the first, the bottleneck's): 576.
        (lambda norm: UNetGenerator(norm=norm), BatchNorm, 54_414_531, 54.414),
        (lambda norm: UNetGenerator(norm=norm), InstanceNorm, 54_409_603, 54.410),
        (lambda norm: ResNetGenerator(norm=norm), InstanceNorm, 11_378_179, 11.378),  # CycleGAN G
        (lambda norm: PatchGANDiscriminator(6, norm=norm), BatchNorm, 2_768_705, 2.769),  # pix2pix D
        (lambda norm: PatchGANDiscriminator(3, norm=norm), InstanceNorm, 2_764_737, 2.765),  # CycleGAN D
    ],
    ids=["unet256-batch", "unet256-instance", "resnet9-instance", "patchgan6-batch", "patchgan3-instance"],
)
def test_paper_settings_have_the_official_parameter_counts(build, norm, expected, official):
    with torch.device("meta"):  # counts without allocating 54M floats
        n = num_params(build(norm))
    assert n == expected and abs(n / 1e6 - official) < 1e-3  # official: millions as the official code logs them


@pytest.mark.parametrize("cls", [UNetGenerator, ResNetGenerator, PatchGANDiscriminator])
@pytest.mark.parametrize(
    ("value", "norm_type", "affine_and_running_stats"),
    [
        (None, InstanceNorm, (False, False)),  # the default
        ("lightning_dgm.nets.BatchNorm", BatchNorm, (True, True)),
        ("torch.nn.BatchNorm2d", nn.BatchNorm2d, (True, True)),  # nothing carried over from the default
        ('{"class_path": "torch.nn.InstanceNorm2d", "init_args": {"affine": true}}', nn.InstanceNorm2d, (True, False)),
    ],
)
def test_norm_is_a_config_value(cls, value, norm_type, affine_and_running_stats):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "net")
    config = parser.parse_args(["--net.base_channels=2"] + ([f"--net.norm={value}"] if value else []))
    saved = parser.dump(config)
    for cfg in (config, parser.parse_string(saved)):  # also as reloaded from a saved config
        norms = [m for m in parser.instantiate(cfg).net.modules() if isinstance(m, NORMS)]
        assert norms and all(type(m) is norm_type for m in norms)
        assert {(m.affine, m.track_running_stats) for m in norms} == {affine_and_running_stats}


def test_translation_nets_build_through_the_real_cli(tmp_path):
    from lightning_dgm.cli import LightningDGMCLI

    config = {
        "trainer": {"logger": False, "enable_checkpointing": False, "default_root_dir": str(tmp_path)},
        "model": {
            "class_path": "lightning_dgm.models.GAN",
            "init_args": {
                "generator": {
                    "class_path": "lightning_dgm.nets.UNetGenerator",
                    "init_args": {
                        "image_shape": (3, 16, 16),
                        "base_channels": 4,
                        "norm": "lightning_dgm.nets.BatchNorm",
                    },
                },
                "discriminator": {
                    "class_path": "lightning_dgm.nets.PatchGANDiscriminator",
                    "init_args": {"in_channels": 6, "num_layers": 2, "norm": {"class_path": "torch.nn.Identity"}},
                },
            },
        },
        "data": {"class_path": "lightning_dgm.datamodules.DigitsDataModule", "init_args": {"image_size": 16}},
    }
    path = tmp_path / "translation.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = LightningDGMCLI(args=["--config", str(path)], run=False)
    g, d = cli.model.generator, cli.model.discriminator
    assert (g.in_channels, g.image_size) == (1, 16)  # image_shape linked from the data, over the YAML's
    assert count(g, BatchNorm) == 5 and count(g, nn.InstanceNorm2d) == 0
    assert count(d, NORMS) == 0 and d.receptive_field == 34
