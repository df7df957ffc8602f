"""Identities of the core pieces: parametrization round trips, marginal moments, the SDE, likelihood, errors."""
import math

import pytest
import torch

import plume
from plume.points import GaussianMixture, random_mixture
from plume.denoiser import Denoiser
from plume.likelihood import ddpm_elbo, ode_likelihood
from plume.objective import WEIGHTINGS, x0_weight


def _times(process, n=7):
    return torch.linspace(process.t_min + 1e-3 * (process.t_max - process.t_min), process.t_max, n, dtype=torch.float64)


@pytest.mark.parametrize("process_name", list(plume.PROCESSES))
@pytest.mark.parametrize("prediction_name", list(plume.PREDICTIONS))
def test_prediction_round_trip_is_exact(process_name, prediction_name):
    process, pred = plume.process(process_name), plume.prediction(prediction_name)
    t = _times(process)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    x_t = process.add_noise(x0, t, eps)
    target = pred.target(x0, eps, process, t)
    torch.testing.assert_close(pred.to_x0(target, x_t, process, t), x0, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("process_name", list(plume.PROCESSES))
@pytest.mark.parametrize("prediction_name", list(plume.PREDICTIONS))
def test_output_weight_is_the_inverse_squared_jacobian(process_name, prediction_name):
    """MSE in output space = output_weight * MSE in x0 space: check d x0 / d out by autograd."""
    process, pred = plume.process(process_name), plume.prediction(prediction_name)
    t = _times(process)
    x_t = torch.randn(7, 3, dtype=torch.float64)
    out = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(pred.to_x0(out, x_t, process, t).sum(), out)
    torch.testing.assert_close(grad[:, 0] ** -2, pred.output_weight(process, t), rtol=1e-8, atol=0)


@pytest.mark.parametrize("process_name", list(plume.PROCESSES))
def test_add_noise_has_the_right_moments(process_name):
    process = plume.process(process_name)
    t = torch.full((200_000,), 0.5 * (process.t_min + process.t_max), dtype=torch.float64)
    x0 = torch.full((200_000, 1), 1.7, dtype=torch.float64)
    x_t = process.add_noise(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    alpha, sigma = float(process.alpha(t[0])), float(process.sigma(t[0]))
    assert abs(float(x_t.mean()) - 1.7 * alpha) < 4 * sigma / math.sqrt(len(t))
    assert abs(float(x_t.std()) / sigma - 1) < 0.01


@pytest.mark.parametrize("process_name", ["vp", "subvp", "ve", "flow"])
def test_forward_sde_reproduces_the_marginals(process_name):
    """Simulating dx = f x dt + g dw (Euler-Maruyama) from x0 gives alpha(t) x0 and sigma(t): f, g are right."""
    process = plume.process(process_name)
    g = torch.Generator().manual_seed(1)
    x = torch.full((20_000,), 1.5, dtype=torch.float64)
    t0, t1, n = process.t_min, 0.5 * (process.t_min + process.t_max), 2000
    dt = (t1 - t0) / n
    x = process.add_noise(x, torch.tensor(t0, dtype=torch.float64), torch.randn(x.shape, generator=g, dtype=torch.float64))
    for i in range(n):
        f, diffusion = process.sde(torch.tensor(t0 + i * dt, dtype=torch.float64))
        x = x + f * x * dt + diffusion * math.sqrt(dt) * torch.randn(x.shape, generator=g, dtype=torch.float64)
    t = torch.tensor(t1, dtype=torch.float64)
    assert abs(float(x.mean()) - 1.5 * float(process.alpha(t))) < 0.02 * (1 + float(process.sigma(t)))
    assert abs(float(x.std()) / float(process.sigma(t)) - 1) < 0.03


@pytest.mark.parametrize("process_name", list(plume.PROCESSES))
def test_time_of_sigma_ratio_inverts_sigma_ratio(process_name):
    process = plume.process(process_name)
    t = _times(process, 50)
    torch.testing.assert_close(process.time_of_sigma_ratio(process.sigma_ratio(t)), t, rtol=1e-9, atol=1e-9)


def _gaussian(dim=4, std=0.5):
    mean = torch.randn(1, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return mean, std, GaussianMixture(torch.ones(1), mean, torch.tensor([std]))


@pytest.mark.parametrize("process_name", list(plume.PROCESSES))
def test_ode_likelihood_matches_the_gaussian_density_per_sample(process_name):
    """With the exact denoiser and the exact prior, the PF-ODE gives log N(x; mu, c^2 + s_min^2) per sample."""
    process = plume.process(process_name)
    mean, std, data = _gaussian()
    smoothed = lambda s: GaussianMixture(torch.ones(1), mean, torch.tensor([math.sqrt(std**2 + s**2)]))  # noqa: E731
    x = data.sample(8, torch.Generator().manual_seed(1))[0]
    result = ode_likelihood(data.denoiser(process), process, x, prior_log_prob=lambda y, s: smoothed(s).log_prob(y))
    s_min = float(process.sigma_ratio(torch.tensor(process.t_min, dtype=torch.float64)))
    torch.testing.assert_close(result.nll, -smoothed(s_min).log_prob(x), rtol=0, atol=1e-3)


def test_bits_per_dim_of_a_gaussian_data_set_matches_the_analytic_value():
    process = plume.process("vp", t_min=1e-5)
    mean, std, data = _gaussian(dim=8, std=0.5)
    x = data.sample(256, torch.Generator().manual_seed(2))[0]
    result = ode_likelihood(data.denoiser(process), process, x)
    analytic = 0.5 * math.log(2 * math.pi * math.e * std**2) / math.log(2)  # differential entropy, bits per dim
    empirical = float(-data.log_prob(x).mean()) / (8 * math.log(2))
    assert abs(float(result.bits_per_dim.mean()) - empirical) < 2e-3
    assert abs(empirical - analytic) < 0.05  # the data set's own sampling error


def test_hutchinson_estimate_agrees_with_the_exact_trace():
    process = plume.process("edm")
    mixture = random_mixture(6, components=3, std=0.6, seed=4)
    x = mixture.sample(64, torch.Generator().manual_seed(3))[0]
    exact = ode_likelihood(mixture.denoiser(process), process, x, exact_trace=True, rtol=1e-4, atol=1e-4)
    estimates = torch.stack([ode_likelihood(mixture.denoiser(process), process, x, exact_trace=False, seed=1000 * k,
                                            rtol=1e-4, atol=1e-4).nll for k in range(4)])
    differences = (estimates - exact.nll).flatten()  # unbiased: the path is exact, only the trace is estimated
    standard_error = float(differences.std()) / math.sqrt(len(differences))
    assert float(differences.std()) > 0.1  # a real estimate, not the exact trace again
    assert abs(float(differences.mean())) < 4 * standard_error


def test_ddpm_elbo_bounds_the_exact_likelihood():
    process = plume.process("ddpm")
    _, _, data = _gaussian()
    x = data.sample(16, torch.Generator().manual_seed(1))[0]
    elbo = ddpm_elbo(data.denoiser(process), process, x)
    exact = -data.log_prob(x).mean()
    assert float(elbo.nll.mean()) > float(exact)
    assert float(elbo.bits_per_dim.mean()) - float(exact) / (4 * math.log(2)) < 0.5


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_loss_equals_weighted_x0_error(weighting):
    """Denoiser.loss computed in output space equals w(t) ||x0_hat - x0||^2 / d."""
    torch.manual_seed(0)

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 3)

        def forward(self, x, noise_level, cond=None):
            return self.layer(torch.cat([x, noise_level[:, None]], 1))

    for prediction in plume.PREDICTIONS:
        model = Denoiser(Linear().double(), "vp", prediction, weighting)
        x0 = torch.randn(5, 3, dtype=torch.float64)
        t = torch.linspace(0.05, 0.95, 5, dtype=torch.float64)
        noise = torch.randn(5, 3, dtype=torch.float64)
        loss = model.loss(x0, t=t, noise=noise)
        x0_hat = model(model.process.add_noise(x0, t, noise), t)
        expected = x0_weight(weighting, model.process, model.prediction, t, model.sigma_data) * ((x0_hat - x0) ** 2).mean(1)
        torch.testing.assert_close(loss, expected, rtol=1e-7, atol=1e-10)


def test_unknown_names_list_the_valid_ones():
    fn = lambda x, t: x  # noqa: E731
    with pytest.raises(plume.PlumeError, match="valid samplers: .*dpm\\+\\+2m.*euler"):
        plume.sample(fn, "vp", (2, 2), sampler="eulr")
    with pytest.raises(plume.PlumeError, match="valid processs?: .*ddpm.*edm"):
        plume.process("vpp")
    with pytest.raises(plume.PlumeError, match="valid predictions: .*eps"):
        plume.sample(fn, "vp", (2, 2), prediction="epsilon")
    with pytest.raises(plume.PlumeError, match="valid grids: .*karras"):
        plume.sample(fn, "vp", (2, 2), grid="karas")
    with pytest.raises(plume.PlumeError, match="no option 'beta'"):
        plume.process("vp", beta=3)


@pytest.mark.parametrize("steps", [0, -3, 2.5])
def test_steps_must_be_a_positive_whole_number(steps):
    with pytest.raises(plume.PlumeError, match="steps must be a whole number >= 1"):
        plume.sample(lambda x, t: x, "vp", (2, 2), steps=steps)


def test_bad_model_outputs_get_one_readable_message():
    with pytest.raises(plume.PlumeError, match=r"returned shape \(2, 3\) for input shape \(2, 2\)"):
        plume.sample(lambda x, t: torch.zeros(2, 3), "vp", (2, 2))
    with pytest.raises(plume.PlumeError, match="NaN or inf"):
        plume.sample(lambda x, t: x * float("nan"), "vp", (2, 2))
    with pytest.raises(plume.PlumeError, match="expected a tensor"):
        plume.sample(lambda x, t: x.numpy(), "vp", (2, 2))
    with pytest.raises(plume.PlumeError, match="shape must"):
        plume.sample(lambda x, t: x, "vp", (0, 2))


def test_nan_data_is_rejected_by_row():
    x = torch.zeros(4, 2, dtype=torch.float64)
    x[2, 1] = float("nan")
    with pytest.raises(plume.PlumeError, match="row 2"):
        ode_likelihood(lambda x, t: x, "vp", x)


@pytest.mark.parametrize("name", [n for n, s in plume.samplers.SAMPLERS.items() if s.evaluations_per_step > 0])
def test_steps_for_an_nfe_budget_count_real_model_calls(name):
    # The one NFE rule (sweeps, benchmarks): the most steps that fit in the budget, checked by counting calls.
    spec = plume.samplers.SAMPLERS[name]
    calls = []

    def model(x, t):
        calls.append(1)
        return torch.zeros_like(x)

    for nfe in (4, 5, 9, 10):
        steps = spec.steps_for_evaluations(nfe)
        calls.clear()
        plume.sample(model, "vp", (3, 2), sampler=name, steps=steps)
        assert len(calls) == spec.evaluations(steps) <= nfe < spec.evaluations(steps + 1)
    with pytest.raises(plume.PlumeError, match="tolerance"):
        plume.samplers.SAMPLERS["ode"].steps_for_evaluations(10)
