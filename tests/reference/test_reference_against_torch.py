"""The reference solution agrees with PyTorch's own functions, in values and gradients (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder.reference import gradient_descent as gd
from autograder.reference import linear_regression as lr
from autograder.reference import mnist_sgd as sgd
from autograder.reference import pixel_similarity as ps

RTOL, ATOL = 1e-12, 1e-12  # float64, same operations: only rounding of the last bits differs


def _values_and_grads(fn, *inputs):
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*leaves)
    out.sum().backward()
    return out.detach(), [leaf.grad for leaf in leaves]


def _assert_same(fn, oracle, *inputs):
    value, grads = _values_and_grads(fn, *inputs)
    expected, expected_grads = _values_and_grads(oracle, *inputs)
    torch.testing.assert_close(value, expected, rtol=RTOL, atol=ATOL)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, rtol=RTOL, atol=ATOL)


@pytest.fixture
def pair(device):
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(7, 1, generator=gen, dtype=torch.float64).to(device),
            torch.randn(7, 1, generator=gen, dtype=torch.float64).to(device))


@pytest.mark.gradient_descent
def test_mse_equals_torch_mse_loss(pair):
    _assert_same(gd.mse, F.mse_loss, *pair)


@pytest.mark.gradient_descent
def test_mae_equals_torch_l1_loss(pair):
    _assert_same(gd.mae, F.l1_loss, *pair)


@pytest.mark.mnist_sgd
def test_sigmoid_equals_torch_sigmoid(pair):
    _assert_same(sgd.sigmoid, torch.sigmoid, pair[0])


@pytest.mark.mnist_sgd
def test_mnist_loss_on_the_lessons_toy_example_without_sigmoid():
    predictions, targets = torch.tensor([0.9, 0.4, 0.2]), torch.tensor([1, 0, 1])
    loss = torch.where(targets == 1, 1 - predictions, predictions).mean()
    assert loss.item() == pytest.approx(0.4333, abs=1e-4)
    # mnist_loss applies sigmoid first: the same formula on sigmoid(predictions)
    expected = torch.where(targets == 1, 1 - torch.sigmoid(predictions), torch.sigmoid(predictions)).mean()
    assert sgd.mnist_loss(predictions, targets).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.mnist_sgd
def test_mnist_loss_gradient_matches_an_arithmetic_mask(pair):
    targets = (pair[1] > 0).double()

    def oracle(p):
        s = torch.sigmoid(p)
        return (targets * (1 - s) + (1 - targets) * s).mean()

    _assert_same(lambda p: sgd.mnist_loss(p, targets), oracle, pair[0])


@pytest.mark.mnist_sgd
def test_mnist_loss_passes_gradcheck(pair):
    targets = (pair[1] > 0).double()
    assert torch.autograd.gradcheck(lambda p: sgd.mnist_loss(p, targets), [pair[0].clone().requires_grad_()])


@pytest.mark.gradient_descent
def test_quad_and_mk_quad_agree():
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    torch.testing.assert_close(gd.mk_quad(3, 2, 1)(x), 3 * x**2 + 2 * x + 1)
    assert gd.mk_quad(3, 2, 1).func is gd.quad


@pytest.mark.gradient_descent
def test_add_noise_is_seeded():
    x = torch.linspace(-2, 2, 20)
    torch.testing.assert_close(gd.add_noise(x, 0.15, 1.5, seed=1), gd.add_noise(x, 0.15, 1.5, seed=1))
    assert not torch.equal(gd.add_noise(x, 0.15, 1.5, seed=1), gd.add_noise(x, 0.15, 1.5, seed=2))


@pytest.mark.gradient_descent
def test_fit_quadratic_loss_falls_every_step():
    x, y = gd.lesson_data()
    losses = gd.fit_quadratic(torch.tensor(gd.LESSON_START).requires_grad_(), x, y, 0.01, 10)
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))


@pytest.mark.gradient_descent
def test_rectified_linear_and_double_relu():
    x = torch.tensor([-2.0, 0.0, 2.0])
    torch.testing.assert_close(gd.rectified_linear(1.0, 0.0, x), F.relu(x))
    torch.testing.assert_close(gd.double_relu(1.0, 0.0, -1.0, 0.0, x), x.abs())


@pytest.mark.gradient_descent
def test_apply_step_lowers_the_roller_coaster_loss():
    time, speed = gd.roller_coaster_data()
    params = torch.tensor([0.5, -1.0, 2.0]).requires_grad_()
    first = gd.mse(gd.apply_step(params, time, speed), speed)
    assert params.grad is None
    second = gd.mse(gd.apply_step(params, time, speed), speed)
    assert second < first


@pytest.mark.linear_regression
def test_linear_regression_reaches_the_lessons_loss():
    x, y = lr.lesson_data()
    losses = lr.fit(lr.start_params(), x, y)
    assert losses[0] > 4 * losses[-1]
    assert losses[-1] < 0.1, f"final loss {losses[-1]:.4f} (lesson: ~0.07)"


@pytest.mark.pixel_similarity
def test_mnist_distance_broadcasts(device):
    a = torch.rand(5, 28, 28, device=device)
    b = torch.rand(28, 28, device=device)
    assert ps.mnist_distance(a, b).shape == (5,)
    torch.testing.assert_close(ps.mnist_distance(a[0], b), (a[0] - b).abs().mean())


@pytest.mark.mnist_sgd
def test_basic_optim_steps_and_clears(device):
    p = torch.ones(3, device=device, requires_grad=True)
    p.grad = torch.full((3,), 2.0, device=device)
    opt = sgd.BasicOptim([p], lr=0.5)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.zeros(3, device=device))
    opt.zero_grad()
    assert p.grad is None


@pytest.mark.mnist_sgd
def test_tensor_batches_cover_every_row_once():
    x, y = torch.arange(10.0)[:, None], torch.arange(10.0)[:, None]
    batches = sgd.TensorBatches(x, y, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([xb for xb, _ in batches]).flatten().sort().values
    torch.testing.assert_close(seen, torch.arange(10.0))
    assert len(batches) == 3
