"""Hidden checks for 03_pixel_similarity: mnist_distance, is_3, validation_accuracy."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks.compare import (
    call_student,
    expect_close,
    expect_dtype_and_device,
    expect_gradcheck,
    expect_same_gradients,
    expect_unchanged,
)
from autograder.checks.data import real_sample
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, random_tensor, seeds
from autograder.data import synthetic_mnist
from autograder.reference import pixel_similarity as ref

BLANKS = ("mnist_distance", "is_3", "validation_accuracy")
NEEDS_MNIST_SAMPLE = True
"""True: a check uses the real MNIST sample, so `autograder grade` and `validate` refuse to start without it."""


def distance_mistakes(a, b):
    diff = a - b
    return {
        "averaged over every axis: average over the last two axes only, .mean((-1, -2)), so a stack gives one distance per image": diff.abs().mean(),
        "forgot .abs(): positive and negative pixel differences cancel out": diff.mean((-1, -2)),
        "squared the differences: mnist_distance is the mean absolute difference (L1)": (diff**2).mean((-1, -2)),
        "took the root mean squared difference: mnist_distance is the mean absolute difference (L1)": (diff**2).mean((-1, -2)).sqrt(),
        "summed instead of averaging: use .mean((-1, -2))": diff.abs().sum((-1, -2)),
        "averaged over the wrong axes: use the last two, (-1, -2)": diff.abs().mean((0, 1)) if diff.dim() == 3 else diff.abs().mean(0),
    }


def _digits(device, seed=0):
    sample = synthetic_mnist(16, seed=seed).to(device)
    return sample, ref.mean_digit(sample.stack("train", "3")), ref.mean_digit(sample.stack("train", "7"))


@gate
@blank("mnist_distance")
def test_mnist_distance_of_two_images_is_a_number(student, device):
    """gives a 0-d tensor for two single images"""
    _, mean3, mean7 = _digits(device)
    result = call_student(student.mnist_distance, mean3, mean7)
    expect_close(result, ref.mnist_distance(mean3, mean7), distance_mistakes(mean3, mean7))


@gate
@blank("mnist_distance")
def test_mnist_distance_broadcasts_over_a_stack(student, device):
    """gives one distance per image for a stack (n, 28, 28) against one image"""
    sample, mean3, _ = _digits(device)
    stack = sample.stack("valid", "7")
    result = call_student(student.mnist_distance, stack, mean3)
    expect_close(result, ref.mnist_distance(stack, mean3), distance_mistakes(stack, mean3))


@blank("mnist_distance")
@CHECK_SETTINGS
@given(n=st.integers(1, 6), side=st.integers(2, 8), dtype=dtypes, seed=seeds)
def test_mnist_distance_matches_reference_on_random_images(student, device, n, side, dtype, seed):
    """matches the reference on random stacks of any image size, keeping dtype and device"""
    a, b = random_tensor((n, side, side), seed, dtype, device, 0, 1), random_tensor((side, side), seed + 1, dtype, device, 0, 1)
    before = [a.clone(), b.clone()]
    result = call_student(student.mnist_distance, a, b)
    expect_close(result, ref.mnist_distance(a, b), distance_mistakes(a, b))
    expect_dtype_and_device(result, a)
    expect_unchanged(before, [a, b], ["a", "b"])


@blank("mnist_distance")
def test_mnist_distance_gradients(student, device):
    """has the reference's gradients and passes gradcheck"""
    a, b = random_tensor((3, 4, 4), 1, torch.float64, device, 0, 1), random_tensor((4, 4), 2, torch.float64, device, 0, 1)
    expect_same_gradients(student.mnist_distance, ref.mnist_distance, [a, b], ["a", "b"])
    expect_gradcheck(student.mnist_distance, [a, b])


def _as_bool(result, what="is_3"):
    if not isinstance(result, torch.Tensor):
        raise AssertionError(f"{what} returned {type(result).__name__}: return a tensor of True/False")
    return result.bool()


@gate
@blank("is_3")
def test_is_3_classifies_a_stack(student, device):
    """says True exactly where an image is closer to the ideal 3"""
    sample, mean3, mean7 = _digits(device, seed=3)
    for digit in ("3", "7"):
        stack = sample.stack("valid", digit)
        expected = ref.is_3(stack, mean3, mean7)
        result = _as_bool(call_student(student.is_3, stack, mean3, mean7))
        assert result.shape == expected.shape, f"is_3 returned shape {tuple(result.shape)} for a stack, expected {tuple(expected.shape)}"
        if torch.equal(result.cpu(), ~expected.cpu()):
            raise AssertionError("compared the wrong way round: True means closer to the 3 than to the 7")
        assert torch.equal(result.cpu(), expected.cpu()), "is_3 disagrees with the reference on some images"


@gate
@blank("is_3")
def test_is_3_of_one_image(student, device):
    """gives a single True/False for one image"""
    _, mean3, mean7 = _digits(device)
    result = _as_bool(call_student(student.is_3, mean3, mean3, mean7))
    assert result.dim() == 0, f"is_3 of one image returned shape {tuple(result.shape)}, expected a 0-d tensor"
    assert bool(result), "the ideal 3 itself is not classified as a 3"


@blank("is_3")
@CHECK_SETTINGS
@given(seed=seeds)
def test_is_3_matches_reference_on_random_images(student, device, seed):
    """agrees with the reference on random images and random ideal digits"""
    x = random_tensor((7, 5, 5), seed, torch.float32, device, 0, 1)
    mean3, mean7 = random_tensor((5, 5), seed + 1, torch.float32, device, 0, 1), random_tensor((5, 5), seed + 2, torch.float32, device, 0, 1)
    result = _as_bool(call_student(student.is_3, x, mean3, mean7))
    assert torch.equal(result.cpu(), ref.is_3(x, mean3, mean7).cpu()), "is_3 disagrees with the reference on random images"


def accuracy_mistakes(valid_3s, valid_7s, mean3, mean7):
    acc3 = ref.is_3(valid_3s, mean3, mean7).float().mean()
    acc7 = (1 - ref.is_3(valid_7s, mean3, mean7).float()).mean()
    wrong7 = ref.is_3(valid_7s, mean3, mean7).float().mean()
    pooled = torch.cat([ref.is_3(valid_3s, mean3, mean7).float(), 1 - ref.is_3(valid_7s, mean3, mean7).float()]).mean()
    return {
        "for the 7s, count the images NOT classified as 3 (1 - is_3(...))": (acc3 + wrong7) / 2,
        "pooled all images together: average the accuracy on the 3s and the accuracy on the 7s": pooled,
        "only measured the 3s: average the 3s' and the 7s' accuracies": acc3,
        "only measured the 7s: average the 3s' and the 7s' accuracies": acc7,
        "added the two accuracies without dividing by 2": acc3 + acc7,
    }


def _accuracy_case(student, stacks):
    valid_3s, valid_7s, mean3, mean7 = stacks
    result = call_student(student.validation_accuracy, valid_3s, valid_7s, mean3, mean7)
    expected = torch.tensor(ref.validation_accuracy(valid_3s, valid_7s, mean3, mean7), dtype=torch.float64)
    expect_close(result, expected, accuracy_mistakes(*stacks), what="the accuracy")
    return result


@gate
@blank("validation_accuracy")
def test_validation_accuracy_on_small_digits(student, device):
    """matches the reference on a small set of digits"""
    sample, mean3, mean7 = _digits(device, seed=5)
    noisy3 = (sample.stack("valid", "3") + random_tensor((4, 28, 28), 9, torch.float32, device, 0, 0.9)).clamp(0, 1)
    _accuracy_case(student, (noisy3, sample.stack("valid", "7"), mean3, mean7))


@gate
@blank("validation_accuracy")
def test_validation_accuracy_returns_a_python_float(student, device):
    """returns a Python float"""
    sample, mean3, mean7 = _digits(device)
    result = call_student(student.validation_accuracy, sample.stack("valid", "3"), sample.stack("valid", "7"), mean3, mean7)
    assert isinstance(result, float), f"returned {type(result).__name__}: return a Python float (use .item())"


@blank("validation_accuracy")
def test_validation_accuracy_on_the_mnist_sample(student, device):
    """gives the reference's accuracy (about 0.95) on the MNIST validation set"""
    sample = real_sample(device)
    mean3, mean7 = ref.mean_digit(sample.stack("train", "3")), ref.mean_digit(sample.stack("train", "7"))
    _accuracy_case(student, (sample.stack("valid", "3"), sample.stack("valid", "7"), mean3, mean7))
