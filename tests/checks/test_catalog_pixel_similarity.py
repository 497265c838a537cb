"""The mutants and alternatives of 03_pixel_similarity: wrong solutions the hidden checks must catch, each with its own
named mistake, and correct ones they must pass. The machinery is in ``catalog.py``."""

from __future__ import annotations

import pytest
import torch

from autograder.reference import pixel_similarity as ps

from autograder.data import synthetic_mnist

from catalog import Catalog

pytestmark = pytest.mark.pixel_similarity

CATALOG = Catalog("pixel_similarity", real_data_blanks={"validation_accuracy": ps.validation_accuracy})

_NOTEBOOK_DATA = synthetic_mnist(16, seed=0)
MEAN3 = ps.mean_digit(_NOTEBOOK_DATA.stack("train", "3"))
MEAN7 = ps.mean_digit(_NOTEBOOK_DATA.stack("train", "7"))
VALID_3_TENS = _NOTEBOOK_DATA.stack("valid", "3")
VALID_7_TENS = _NOTEBOOK_DATA.stack("valid", "7")
"""The notebook's globals ``mean3``, ``mean7``, ``valid_3_tens``, ``valid_7_tens``, made as the notebook makes them
(from synthetic digits here): what a mutant that reads globals instead of its arguments finds."""

# ==== mutants =======================================================================================

@CATALOG.mutant("mnist_distance", "averaged over every axis")
def mnist_distance_mean_of_everything(a, b):
    return (a - b).abs().mean()


@CATALOG.mutant("mnist_distance", "forgot .abs()")
def mnist_distance_no_abs(a, b):
    return (a - b).mean((-1, -2))


@CATALOG.mutant("mnist_distance", "squared the differences")
def mnist_distance_squared(a, b):
    return ((a - b) ** 2).mean((-1, -2))


@CATALOG.mutant("mnist_distance", "took the root mean squared difference")
def mnist_distance_rmse(a, b):
    return ((a - b) ** 2).mean((-1, -2)).sqrt()


@CATALOG.mutant("mnist_distance", "summed instead of averaging")
def mnist_distance_sum_over_pixels(a, b):
    return (a - b).abs().sum((-1, -2))


@CATALOG.mutant("mnist_distance", "summed over every axis")
def mnist_distance_sum_over_all_axes(a, b):
    return (a - b).abs().sum()


@CATALOG.mutant("mnist_distance", "used axes that a single image does not have")
def mnist_distance_axes_1_2(a, b):
    return (a - b).abs().mean((1, 2))


@CATALOG.mutant("mnist_distance", "changed its input a in place")
def mnist_distance_in_place(a, b):
    return a.sub_(b).abs_().mean((-1, -2))


# ---- 03 pixel similarity: is_3 --------------------------------------------------------------------


@CATALOG.mutant("is_3", "compared the wrong way round")
def is_3_reversed(x, mean3, mean7):
    return ps.mnist_distance(x, mean3) > ps.mnist_distance(x, mean7)


@CATALOG.mutant("is_3", "for a stack")
def is_3_distance_over_every_axis(x, mean3, mean7):
    return (x - mean3).abs().mean() < (x - mean7).abs().mean()


@CATALOG.mutant("is_3", "used a Python `if` on a comparison of several images")
def is_3_python_if(x, mean3, mean7):
    if ps.mnist_distance(x, mean3) < ps.mnist_distance(x, mean7):
        return torch.tensor(True)
    return torch.tensor(False)


@CATALOG.mutant("is_3", "measured the distance with squared differences")
def is_3_squared_distance(x, mean3, mean7):
    return ((x - mean3) ** 2).mean((-1, -2)) < ((x - mean7) ** 2).mean((-1, -2))


@CATALOG.mutant("is_3", "compared the wrong way round")
def is_3_swapped_means(x, mean3, mean7):
    return ps.mnist_distance(x, mean7) < ps.mnist_distance(x, mean3)


@CATALOG.mutant("is_3", "ignored the mean3 and mean7 it was given")
def is_3_reads_the_global_means(x, mean3, mean7):
    return ps.mnist_distance(x, MEAN3) < ps.mnist_distance(x, MEAN7)


# ---- 03 pixel similarity: validation_accuracy -----------------------------------------------------


@CATALOG.mutant("validation_accuracy", "count the images NOT classified as 3")
def validation_accuracy_forgot_one_minus(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).float().mean()
    accuracy_7s = ps.is_3(valid_7s, mean3, mean7).float().mean()
    return ((accuracy_3s + accuracy_7s) / 2).item()


@CATALOG.mutant("validation_accuracy", "pooled all images together", real_data=True)
def validation_accuracy_pooled(valid_3s, valid_7s, mean3, mean7):
    right = torch.cat([ps.is_3(valid_3s, mean3, mean7), ~ps.is_3(valid_7s, mean3, mean7)])
    return right.float().mean().item()


@CATALOG.mutant("validation_accuracy", "only measured the 3s", real_data=True)
def validation_accuracy_only_3s(valid_3s, valid_7s, mean3, mean7):
    return ps.is_3(valid_3s, mean3, mean7).float().mean().item()


@CATALOG.mutant("validation_accuracy", "without dividing by 2")
def validation_accuracy_no_halving(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).float().mean()
    accuracy_7s = (1 - ps.is_3(valid_7s, mean3, mean7).float()).mean()
    return (accuracy_3s + accuracy_7s).item()


@CATALOG.mutant("validation_accuracy", "return a Python float")
def validation_accuracy_returns_a_tensor(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).float().mean()
    accuracy_7s = (1 - ps.is_3(valid_7s, mean3, mean7).float()).mean()
    return (accuracy_3s + accuracy_7s) / 2


@CATALOG.mutant("validation_accuracy", "took the mean of a True/False tensor")
def validation_accuracy_mean_of_bools(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).mean()
    accuracy_7s = (~ps.is_3(valid_7s, mean3, mean7)).mean()
    return ((accuracy_3s + accuracy_7s) / 2).item()


@CATALOG.mutant("validation_accuracy", "ignored the mean3 and mean7 it was given")
def validation_accuracy_reads_the_global_means(valid_3s, valid_7s, mean3, mean7):
    return ps.validation_accuracy(valid_3s, valid_7s, MEAN3, MEAN7)


@CATALOG.mutant("validation_accuracy", "ignored the valid_3s and valid_7s it was given")
def validation_accuracy_reads_the_global_stacks(valid_3s, valid_7s, mean3, mean7):
    return ps.validation_accuracy(VALID_3_TENS, VALID_7_TENS, mean3, mean7)


@CATALOG.mutant("validation_accuracy", "changed its input valid_7s in place")
def validation_accuracy_in_place(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).float().mean()
    valid_7s.sub_(valid_7s).add_(mean7)  # overwrites the 7s with the ideal 7
    accuracy_7s = (1 - ps.is_3(valid_7s, mean3, mean7).float()).mean()
    return ((accuracy_3s + accuracy_7s) / 2).item()


# ==== alternatives =================================================================================

@CATALOG.alternative("mnist_distance")
def mnist_distance_torch_abs(a, b):
    return torch.abs(a - b).mean(dim=(-2, -1))


@CATALOG.alternative("mnist_distance")
def mnist_distance_two_means(a, b):
    return (b - a).abs().mean(-1).mean(-1)


@CATALOG.alternative("is_3")
def is_3_torch_lt(x, mean3, mean7):
    return torch.lt(ps.mnist_distance(x, mean3), ps.mnist_distance(x, mean7))


@CATALOG.alternative("is_3")
def is_3_l1_loss_per_image(x, mean3, mean7):
    return (x - mean3).abs().mean(-1).mean(-1) < torch.abs(x - mean7).mean((-2, -1))


@CATALOG.alternative("is_3")
def is_3_greater_than_flipped(x, mean3, mean7):
    return ps.mnist_distance(x, mean7) > ps.mnist_distance(x, mean3)


@CATALOG.alternative("validation_accuracy")
def validation_accuracy_stack(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).float().mean()
    accuracy_7s = (~ps.is_3(valid_7s, mean3, mean7)).float().mean()
    return torch.stack([accuracy_3s, accuracy_7s]).mean().item()


@CATALOG.alternative("validation_accuracy")
def validation_accuracy_python_floats(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).float().mean().item()
    accuracy_7s = 1 - ps.is_3(valid_7s, mean3, mean7).float().mean().item()
    return (accuracy_3s + accuracy_7s) / 2


test_mutant_loses_points_with_its_own_named_mistake, test_alternative_passes_every_check = CATALOG.tests()
