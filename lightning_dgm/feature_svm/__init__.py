"""DCGAN's feature-learning evaluation (Radford, Metz & Chintala 2015, Sec. 5.1 and 5.2).

A trained discriminator as a feature extractor: each conv layer's activation map is max-pooled
to a 4x4 grid, the grids are flattened and concatenated, and a linear L2-SVM (squared hinge loss,
L2 penalty: scikit-learn's LinearSVC, one-vs-rest) is trained on labelled train images and scored
on the test split. The paper reports SVHN with 1,000 class-balanced labels (22.48% test error).
The same procedure on the same discriminator class, freshly initialised (N(0, 0.02)), is printed
beside it: what the features owe to GAN training rather than to the architecture. With `--seed`
equal to the run's `seed_everything` (0 in every config) it is exactly the trained D's initial state.

    python -m lightning_dgm.feature_svm --ckpt_path runs/dcgan_svhn/version_0/checkpoints/last.ckpt \\
        --num_labels 1000

Choices the paper leaves open, made here:
  * features are the maps after each conv block's activation (conv -> [BatchNorm] -> LeakyReLU),
    from `discriminator.features(x)`; D's last conv is its 1-channel logit, not a feature layer;
  * D runs in eval mode (BatchNorm uses its running statistics), so an image's features do not
    depend on the rest of its batch;
  * features are standardised (StandardScaler, fitted on the SVM's train images);
  * C, which the paper does not state, is the value of `--C` with the best accuracy on the
    datamodule's validation split (ties: the smallest C), chosen separately for each discriminator;
  * `--num_labels` train images are drawn class-balanced ("uniformly class distributed"), seeded.

The model is rebuilt from the checkpoint's own hyperparameters (the CLI stores them complete,
data-linked `image_shape` included); the run's config gives the datamodule, with `--data.*` overrides
(relative paths in it are read from the current folder, as in `fit`).
"""

from lightning_dgm.feature_svm.command import build_parser, load_discriminators, main
from lightning_dgm.feature_svm.features import (
    DEFAULT_C,
    POOLED_SIDE,
    SVMResult,
    balanced_subset,
    conv_discriminator,
    conv_features,
    evaluate_svm,
    extract_features,
    fit_svm,
)

__all__ = [
    "DEFAULT_C",
    "POOLED_SIDE",
    "SVMResult",
    "balanced_subset",
    "build_parser",
    "conv_discriminator",
    "conv_features",
    "evaluate_svm",
    "extract_features",
    "fit_svm",
    "load_discriminators",
    "main",
]
