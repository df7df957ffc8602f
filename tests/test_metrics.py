"""plume.evaluation sample-quality metrics: KID, improved precision/recall and the inception score, against
closed forms, brute-force formulas and torchmetrics."""
import importlib
import itertools
import warnings

import numpy as np
import pytest
import torch

from plume import PlumeError
from plume.evaluation import frechet_distance, inception_score, kernel_inception_distance, precision_recall


def gaussian(n: int, f: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, f)) + shift


def brute_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / F + 1)^3, term by term over explicit pairs."""
    f = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / f + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


class Passthrough(torch.nn.Module):
    """A torchmetrics "feature extractor" that returns precomputed features unchanged."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features  # read by FrechetInceptionDistance instead of probing a dummy image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# --- KID -------------------------------------------------------------------------------------------------------

def test_kid_matches_brute_force_unbiased_mmd():
    x, y = gaussian(12, 5, seed=1), gaussian(9, 5, shift=0.5, seed=2)  # unequal sizes: the general U-statistic
    result = kernel_inception_distance(x, y, subsets=1, subset_size=1000)
    assert (result.subset_size_a, result.subset_size_b) == (12, 9)
    assert result.mean == pytest.approx(brute_mmd2(x, y), rel=1e-12)
    assert result.std == 0.0 and np.isnan(result.standard_error)
    # Several subsets that each cover the whole set repeat the same value.
    again = kernel_inception_distance(x, y, subsets=3, subset_size=50)
    assert again.mean == pytest.approx(result.mean, rel=1e-12) and again.std < 1e-12


def test_kid_unbiased_under_the_null():
    # Independent draws from the same distribution: the unbiased estimate averages to 0; the biased V-statistic
    # (diagonal terms kept) is clearly positive on the same data, so this test can tell the two apart.
    rng = np.random.default_rng(0)
    unbiased, biased = [], []
    for _ in range(40):
        x, y = rng.normal(size=(2, 200, 16))
        unbiased.append(kernel_inception_distance(x, y, subsets=1, subset_size=200).mean)
        k = lambda a, b: (a @ b.T / 16 + 1) ** 3  # noqa: E731
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    for values, inside in ((np.array(unbiased), True), (np.array(biased), False)):
        standard_error = values.std(ddof=1) / np.sqrt(len(values))
        assert (abs(values.mean()) < 3 * standard_error) == inside


def test_kid_of_the_same_array():
    # The same array on both sides: subsets of a and b share samples, whose k(x, x) enters the cross term but not
    # the within-set terms, so the estimate is slightly negative, not 0. With one subset covering the set it is
    # exactly -2 (mean diagonal - mean off-diagonal kernel) / n.
    x = gaussian(300, 16, seed=3)
    kernel = (x @ x.T / 16 + 1) ** 3
    n = len(x)
    diagonal, off_diagonal = np.trace(kernel) / n, (kernel.sum() - np.trace(kernel)) / (n * (n - 1))
    full = kernel_inception_distance(x, x, subsets=1, subset_size=n).mean
    assert full == pytest.approx(-2 * (diagonal - off_diagonal) / n, rel=1e-10) and full < 0
    # Small against a real difference, and reproducible from the seed.
    sampled = kernel_inception_distance(x, x, subsets=20, subset_size=100, seed=5)
    shifted = kernel_inception_distance(x, x + 1.0, subsets=20, subset_size=100, seed=5)
    assert abs(sampled.mean) < 0.05 * shifted.mean
    assert kernel_inception_distance(x, x, subsets=20, subset_size=100, seed=5) == sampled
    assert kernel_inception_distance(x, x, subsets=20, subset_size=100, seed=6) != sampled


def population_kid(d: int, shift: float) -> float:
    """The population MMD^2 between N(0, I_d) and N(mu, I_d), mu = shift * (1, ..., 1), under KID's kernel
    k(a, b) = (a.b / d + 1)^3 (plume.evaluation.kid.polynomial_kernel): MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)
    with x, x' ~ N(0, I) and y, y' ~ N(mu, I), all independent.

    Each term is E[(u / d + 1)^3] = 1 + 3 E[u] / d + 3 E[u^2] / d^2 + E[u^3] / d^3 for u = a.b, a ~ N(m, I) and
    b ~ N(n, I) independent. u = sum_i a_i b_i is a sum of d independent products, so its cumulants are sums of
    those of one product a_i b_i (a_i ~ N(m_i, 1), b_i ~ N(n_i, 1)), whose moments follow from the Gaussian ones
    E a = m, E a^2 = 1 + m^2, E a^3 = m^3 + 3m:
        kappa_1 = m_i n_i,
        kappa_2 = (1 + m_i^2)(1 + n_i^2) - m_i^2 n_i^2 = 1 + m_i^2 + n_i^2,
        kappa_3 = E[(ab)^3] - 3 E[ab] E[(ab)^2] + 2 E[ab]^3     (m = m_i, n = n_i)
                = (m^3 + 3m)(n^3 + 3n) - 3mn(1 + m^2)(1 + n^2) + 2 m^3 n^3 = 6 m_i n_i.
    Summed: K1 = m.n, K2 = d + |m|^2 + |n|^2, K3 = 6 m.n, and the raw moments are E u = K1,
    E u^2 = K2 + K1^2, E u^3 = K3 + 3 K1 K2 + K1^3. With M = |mu|^2 = d shift^2:
        E k(x, x') = 1 + 3/d                                   (K1 = 0, K2 = d, K3 = 0)
        E k(x, y)  = 1 + 3 (d + M) / d^2                       (K1 = 0, K2 = d + M, K3 = 0)
        E k(y, y') = 1 + 3M/d + 3 (d + 2M + M^2) / d^2 + (6M + 3M (d + 2M) + M^3) / d^3
    so MMD^2 = 3M/d + 3M^2/d^2 + (6M + 3Md + 6M^2 + M^3) / d^3 (d = 16, shift 1: 7.5859375).
    """
    big_m = d * shift ** 2  # M = |mu|^2

    def expected_kernel(k1: float, k2: float, k3: float) -> float:
        u1, u2, u3 = k1, k2 + k1 ** 2, k3 + 3 * k1 * k2 + k1 ** 3  # raw moments from the cumulants
        return 1 + 3 * u1 / d + 3 * u2 / d ** 2 + u3 / d ** 3

    xx = expected_kernel(0, d, 0)
    xy = expected_kernel(0, d + big_m, 0)
    yy = expected_kernel(big_m, d + 2 * big_m, 6 * big_m)
    mmd2 = xx + yy - 2 * xy
    assert mmd2 == pytest.approx(3 * big_m / d + 3 * big_m ** 2 / d ** 2
                                 + (6 * big_m + 3 * big_m * d + 6 * big_m ** 2 + big_m ** 3) / d ** 3)
    return mmd2


def test_population_kid_closed_form_against_monte_carlo_moments():
    """population_kid against plain averages of the kernel over many independent pairs, each term its own draws."""
    rng = np.random.default_rng(11)
    d, shift, n = 4, 0.7, 400_000

    def kernel_values(shift_a: float, shift_b: float) -> np.ndarray:
        a, b = rng.normal(size=(n, d)) + shift_a, rng.normal(size=(n, d)) + shift_b
        return (np.einsum("ij,ij->i", a, b) / d + 1) ** 3  # (n,) k(a_i, b_i) of independent pairs

    k_xx, k_yy, k_xy = kernel_values(0, 0), kernel_values(shift, shift), kernel_values(0, shift)
    estimate = k_xx.mean() + k_yy.mean() - 2 * k_xy.mean()
    error = np.sqrt((k_xx.var() + k_yy.var() + 4 * k_xy.var()) / n)  # independent terms
    assert abs(estimate - population_kid(d, shift)) < 4 * error, (estimate, population_kid(d, shift), error)
    assert abs(estimate - population_kid(d, 0.75)) > 4 * error  # the draws can tell a 7% larger shift


def test_kid_separates_shifted_gaussians():
    x, y = gaussian(2000, 16, seed=4), gaussian(2000, 16, shift=1.0, seed=5)
    result = kernel_inception_distance(x, y, subsets=10, subset_size=500)
    # Population MMD^2 for N(0, I) vs N(1, I), F = 16, cubic kernel: 7.5859375 (population_kid); the standard error
    # here is about 0.2, while the population value at shift 1.05 is 8.98.
    assert result.mean > 5.0 and result.mean > 20 * result.standard_error
    assert abs(result.mean - population_kid(16, 1.0)) < 3 * result.standard_error, (result, population_kid(16, 1.0))
    assert abs(result.mean - population_kid(16, 1.05)) > 3 * result.standard_error  # the comparison can tell 5%
    assert result.standard_error == pytest.approx(result.std * np.sqrt(10 / 9) * np.sqrt(1 + 1 / 10), rel=1e-12)
    null = kernel_inception_distance(x, gaussian(2000, 16, seed=6), subsets=10, subset_size=500)
    assert abs(null.mean) < 0.05
    # Subsets of more than half of a set: no standard error (its bound needs m <= N / 2 on both sides).
    assert np.isnan(kernel_inception_distance(x, y[:900], subsets=10, subset_size=500).standard_error)


@pytest.mark.parametrize("shift", [0.25, 0.5])
def test_kid_of_small_shifts_is_the_closed_form(shift):
    """KID within 3 of its standard errors of the population MMD^2 where the shift is small (d = 16)."""
    x, y = gaussian(2000, 16, seed=14), gaussian(2000, 16, shift=shift, seed=15)
    result = kernel_inception_distance(x, y, subsets=20, subset_size=500)
    truth = population_kid(16, shift)
    assert abs(result.mean - truth) < 3 * result.standard_error, (result, truth)
    assert result.standard_error < 0.25 * truth  # the error bar is narrow enough for the comparison to mean something


@pytest.mark.parametrize("shift, one_error", [(0.0, (0.8, 0.99)), (0.3, (0.55, 0.85))])
def test_kid_standard_error_covers_fresh_data(shift, one_error):
    # Many independent pairs of sets: how often does KID land within 1 and 2 standard errors of its mean over the
    # pairs (the truth)? Identical distributions (shift 0, the truth is 0): the error is conservative (up to sqrt(3)
    # wide: about 92% within one error). Different distributions: about right (the normal 68%). The subset-noise error std / sqrt(S) alone
    # covers far less (about 20% within one error here), so this test tells the two apart.
    rng = np.random.default_rng(7)
    values, errors = [], []
    for trial in range(150):
        x, y = rng.normal(size=(120, 16)), rng.normal(size=(120, 16)) + shift
        result = kernel_inception_distance(x, y, subsets=30, subset_size=60, seed=trial)
        values.append(result.mean)
        errors.append(result.standard_error)
    values, errors = np.array(values), np.array(errors)
    truth = 0.0 if shift == 0 else values.mean()
    within_one, within_two = np.mean(abs(values - truth) <= errors), np.mean(abs(values - truth) <= 2 * errors)
    assert one_error[0] <= within_one <= one_error[1] and within_two >= 0.9
    assert np.mean(abs(values - truth) <= errors * np.sqrt(1 / 31)) < 0.4  # std / sqrt(S) alone: too narrow


# --- against torchmetrics --------------------------------------------------------------------------------------

def test_kid_and_fid_match_torchmetrics():
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    fid_module = pytest.importorskip("torchmetrics.image.fid")
    n, f = 400, 16
    x = gaussian(n, f, seed=7)
    y = gaussian(n, f, seed=8) @ np.random.default_rng(9).normal(size=(f, f)) * 0.3 + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        kid = kid_module.KernelInceptionDistance(feature=Passthrough(f), subsets=1, subset_size=n)
    kid.update(torch.from_numpy(x), real=True)  # (n, f) float64, passed through unchanged
    kid.update(torch.from_numpy(y), real=False)
    kid_mean, kid_std = kid.compute()
    ours = kernel_inception_distance(x, y, subsets=1, subset_size=n)
    assert ours.mean == pytest.approx(kid_mean.item(), rel=1e-6) and kid_std.item() == ours.std == 0.0

    fid = fid_module.FrechetInceptionDistance(feature=Passthrough(f))
    fid.update(torch.from_numpy(x), real=True)
    fid.update(torch.from_numpy(y), real=False)
    assert frechet_distance(x, y) == pytest.approx(fid.compute().item(), rel=1e-6)


def test_inception_score_matches_torchmetrics_with_one_split():
    inception_module = pytest.importorskip("torchmetrics.image.inception")
    logits = np.random.default_rng(10).normal(size=(300, 7)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metric = inception_module.InceptionScore(feature=Passthrough(7), splits=1)
    metric.update(torch.from_numpy(logits))  # torchmetrics applies the softmax itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # its std of one split (ddof = 1) is NaN
        mean, _ = metric.compute()  # one split: its shuffle changes nothing
    assert inception_score(probabilities, splits=1)["mean"] == pytest.approx(mean.item(), rel=1e-6)


# --- precision and recall --------------------------------------------------------------------------------------

def brute_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(points):
        # k-th nearest *other* point, by sorting each row's distances with the point itself removed
        return np.array([sorted(np.linalg.norm(points[j] - points[i]) for j in range(len(points)) if j != i)[k - 1]
                         for i in range(len(points))])

    def coverage(queries, support):
        r = radii(support)
        return np.mean([any(np.linalg.norm(q - s) <= r_s for s, r_s in zip(support, r)) for q in queries])

    return coverage(fake, real), coverage(real, fake)


def test_precision_recall_identical_and_disjoint():
    x = gaussian(500, 8, seed=11)
    for k in (1, 3, 10):  # every point lies within its own ball, so identical sets are fully covered
        assert precision_recall(x, x, k=k) == {"precision": 1.0, "recall": 1.0, "k": k}
    far = precision_recall(x, gaussian(500, 8, shift=20.0, seed=12))
    assert far["precision"] < 0.05 and far["recall"] < 0.05
    # A fake set squeezed into a small part of the real one: high precision, low recall.
    collapsed = precision_recall(x, gaussian(500, 8, seed=13) * 0.1)
    assert collapsed["precision"] > 0.9 and collapsed["recall"] < 0.3


def test_precision_recall_matches_brute_force():
    real, fake = gaussian(40, 3, seed=14), gaussian(35, 3, shift=1.0, seed=15)
    for k in (1, 3, 5):
        expected = brute_precision_recall(real, fake, k)
        got = precision_recall(real, fake, k=k)
        assert (got["precision"], got["recall"]) == pytest.approx(expected, abs=1e-12)
        assert 0.0 < got["precision"] < 1.0 and 0.0 < got["recall"] < 1.0  # not a trivial 0 or 1


def test_precision_recall_blocks(monkeypatch):
    # Forcing tiny row blocks gives the same answer as one block.
    module = importlib.import_module("plume.evaluation.precision_recall")  # the package attribute is the function
    real, fake = gaussian(60, 4, seed=16), gaussian(50, 4, shift=0.5, seed=17)
    whole = precision_recall(real, fake, k=2)
    monkeypatch.setattr(module, "_BLOCK_ELEMENTS", 7 * 60)  # 7 rows of 60 columns per block
    assert precision_recall(real, fake, k=2) == whole


# --- inception score -------------------------------------------------------------------------------------------

def test_inception_score_known_values():
    k, n = 5, 1000
    confident = np.eye(k)[np.arange(n) % k]  # one-hot, every split of 100 holds each class 20 times
    result = inception_score(confident, splits=10)
    assert result["mean"] == pytest.approx(k, rel=1e-12) and result["std"] < 1e-12 and result["splits"] == 10
    same = np.tile(np.array([[0.1, 0.2, 0.3, 0.4]]), (100, 1))  # p(y|x) = p(y): every KL is 0
    assert inception_score(same, splits=10)["mean"] == pytest.approx(1.0, abs=1e-12)
    # Between the two: soft predictions lie strictly inside [1, K].
    soft = 0.5 * confident + 0.5 / k
    assert 1.0 < inception_score(soft)["mean"] < k


def test_inception_score_splits_in_order():
    # Splits are consecutive parts, not shuffled: first half all class 0, second half balanced.
    first = np.tile([1.0, 0.0], (50, 1))
    second = np.eye(2)[np.arange(50) % 2]
    result = inception_score(np.concatenate([first, second]), splits=2)
    assert result["mean"] == pytest.approx(1.5, rel=1e-12) and result["std"] == pytest.approx(0.5, rel=1e-12)


# --- bad input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, shape", [
    (lambda: kernel_inception_distance(np.zeros((10, 4, 1)), np.zeros((10, 4))), "(10, 4, 1)"),
    (lambda: kernel_inception_distance(np.zeros((10, 4)), np.zeros((10, 5))), "(10, 5)"),
    (lambda: kernel_inception_distance(np.zeros((1, 4)), np.zeros((10, 4))), "(1, 4)"),
    (lambda: kernel_inception_distance(np.full((10, 4), np.nan), np.zeros((10, 4))), "(10, 4)"),
    (lambda: precision_recall(np.zeros(10), np.zeros((10, 4))), "(10,)"),
    (lambda: precision_recall(np.zeros((10, 4)), np.zeros((10, 3))), "(10, 3)"),
    (lambda: precision_recall(np.zeros((10, 4)), np.zeros((3, 4)), k=3), "(3, 4)"),
    (lambda: precision_recall(np.zeros((10, 4)), np.full((10, 4), np.inf)), "(10, 4)"),
    (lambda: inception_score(np.zeros(10)), "(10,)"),
    (lambda: inception_score(np.full((20, 3), 1 / 3), splits=30), "(20, 3)"),
    (lambda: inception_score(np.full((20, 3), np.nan)), "(20, 3)"),
    (lambda: inception_score(np.full((20, 3), 0.5)), "(20, 3)"),
    (lambda: inception_score(np.tile([1.5, -0.5], (20, 1))), "(20, 2)"),
])
def test_bad_input_names_the_shape(call, shape):
    with pytest.raises(PlumeError, match=shape.replace("(", r"\(").replace(")", r"\)")):
        call()


@pytest.mark.parametrize("call", [
    lambda: kernel_inception_distance(np.zeros((10, 4)), np.zeros((10, 4)), subsets=0),
    lambda: kernel_inception_distance(np.zeros((10, 4)), np.zeros((10, 4)), subset_size=1),
    lambda: precision_recall(np.zeros((10, 4)), np.zeros((10, 4)), k=0),
    lambda: inception_score(np.full((20, 3), 1 / 3), splits=0),
])
def test_bad_parameters(call):
    with pytest.raises(PlumeError):
        call()


def test_metrics_are_exported():
    import plume.evaluation as evaluation
    for name in ("kernel_inception_distance", "precision_recall", "inception_score", "KIDResult"):
        assert name in evaluation.__all__ and hasattr(evaluation, name)
    assert not set(itertools.chain(evaluation.__all__)) - set(dir(evaluation))
