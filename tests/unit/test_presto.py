"""Our Presto encoder on the published weights, its Sentinel-2-only inputs and the classifier."""

import pytest
import torch

from models.presto import (
    CHANNEL_GROUPS,
    DYNAMIC_WORLD_UNKNOWN,
    PRESTO_WEIGHTS,
    PrestoClassifier,
    PrestoEncoder,
    load_presto_encoder,
    presto_inputs,
)

MEANS = [0.05, 0.08, 0.07, 0.12, 0.2, 0.24, 0.26, 0.28, 0.2, 0.12]
STDS = [0.02, 0.03, 0.04, 0.04, 0.06, 0.08, 0.09, 0.09, 0.06, 0.05]


@pytest.fixture(scope="module")
def encoder() -> PrestoEncoder:
    return load_presto_encoder()


def reflectance(pixels: int, time: int, seed: int = 0) -> torch.Tensor:
    """``(pixels, time, 10)`` plausible surface reflectance."""
    generator = torch.Generator().manual_seed(seed)
    return 0.02 + 0.4 * torch.rand(pixels, time, 10, generator=generator)


def cube(batch: int, time: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``(batch, time, band, y, x)`` reflectance."""
    pixels = reflectance(batch * height * width, time, seed)
    return pixels.reshape(batch, height, width, time, 10).permute(0, 3, 4, 1, 2)


def test_published_weights_load_strictly_and_fill_every_encoder_key(encoder: PrestoEncoder) -> None:
    state = torch.load(PRESTO_WEIGHTS, map_location="cpu", weights_only=True)
    published = {key.removeprefix("encoder."): value for key, value in state.items() if key.startswith("encoder.")}
    assert all(key.startswith("decoder.") for key in state if not key.startswith("encoder."))
    assert set(encoder.state_dict()) == set(published)
    assert all(torch.equal(value, published[key]) for key, value in encoder.state_dict().items())
    assert not encoder.training


def test_the_published_weights_change_the_embedding(encoder: PrestoEncoder) -> None:
    torch.manual_seed(0)
    untrained = PrestoEncoder().eval()
    inputs = presto_inputs(reflectance(4, 6), start_month=4, latitude=50.75, longitude=4.06)
    with torch.no_grad():
        assert not torch.allclose(encoder(*inputs), untrained(*inputs), atol=1e-3)


def test_inputs_mask_exactly_the_groups_sentinel2_lacks() -> None:
    inputs = presto_inputs(reflectance(3, 5), start_month=11, latitude=50.75, longitude=4.06)
    s2_and_ndvi = {"S2_RGB", "S2_Red_Edge", "S2_NIR_10m", "S2_NIR_20m", "S2_SWIR", "NDVI"}
    for group, channels in CHANNEL_GROUPS.items():
        expected = 0.0 if group in s2_and_ndvi else 1.0
        assert bool((inputs.mask[:, :, list(channels)] == expected).all()), group
    assert bool((inputs.dynamic_world == DYNAMIC_WORLD_UNKNOWN).all())
    assert inputs.month.tolist() == [10, 10, 10]  # November, 0-based
    torch.testing.assert_close(inputs.latlons, torch.tensor([[50.75, 4.06]] * 3))


def test_inputs_carry_reflectance_and_ndvi() -> None:
    series = torch.zeros(3, 1, 10)
    series[:, 0, 2] = torch.tensor([0.1, 0.0, 0.3])  # B04
    series[:, 0, 6] = torch.tensor([0.5, 0.0, 0.1])  # B08
    inputs = presto_inputs(series, start_month=1, latitude=0.0, longitude=0.0)
    assert torch.equal(inputs.x[:, :, 2:12], series)
    assert inputs.x[:, 0, 16].tolist() == pytest.approx([0.4 / 0.6, 0.0, -0.2 / 0.4])


def test_a_pixel_with_a_missing_token_embeds_as_if_alone(encoder: PrestoEncoder) -> None:
    """Masks that differ between pixels (attention mask) give what dropping the token gives."""
    inputs = presto_inputs(reflectance(2, 4), start_month=4, latitude=50.75, longitude=4.06)
    mask = inputs.mask.clone()
    mask[0, 2, list(CHANNEL_GROUPS["S2_SWIR"])] = 1.0
    mixed = inputs._replace(mask=mask)
    alone = presto_inputs(reflectance(2, 4)[:1], start_month=4, latitude=50.75, longitude=4.06)._replace(mask=mask[:1])
    with torch.no_grad():
        together = encoder(*mixed)
        torch.testing.assert_close(together[0], encoder(*alone)[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(together[1], encoder(*inputs)[1], atol=1e-5, rtol=1e-5)


def test_embeddings_are_deterministic_and_do_not_depend_on_the_chunk_size() -> None:
    in_one_pass = PrestoClassifier(10, 6, 3, pixels_per_pass=8192).eval()
    in_many = PrestoClassifier(10, 6, 3, pixels_per_pass=7).eval()
    season = cube(2, 6, 4, 5)
    with torch.no_grad():
        once = in_one_pass.embed(season)
        assert torch.equal(once, in_one_pass.embed(season))
        torch.testing.assert_close(in_many.embed(season), once, atol=1e-5, rtol=1e-5)
    assert once.shape == (2, 128, 4, 5)


def test_classifier_maps_a_cube_to_per_class_logits() -> None:
    model = PrestoClassifier(bands=10, time_bins=6, classes=13, encoder_weights=None)
    with torch.no_grad():
        assert model(cube(2, 6, 3, 4)).shape == (2, 13, 3, 4)


def test_classifier_undoes_the_callers_standardisation() -> None:
    raw = cube(1, 6, 3, 3)
    means, stds = torch.tensor(MEANS)[:, None, None], torch.tensor(STDS)[:, None, None]
    standardised = PrestoClassifier(10, 6, 2, band_means=MEANS, band_stds=STDS).eval()
    on_reflectance = PrestoClassifier(10, 6, 2).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            standardised.embed((raw - means) / stds), on_reflectance.embed(raw), atol=1e-5, rtol=1e-5
        )


def test_a_trained_classifier_round_trips_through_its_state_dict() -> None:
    torch.manual_seed(0)
    trained = PrestoClassifier(10, 3, 4, band_means=MEANS, band_stds=STDS).eval()
    restored = PrestoClassifier(10, 3, 4, encoder_weights=None).eval()
    restored.load_state_dict(trained.state_dict(), strict=True)
    season = cube(1, 3, 2, 2)
    with torch.no_grad():
        assert torch.equal(restored(season), trained(season))


def test_other_band_counts_are_refused_with_the_bands_expected() -> None:
    with pytest.raises(ValueError, match="B02 B03 B04 B05 B06 B07 B08 B8A B11 B12"):
        PrestoClassifier(bands=4, time_bins=6, classes=3, encoder_weights=None)


def test_more_than_24_time_bins_are_refused() -> None:
    with pytest.raises(ValueError, match="1 to 24"):
        PrestoClassifier(bands=10, time_bins=25, classes=3, encoder_weights=None)
    with pytest.raises(ValueError, match="1 to 24"):
        presto_inputs(reflectance(1, 25), start_month=1, latitude=0.0, longitude=0.0)
