"""BigGAN's networks (Brock et al. 2019) at the sizes of the public CIFAR-10 configs (PyTorch-StudioGAN's
`big_resnet`, BigGAN-PyTorch's `G_arch`/`D_arch`): a class-conditional residual G with conditional
BatchNorm and a hierarchical latent, a residual projection D, optional self-attention in both.

Plain nn.Modules, nothing about training. Every conv, linear and embedding gets an orthogonal init and
then spectral norm (`torch.nn.utils.parametrizations.spectral_norm`: one power iteration per forward
in train mode, none in eval mode), in G as well as in D (BigGAN's choice; SN-GAN normalised D only). G's shared class
embedding is normalised too (BigGAN-PyTorch and StudioGAN leave it free): with orthogonal init its
singular values start at 1 either way, and SN keeps the class vectors on the scale of z's chunks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from lightning_dgm.errors import ConfigError
from lightning_dgm.types import check_labels, check_shape

#: Image size -> (G's bottom map size, channel multipliers of `ch` from the bottom map up: block i maps
#: plan[i] to plan[i + 1]); BigGAN-PyTorch's G_arch, plus 28 px (MNIST) from a 7x7 map.
G_PLANS = {28: (7, (4, 4, 4)), 32: (4, (4, 4, 4, 4)), 64: (4, (16, 16, 8, 4, 2)), 128: (4, (16, 16, 8, 4, 2, 1))}
#: Image size -> D's blocks as (out channels / ch, downsample); the first block reads the image.
D_PLANS = {
    28: ((4, True), (4, True), (4, False), (4, False)),
    32: ((4, True), (4, True), (4, False), (4, False)),
    64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
}


def sn(module: nn.Module) -> nn.Module:
    """Orthogonal init (BigGAN's), zero bias, then spectral norm of the weight viewed as (out, -1)."""
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module)


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True) -> nn.Module:
    return sn(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias))


def _plan(image_shape: tuple[int, int, int], plans: dict, who: str):
    _, height, width = image_shape
    if height != width or height not in plans:
        raise ConfigError(f"{who} builds square images of {sorted(plans)} px, got image_shape {tuple(image_shape)}")
    return plans[height]


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias are linear maps of a conditioning vector c (N, cond_dim):
    y = BN(x) * (1 + W_gain c) + W_bias c (BigGAN's ccbn; de Vries et al. 2017). The gain is 1 plus a
    linear term rather than a linear map initialised at 1: a zero weight would make spectral norm
    divide by 0, so the "1 +" is what starts every gain at 1 up to the orthogonal initial W_gain c."""

    def __init__(self, num_features: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)
        self.gain = sn(nn.Linear(cond_dim, num_features, bias=False))
        self.bias = sn(nn.Linear(cond_dim, num_features, bias=False))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        gain, bias = 1 + self.gain(c), self.bias(c)
        return self.norm(x) * gain[:, :, None, None] + bias[:, :, None, None]


class SelfAttention(nn.Module):
    """Non-local block of SAGAN (Zhang et al. 2019) as in BigGAN: 1x1 convs to queries (C/8), keys
    (C/8) and values (C/2), keys and values max-pooled 2x2 (a quarter of the positions), output
    x + gamma * o(attention), gamma starting at 0 so the block starts as the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query, self.key = conv(channels, channels // 8, 1, False), conv(channels, channels // 8, 1, False)
        self.value, self.out = conv(channels, channels // 2, 1, False), conv(channels // 2, channels, 1, False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        query = self.query(x).flatten(2)  # (N, C/8, HW)
        key = F.max_pool2d(self.key(x), 2).flatten(2)  # (N, C/8, HW/4)
        value = F.max_pool2d(self.value(x), 2).flatten(2)  # (N, C/2, HW/4)
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)  # (N, HW, HW/4)
        o = (value @ attention.transpose(1, 2)).view(n, c // 2, h, w)
        return x + self.gamma * self.out(o)


class GeneratorBlock(nn.Module):
    """Residual up-block: CBN-ReLU-upsample-conv3x3-CBN-ReLU-conv3x3, skip = upsample + conv1x1; 2x the size."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = ConditionalBatchNorm2d(in_channels, cond_dim), conv(in_channels, out_channels)
        self.bn2, self.conv2 = ConditionalBatchNorm2d(out_channels, cond_dim), conv(out_channels, out_channels)
        self.skip = conv(in_channels, out_channels, 1)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class BigGANGenerator(nn.Module):
    """(z (N, latent_dim), labels (N,)) -> images (N, *image_shape) in [-1, 1] (tanh output).

    Hierarchical latent: z is cut into 1 + (number of blocks) equal chunks. The first goes through a
    linear layer to the bottom map (ch * plan[0] channels, 4x4; 7x7 for 28 px); block i gets chunk
    i + 1 concatenated with the shared class embedding (embedding_dim), and that vector sets the
    gain and bias of both conditional BatchNorms of the block. Then BN-ReLU-conv3x3-tanh (plain BN).

    Args:
        latent_dim: size of z; a multiple of the number of chunks (4 at 32 px: 80 = 4 x 20).
        num_classes: number of classes; linked from the datamodule by the CLI.
        image_shape: (C, H, W), H = W in 28, 32, 64, 128; linked from the datamodule by the CLI.
        ch: width multiplier (96 in the published CIFAR-10 configs).
        embedding_dim: size of the shared class embedding (128).
        attention_resolution: add self-attention after the block that outputs this size (None: none).
    """

    def __init__(
        self,
        latent_dim: int = 80,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        ch: int = 96,
        embedding_dim: int = 128,
        attention_resolution: int | None = 16,
    ) -> None:
        super().__init__()
        bottom, plan = _plan(image_shape, G_PLANS, "BigGANGenerator")
        num_blocks = len(plan) - 1
        sizes = [bottom * 2 ** (i + 1) for i in range(num_blocks)]
        if latent_dim % (num_blocks + 1):
            raise ConfigError(
                f"BigGANGenerator cuts z into {num_blocks + 1} equal chunks at {image_shape[1]} px: latent_dim "
                f"must be a multiple of {num_blocks + 1}, got {latent_dim}"
            )
        if attention_resolution is not None and attention_resolution not in sizes:
            raise ConfigError(f"BigGANGenerator's attention_resolution must be one of {sizes} or None")
        if num_classes < 1:
            raise ConfigError(f"BigGANGenerator needs num_classes >= 1, got {num_classes}")
        self.latent_dim, self.num_classes, self.image_shape = latent_dim, num_classes, tuple(image_shape)
        self.chunk, self.bottom, self.channels = latent_dim // (num_blocks + 1), bottom, [ch * m for m in plan]
        self.embed = sn(nn.Embedding(num_classes, embedding_dim))  # shared by every block
        self.linear = sn(nn.Linear(self.chunk, self.channels[0] * bottom * bottom))
        cond_dim = self.chunk + embedding_dim
        self.blocks = nn.ModuleList(GeneratorBlock(i, o, cond_dim) for i, o in zip(self.channels, self.channels[1:]))
        self.attention = nn.ModuleDict(
            {str(i): SelfAttention(self.channels[i + 1]) for i, s in enumerate(sizes) if s == attention_resolution}
        )
        self.out_norm = nn.BatchNorm2d(self.channels[-1])
        self.out = conv(self.channels[-1], self.image_shape[0])

    def forward(self, z: Tensor, labels: Tensor, shared: Tensor | None = None) -> Tensor:
        """`shared` (N, embedding_dim), optional: class embeddings to use instead of those of `labels`
        (e.g. mixtures of two classes' rows of `embed`, for class interpolations)."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ConfigError(f"BigGANGenerator expects noise of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        chunks = z.split(self.chunk, dim=1)
        if shared is None:
            check_labels(labels, len(z), self.num_classes, "BigGANGenerator")
            shared = self.embed(labels.long())
        elif shared.shape != (len(z), self.embed.embedding_dim):
            raise ConfigError(
                f"BigGANGenerator: shared embeddings must be ({len(z)}, {self.embed.embedding_dim}), "
                f"got {tuple(shared.shape)}"
            )
        shared = shared.to(z.dtype)
        h = self.linear(chunks[0]).view(len(z), self.channels[0], self.bottom, self.bottom)
        for i, (block, chunk) in enumerate(zip(self.blocks, chunks[1:])):
            h = block(h, torch.cat([chunk, shared], dim=1))
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out(F.relu(self.out_norm(h))))


class DiscriminatorBlock(nn.Module):
    """Residual down-block: [ReLU]-conv3x3-ReLU-conv3x3-[avgpool 2x2]. The first block of D has no
    pre-activation (ReLU of the image would discard its negative half) and its skip pools before the
    1x1 conv; the others convolve first (BigGAN-PyTorch's DBlock)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, preactivation: bool) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv(in_channels, out_channels), conv(out_channels, out_channels)
        self.skip = conv(in_channels, out_channels, 1) if in_channels != out_channels or downsample else None
        self.downsample, self.preactivation = downsample, preactivation

    def _pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: Tensor) -> Tensor:
        h = self._pool(self.conv2(F.relu(self.conv1(F.relu(x) if self.preactivation else x))))
        if self.skip is None:
            return h + x
        skip = self._pool(self.skip(x)) if self.preactivation else self.skip(self._pool(x))
        return h + skip


class BigGANDiscriminator(nn.Module):
    """(images (N, *image_shape) in [-1, 1], labels (N,)) -> realness logits (N, 1).

    Residual down-blocks, ReLU, global sum pooling to phi(x) (N, C), then the projection head
    (Miyato & Koyama 2018, eq. 3): logit = psi(phi(x)) + <embed(y), phi(x)>, psi linear.

    Args:
        image_shape: (C, H, W), H = W in 28, 32, 64, 128; linked from the datamodule by the CLI.
        num_classes: number of classes; linked from the datamodule by the CLI.
        ch: width multiplier (96 in the published CIFAR-10 configs).
        attention_resolution: add self-attention after the first block that outputs this size (None: none).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        num_classes: int = 10,
        ch: int = 96,
        attention_resolution: int | None = 16,
    ) -> None:
        super().__init__()
        plan = _plan(image_shape, D_PLANS, "BigGAN Discriminator")
        if num_classes < 1:
            raise ConfigError(f"BigGANDiscriminator needs num_classes >= 1, got {num_classes}")
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        channels, size, sizes = [self.image_shape[0]] + [ch * m for m, _ in plan], self.image_shape[1], []
        blocks = []
        for i, (_, down) in enumerate(plan):
            blocks.append(DiscriminatorBlock(channels[i], channels[i + 1], down, preactivation=i > 0))
            size = size // 2 if down else size
            if size == attention_resolution and not any(isinstance(b, SelfAttention) for b in blocks):
                blocks.append(SelfAttention(channels[i + 1]))
            sizes.append(size)
        if attention_resolution is not None and attention_resolution not in sizes:
            raise ConfigError(f"BigGANDiscriminator's attention_resolution must be one of {sorted(set(sizes))} or None")
        self.blocks = nn.Sequential(*blocks)
        self.head = sn(nn.Linear(channels[-1], 1))
        self.embed = sn(nn.Embedding(num_classes, channels[-1]))

    def features(self, x: Tensor) -> Tensor:
        """phi(x) (N, C): the last blocks' map after ReLU, summed over positions."""
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        check_shape(x, self.image_shape, "BigGANDiscriminator")
        check_labels(labels, len(x), self.num_classes, "BigGANDiscriminator")
        phi = self.features(x)
        return self.head(phi) + (self.embed(labels.long()).to(phi.dtype) * phi).sum(dim=1, keepdim=True)


__all__ = [
    "BigGANDiscriminator",
    "BigGANGenerator",
    "ConditionalBatchNorm2d",
    "DiscriminatorBlock",
    "GeneratorBlock",
    "SelfAttention",
]
