"""The super-resolution literature's image-quality protocol: PSNR and SSIM on the Y channel of
YCbCr, `shave` pixels cut from every border, per image (then averaged by the caller).

Protocol, as the Set5/Set14/BSD100 tables of SRCNN, SRGAN and EDSR compute it:
  1. both images are quantised to 8 bits (an SR output is saved as a PNG before it is scored);
  2. Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in [0, 255], i.e. ITU-R BT.601
     luma as MATLAB's `rgb2ycbcr` computes it (Y in [16, 235]); Y is not rounded again (as the
     Python ports of the protocol, e.g. BasicSR, do; MATLAB rounds it, a difference of ~0.01 dB);
  3. `shave` (= the scale) pixels are cut from each border;
  4. PSNR = 10 log10(255^2 / MSE) and SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5,
     K1 = 0.01, K2 = 0.03, data range 255, "valid" windows only) by torchmetrics' functional API.
PSNR of identical images is +inf (MSE 0), as torchmetrics returns it; it is not capped, so a mean
over images containing a perfect one is +inf too.
"""

from __future__ import annotations

from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from lightning_dgm.errors import ConfigError
from lightning_dgm.types import signed_unit_to_uint8

#: MATLAB rgb2ycbcr's luma row, for R, G, B in [0, 1] -> Y in [16, 235] (offset 16)
BT601_Y = (65.481, 128.553, 24.966)


def rgb_to_y(images: Tensor) -> Tensor:
    """RGB (N, 3, H, W) float in [0, 255] -> Y (N, 1, H, W) in [16, 235], BT.601 as MATLAB's rgb2ycbcr."""
    weights = images.new_tensor(BT601_Y).view(1, 3, 1, 1) / 255.0
    return 16.0 + (images * weights).sum(dim=1, keepdim=True)


def y_psnr_ssim(sr: Tensor, hr: Tensor, shave: int) -> tuple[Tensor, Tensor]:
    """Per-image Y-channel PSNR (dB) and SSIM of SR images against HR images, both (N, 3, H, W) in
    [-1, 1] (the framework's range), after quantising to 8 bits and shaving `shave` pixels per
    border. Returns two float64 tensors (N,)."""
    if sr.shape != hr.shape or sr.dim() != 4 or sr.shape[1] != 3:
        raise ConfigError(
            f"expected two RGB batches (N, 3, H, W) of one shape, got {tuple(sr.shape)}, {tuple(hr.shape)}"
        )
    if min(hr.shape[-2:]) <= 2 * shave + 10:
        raise ConfigError(
            f"images of {tuple(hr.shape[-2:])} px are too small to score with {shave} shaved and SSIM's 11x11 window"
        )
    sr_y, hr_y = (rgb_to_y(signed_unit_to_uint8(x).double()) for x in (sr, hr))
    if shave:
        sr_y, hr_y = sr_y[..., shave:-shave, shave:-shave], hr_y[..., shave:-shave, shave:-shave]
    psnr = peak_signal_noise_ratio(sr_y, hr_y, data_range=255.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(sr_y, hr_y, data_range=255.0, reduction="none")
    return psnr, ssim


__all__ = ["BT601_Y", "rgb_to_y", "y_psnr_ssim"]
