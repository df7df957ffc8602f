"""plume.evaluation: Fréchet distance against closed forms and scipy, the digit classifier, memorisation checks."""
import numpy as np
import pytest
import scipy.linalg
import torch

from plume import PlumeError
from plume.images.evaluation import evaluate_images, train_classifier
from plume.evaluation import (frechet_distance, frechet_from_statistics, gaussian_statistics, memorization_ratio,
    nearest_neighbor_distances, training_nn_distances)


def rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_frechet_closed_form_diagonal():
    # For commuting (here diagonal) covariances: sum_i (sqrt(a_i) - sqrt(b_i))^2 plus the squared mean gap.
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_from_statistics(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_closed_form_rotated_and_against_scipy():
    # Rotating both Gaussians by the same orthogonal matrix leaves the distance unchanged.
    q = rotation(5, 0)
    a, b = np.array([1.0, 2.0, 3.0, 0.5, 0.1]), np.array([0.3, 2.0, 1.0, 4.0, 0.1])
    mu1, mu2 = np.arange(5.0), np.ones(5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_from_statistics(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)
    # Non-commuting covariances: the scipy.linalg.sqrtm formula (pytorch-fid's).
    s1 = q @ np.diag(a) @ q.T
    s2 = rotation(5, 1) @ np.diag(b) @ rotation(5, 1).T
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_from_statistics(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)


def test_frechet_of_samples_symmetric_and_zero():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 8)), rng.normal(size=(700, 8)) * 1.5 + 0.3
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-9)
    assert abs(frechet_distance(x, x)) < 1e-9
    mu, sigma = gaussian_statistics(x)
    assert np.allclose(sigma, np.cov(x, rowvar=False, ddof=1)) and np.allclose(mu, x.mean(0))
    # A rank-deficient covariance (fewer samples than dimensions) still gives a finite, non-negative value.
    assert 0.0 <= frechet_distance(rng.normal(size=(5, 8)), rng.normal(size=(6, 8))) < np.inf
    with pytest.raises(PlumeError):
        frechet_distance(x, y[:, :3])


@pytest.fixture(scope="module")
def digits():
    sklearn = pytest.importorskip("sklearn.datasets")
    data = sklearn.load_digits()
    images = np.round(data.images * 255 / 16).astype(np.uint8)[..., None]  # (1797, 8, 8, 1)
    return images, data.target


@pytest.fixture(scope="module")
def classifier_split(digits):
    images, labels = digits
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:1400], order[1400:]
    torch.set_num_threads(1)
    return train_classifier(images[train], labels[train], seed=0, steps=250), train, test


def test_classifier_accuracy_and_determinism(digits, classifier_split):
    images, labels = digits
    model, train, test = classifier_split
    assert (model.predict(images[test]) == labels[test]).mean() > 0.95
    features = model.features(images[test[:7]])
    assert features.shape == (7, 64) and features.dtype == np.float64
    assert np.allclose(model.probabilities(images[test[:7]]).sum(1), 1.0)
    again = train_classifier(images[train[:200]], labels[train[:200]], seed=3, steps=3)
    twice = train_classifier(images[train[:200]], labels[train[:200]], seed=3, steps=3)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), twice.state_dict().values()))
    with pytest.raises(PlumeError):
        model.features(images[:3, :4])
    with pytest.raises(PlumeError):
        train_classifier(images[:10].astype(np.float32), labels[:10])


def test_nearest_neighbor_distances_brute_force(digits):
    images, _ = digits
    x = images[:300].reshape(300, -1) / 255.0
    brute = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))  # (300, 300)
    assert np.allclose(nearest_neighbor_distances(images[:50], images[50:300]), brute[:50, 50:].min(1))
    np.fill_diagonal(brute, np.inf)
    assert np.allclose(training_nn_distances(images[:300]), brute.min(1))


def test_memorization_copies_and_fresh_digits(digits):
    images, _ = digits
    order = np.random.default_rng(1).permutation(len(images))
    held_out, train = images[order[:300]], images[order[300:]]
    copies = memorization_ratio(train[:200], train)
    assert copies["ratio"] == 0.0 and copies["copies"] == 1.0
    fresh = memorization_ratio(held_out, train)
    assert 0.85 < fresh["ratio"] < 1.2 and fresh["copies"] < 0.02
    rng = np.random.default_rng(0)
    near = np.clip(train[:300] + rng.normal(0, 5, train[:300].shape), 0, 255).astype(np.uint8)  # near-copies
    assert memorization_ratio(near, train)["copies"] == 1.0


def test_evaluate_images_report(digits, classifier_split):
    images, labels = digits
    model = classifier_split[0]
    report = evaluate_images(images, images, labels, classifier=model)
    assert report["fid"] < 1e-6 and report["fid_floor"] > 0 and report["memorization"]["copies"] == 1.0
    assert sum(report["class_counts"].values()) == len(images) and len(report["class_counts"]) == 10
    noise = np.random.default_rng(0).integers(0, 256, (300, 8, 8, 1)).astype(np.uint8)
    bad = evaluate_images(noise, images, labels, classifier=model)
    assert bad["fid"] > 10 * report["fid_floor"] and bad["memorization"]["ratio"] > 2
    assert bad["n_samples"] == 300 and bad["n_reference"] == len(images) and "classifier" in bad["feature_network"]
