"""Content losses of super-resolution (Ledig et al. 2017, sec. 2.2.1): how far an SR image is from its
HR target, by pixels or in a VGG-19 feature space. Chosen by class in YAML (`content:`)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_dgm.errors import CheckpointError, ConfigError, MissingFileError

# torchvision's ImageNet VGG-19 (the network of the SRGAN paper's VGG losses).
VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ContentLoss(nn.Module):
    """forward(sr, hr) -> scalar loss; both (N, C, H, W) in [-1, 1], gradients flow to `sr` only."""

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        raise NotImplementedError


class PixelMSE(ContentLoss):
    """Mean squared pixel error on the framework's [-1, 1] scale (4x the MSE on [0, 1]): the loss
    of SRResNet and of the paper's SRGAN-MSE."""

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return F.mse_loss(sr.float(), hr.float())


def vgg19_layer_index(layer: str) -> int:
    """Index in torchvision's `vgg19().features` of a layer named as in the paper ("relu5_4",
    "conv2_2", "pool3"): block b counts max-pools, layer i the convs within a block."""
    from torchvision.models.vgg import cfgs

    block, conv, names = 1, 0, []
    for v in cfgs["E"]:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    if layer not in names:
        raise ConfigError(f"layer must name a VGG-19 layer (relu2_2, relu5_4, conv3_1, pool4, ...), got {layer!r}")
    return names.index(layer)


def vgg19_weights_path(weights_path: str | os.PathLike | None = None) -> Path:
    """The local VGG-19 weights: `weights_path`, else `$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`
    (where torchvision keeps them). Never downloads: a missing file is one error saying what to fetch."""
    target = (
        Path(weights_path).expanduser()
        if weights_path is not None
        else Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    )
    if target.is_file():
        return target
    raise MissingFileError(
        f"VGG-19 weights not found at {target}. Nothing is downloaded at run time: fetch torchvision's "
        f"ImageNet VGG-19 weights {VGG19_FILE} from {VGG19_URL} and save them as {target} "
        f"(`mkdir -p {target.parent} && curl -L -o {target} {VGG19_URL}`), or pass weights_path= the file's location."
    )


class VGGFeatures(ContentLoss):
    """VGG loss: mean squared error between VGG-19 features of SR and HR images, the features
    multiplied by `rescale` (the paper's 1/12.75, "to obtain VGG losses of a scale comparable to the
    MSE loss"; the loss is then MSE / 12.75^2). Images go from [-1, 1] to [0, 1] and are normalised
    with ImageNet's mean and std, as torchvision's VGG was trained.

    The network (torchvision's `vgg19().features` up to `layer`) loads only from a local file of
    torchvision's state_dict (see `vgg19_weights_path`), holding at least the `features.*` entries up
    to `layer`. It is frozen and kept outside the module tree: it is never in `parameters()`,
    `state_dict()` or a checkpoint, and follows the inputs' device.

    Args:
        weights_path: the `.pth` file; None looks for vgg19-dcbb9e9d.pth in `$TORCH_HOME/hub/checkpoints/`.
        layer: the features compared: "relu5_4" (the paper's VGG54, SRGAN's default) or "relu2_2" (VGG22), ...
        rescale: features are multiplied by this before the MSE.
    """

    def __init__(self, weights_path: str | None = None, layer: str = "relu5_4", rescale: float = 1 / 12.75) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        index = vgg19_layer_index(layer)
        path = vgg19_weights_path(weights_path)
        network = make_layers(cfgs["E"])[: index + 1]
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            wanted = {k for k in network.state_dict()}
            found = {k.removeprefix("features."): v for k, v in state.items() if k.removeprefix("features.") in wanted}
            network.load_state_dict(found)  # strict: every layer up to `layer` must be in the file
        except Exception as error:
            raise CheckpointError(
                f"{path} does not hold torchvision's VGG-19 weights up to {layer} "
                f"({' '.join(str(error).split())[:160]}); fetch {VGG19_URL}"
            ) from error
        self.layer, self.rescale, self.weights_file = layer, rescale, path.name
        self._network = (network.eval().requires_grad_(False),)  # a tuple: not registered as a submodule
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def network(self) -> nn.Sequential:
        return self._network[0]

    def features(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) in [-1, 1] -> rescaled VGG features (N, K, H', W')."""
        network = self.network
        if next(network.parameters()).device != images.device:
            network.to(images.device)
        return network((images.float().add(1).div(2) - self.mean) / self.std) * self.rescale

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.features(hr)
        return F.mse_loss(self.features(sr), target)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, rescale={self.rescale:.6g}, weights={self.weights_file}"
