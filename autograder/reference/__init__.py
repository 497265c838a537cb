"""The reference solution, one module per assignment, named after the assignment:

- ``gradient_descent``  -> ``source/01_gradient_descent``
- ``linear_regression`` -> ``source/02_linear_regression``
- ``pixel_similarity``  -> ``source/03_pixel_similarity``
- ``mnist_sgd``         -> ``source/04_mnist_sgd``
"""

from autograder.reference import gradient_descent, linear_regression, mnist_sgd, pixel_similarity

__all__ = ["gradient_descent", "linear_regression", "mnist_sgd", "pixel_similarity"]
