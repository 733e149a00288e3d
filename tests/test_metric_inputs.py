"""What the sample-quality callbacks feed their metrics: one Inception forward for features and
logits, the real-feature cache, each rank's share of the evaluation images, and the values of
SampleMetrics / TranslationMetrics against torchmetrics and the core on the same features."""

import warnings
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.testing import assert_close
from torchmetrics.image import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance

from lightning_dgm.callbacks import RealFeatureCache, SampleMetrics, TranslationMetrics
from lightning_dgm.callbacks.real_features import _shard, rank_share
from lightning_dgm.datamodules import DigitsDataModule, MNISTDataModule, UnpairedDataModule
from lightning_dgm.metrics import (
    INCEPTION_FILE,
    FeaturesAndLogits,
    FrechetDistance,
    ImageFeatures,
    InceptionFeatures,
    KernelDistance,
    frechet_distance,
    gaussian_statistics,
    kernel_inception_distance,
)
from lightning_dgm.metrics import InceptionScore as OurInceptionScore
from lightning_dgm.types import signed_unit_to_uint8, to_signed_unit
from tests.helpers import write_domain, write_mnist
from tests.test_metric_core import Given
from tests.test_sample_metrics import RandomProjection, ReplaySystem, stand_in_inception
from tests.test_translation_runs import Shift

EXACT = dict(rtol=0, atol=0)


def validate(callback, system, datamodule):
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[callback]
    )
    trainer.validate(system, datamodule=datamodule, verbose=False)
    return {k: v for k, v in trainer.callback_metrics.items()}


def one_process(datamodule):
    """What RealFeatureCache.features reads of a trainer, for one CPU process."""
    return SimpleNamespace(
        datamodule=datamodule,
        world_size=1,
        global_rank=0,
        local_rank=0,
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision),
        lightning_module=SimpleNamespace(device=torch.device("cpu")),
    )


# -- one Inception forward for FID / KID features and IS logits ------------------------------------
@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / INCEPTION_FILE
    stand_in_inception(path)
    return path


def count_forwards(*extractors):
    counts = {id(e): 0 for e in extractors}
    for extractor in extractors:
        extractor.network.register_forward_hook(lambda *_, key=id(extractor): counts.__setitem__(key, counts[key] + 1))
    return lambda extractor: counts[id(extractor)]


def test_one_inception_forward_gives_the_features_and_the_logits(inception_file):
    image = torch.randint(0, 256, (1, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    pool = InceptionFeatures(weights_path=str(inception_file))
    for kind in ("logits_unbiased", "logits"):
        classifier = InceptionFeatures(weights_path=str(inception_file), feature=kind)
        alone = pool(image), classifier(image)
        both = FeaturesAndLogits(pool, classifier)
        forwards = count_forwards(pool, classifier)
        features, logits = both(image)
        assert both.shared and (forwards(pool), forwards(classifier)) == (1, 0)
        assert_close(features, alone[0], **EXACT) and assert_close(logits, alone[1], **EXACT)  # what each gives alone
    # Not one network (another resize, another layer, another extractor): each its own forward.
    assert not FeaturesAndLogits(pool, InceptionFeatures(weights_path=str(inception_file), antialias=True)).shared
    assert not FeaturesAndLogits(InceptionFeatures(weights_path=str(inception_file), feature=768), classifier).shared
    small = ImageFeatures(RandomProjection(3 * 24 * 24, 4), num_features=4)
    apart = FeaturesAndLogits(small, ImageFeatures(RandomProjection(3 * 24 * 24, 3, seed=1), num_features=3))
    assert not apart.shared and not FeaturesAndLogits(pool, small).shared
    assert apart(image, features=False)[0] is None and apart(image, logits=False)[1] is None
    assert FeaturesAndLogits(None, apart.classifier)(image)[0] is None


def test_sample_metrics_run_one_inception_forward_per_batch_for_fid_and_is(inception_file, tmp_path):
    metrics = SampleMetrics(
        InceptionFeatures(weights_path=str(inception_file)),
        classifier=InceptionFeatures(weights_path=str(inception_file), feature="logits_unbiased"),
        metrics=[FrechetDistance(), OurInceptionScore(splits=2)],
        num_samples=2,
        num_real_samples=2,
        batch_size=1,
        cache_dir=str(tmp_path / "cache"),
    )
    forwards = count_forwards(metrics.feature, metrics.classifier)
    values = validate(metrics, ReplaySystem(0.1), DigitsDataModule(image_size=8, val_size=150, test_size=300))
    # Batches of one image: 2 real, 2 generated, each through Inception once; none through the classifier's copy.
    assert (forwards(metrics.feature), forwards(metrics.classifier)) == (4, 0)
    assert metrics.extractors.shared and sorted(values) == ["val/fid", "val/is_mean", "val/is_std"]
    assert all(torch.isfinite(v) for v in values.values())


# -- the real-feature cache ------------------------------------------------------------------------
def test_cache_keys_need_hparams_and_follow_split_field_count_and_draw_seed(tmp_path):
    cache = RealFeatureCache(ImageFeatures(RandomProjection(), num_features=16), tmp_path, 50, seed=0)
    data = DigitsDataModule(image_size=8, val_size=150, test_size=300)
    base = cache.path(cache.key(data, "train", 100))
    assert (
        cache.path(cache.key(data, "test", 100)) != base and cache.path(cache.key(data, "train", 100, "target")) != base
    )
    reseeded = RealFeatureCache(cache.extractor, tmp_path, 50, seed=1)
    assert reseeded.path(reseeded.key(data, "train", 100)) != base
    assert RealFeatureCache(cache.extractor, tmp_path, 7, seed=0).path(cache.key(data, "train", 100)) == base

    class Bare(L.LightningDataModule):
        image_shape = (1, 8, 8)

    with pytest.raises(ValueError, match=r"Bare records none in `hparams`: call `self.save_hyperparameters\(\)`"):
        cache.key(Bare(), "train", 100)


def test_cache_writes_once_reads_back_and_refuses_a_file_of_another_setting(tmp_path):
    projection = RandomProjection()
    cache = RealFeatureCache(ImageFeatures(projection, num_features=16), tmp_path, 500, seed=0)
    data = DigitsDataModule(image_size=8, val_size=150, test_size=300)
    features = cache.features(one_process(data), "test", 250)
    images = torch.cat([batch.image for batch in data.evaluation_batches("test", 250)])
    assert_close(features, cache.extractor(signed_unit_to_uint8(images)), **EXACT)
    assert projection.images_seen == 2 * 250 and [p.suffix for p in tmp_path.iterdir()] == [".pt"]  # no partial file
    assert_close(cache.features(one_process(data), "test", 250), features, **EXACT)
    assert projection.images_seen == 2 * 250  # read back, not extracted

    (path,) = tmp_path.iterdir()
    torch.save({"key": {"another": "setting"}, "features": features}, path)
    with pytest.raises(ValueError, match="made for another setting: delete it"):
        cache.features(one_process(data), "test", 250)


def test_data_drawn_afresh_is_drawn_from_the_callbacks_seed(tmp_path):
    write_mnist(tmp_path / "data", n_train=20, n_test=4)

    def real(seed):
        cache = RealFeatureCache(ImageFeatures(RandomProjection(784, 8), num_features=8), tmp_path / "c", 8, seed)
        data = MNISTDataModule(data_dir=str(tmp_path / "data"), download=False, val_size=2, binarize=True)
        return cache.features(one_process(data), "train", 18)

    assert_close(real(0), real(0), **EXACT)  # a fresh datamodule, the same draw
    assert not torch.equal(real(0), real(1))


# -- each rank's share -------------------------------------------------------------------------------
def test_each_rank_keeps_its_consecutive_block_of_the_stream():
    batches = [torch.arange(0, 4), torch.arange(4, 8), torch.arange(8, 10)]
    shares = [rank_share(10, SimpleNamespace(world_size=3, global_rank=r)) for r in range(3)]
    assert shares == [(0, 4), (4, 7), (7, 10)]
    assert [torch.cat(list(_shard(iter(batches), *share))).tolist() for share in shares] == [
        [0, 1, 2, 3],
        [4, 5, 6],
        [7, 8, 9],
    ]
    assert list(_shard(iter(batches), 10, 10)) == []


# -- the values, against torchmetrics and the core on the same features --------------------------------
def test_sample_metrics_give_torchmetrics_values_on_the_same_features(tmp_path):
    feature = ImageFeatures(RandomProjection(), num_features=16)
    classifier = ImageFeatures(RandomProjection(64, 5, seed=3), num_features=5)
    metrics = SampleMetrics(
        feature,
        classifier,
        metrics=[FrechetDistance(), KernelDistance(subsets=20, subset_size=300), OurInceptionScore(splits=4)],
        num_samples=1000,
        batch_size=300,
        seed=7,
        cache_dir=str(tmp_path),
    )
    data = DigitsDataModule(image_size=8, val_size=150, test_size=300)
    logged = validate(metrics, ReplaySystem(0.3), data)

    # The same images: the train split, and ReplaySystem's samples (batches of 300, noise seeded by `seed`).
    real = torch.cat([signed_unit_to_uint8(batch.image) for batch in data.evaluation_batches("train")])
    train, generator, generated = data.train_set.images, torch.Generator().manual_seed(7), []
    for index in torch.arange(1000).split(300):
        x = to_signed_unit(train[index % len(train)])
        generated.append(signed_unit_to_uint8((x + 0.3 * torch.randn(x.shape, generator=generator)).clamp(-1, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fid = FrechetInceptionDistance(feature=Given(16))
        kid = KernelInceptionDistance(feature=Given(16), subsets=20, subset_size=300)
        score = InceptionScore(feature=Given(5), splits=4)
    fid.update(feature(real), real=True), kid.update(feature(real), real=True)
    for images in generated:
        fid.update(feature(images), real=False), kid.update(feature(images), real=False)
        score.update(classifier(images))
    torch.manual_seed(7)
    kid_mean, kid_std = kid.compute()
    torch.manual_seed(7)
    is_mean, is_std = score.compute()
    expected = {"fid": fid.compute(), "kid_mean": kid_mean, "kid_std": kid_std, "is_mean": is_mean, "is_std": is_std}
    assert_close({k: logged[f"val/{k}"] for k in expected}, expected, **EXACT)


def test_translation_metrics_score_each_translation_against_each_target(tmp_path):
    write_domain(tmp_path, "testA", 7, seed=0, size=8), write_domain(tmp_path, "testB", 5, seed=50, size=8)
    write_domain(tmp_path, "trainA", 2, seed=0, size=8), write_domain(tmp_path, "trainB", 2, seed=0, size=8)
    feature = ImageFeatures(RandomProjection(3 * 8 * 8, 6), num_features=6)
    metrics = TranslationMetrics(
        feature,
        metrics=[FrechetDistance(), KernelDistance(subsets=4, subset_size=4)],
        batch_size=3,
        cache_dir=str(tmp_path / "c"),
    )
    data = UnpairedDataModule(str(tmp_path), load_size=8, crop_size=8)
    logged = validate(metrics, Shift(0.25), data)

    assert data.domain_sizes("val") == (7, 5)
    pairs = list(data.evaluation_batches("val"))  # 7 items: sources 0..6, targets 0..4 then 0, 1 again
    sources, targets = torch.cat([p.source for p in pairs]), torch.cat([p.target for p in pairs])[:5]
    real = feature(signed_unit_to_uint8(targets))
    generated = feature(signed_unit_to_uint8((sources + 0.25).clamp(-1, 1)))
    r, g = gaussian_statistics(real), gaussian_statistics(generated)
    kid = kernel_inception_distance(real, generated, 4, 4, torch.Generator().manual_seed(0))
    assert_close(logged["val/fid"], frechet_distance(r.mean, r.cov, g.mean, g.cov).float())
    # Features of batches of 3 against all at once: on some CPUs a matmul's rounding depends on the batch
    # size (seen: 9e-8 in KID), so float32 tolerance, not bit equality.
    assert_close((logged["val/kid_mean"], logged["val/kid_std"]), tuple(kid))
    assert metrics.protocol(SimpleNamespace(datamodule=data, world_size=1), "val", "val")["val_real"] == (
        "val split, its 5 target images, each once"
    )
    with pytest.raises(ValueError, match="compares translations with the target domain"):
        TranslationMetrics(feature, metrics=[OurInceptionScore()])
