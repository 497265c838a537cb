"""Reference for assignment 03_pixel_similarity: classify 3s and 7s by distance to the average digit."""

from __future__ import annotations

from torch import Tensor


def mean_digit(images: Tensor) -> Tensor:
    """Return the pixelwise average of a stack of images of shape (n, 28, 28): the "ideal" digit (28, 28)."""
    return images.mean(0)


def mnist_distance(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference over the last two axes (the pixels), broadcasting any leading axes.

    ``mnist_distance(img, mean3)`` is a 0-d tensor; ``mnist_distance(stack, mean3)`` has shape ``(n,)``.
    """
    return (a - b).abs().mean((-1, -2))


def is_3(x: Tensor, mean3: Tensor, mean7: Tensor) -> Tensor:
    """True where ``x`` is closer (by ``mnist_distance``) to ``mean3`` than to ``mean7``; a bool tensor."""
    return mnist_distance(x, mean3) < mnist_distance(x, mean7)


def validation_accuracy(valid_3s: Tensor, valid_7s: Tensor, mean3: Tensor, mean7: Tensor) -> float:
    """The balanced accuracy of ``is_3``: the mean of the 3s' accuracy and the 7s' accuracy, as a float."""
    accuracy_3s = is_3(valid_3s, mean3, mean7).float().mean()
    accuracy_7s = (1 - is_3(valid_7s, mean3, mean7).float()).mean()
    return ((accuracy_3s + accuracy_7s) / 2).item()
