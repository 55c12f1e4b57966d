"""Fixtures shared by several test files."""
import numpy as np
import pytest

from reproducer import experiments


@pytest.fixture
def synthetic_mnist(monkeypatch):
    """Synthetic 6-pixel images with 3 classes in place of MNIST for every Setting (no
    files needed): class c has mean c in every pixel, so a model can learn something."""
    def fake(n_train, n_valid, n_test, data_seed, split, center):
        rs = np.random.RandomState(data_seed)
        parts = {}
        for name, n in [("train", n_train), ("valid", n_valid), ("test", n_test)]:
            labels = rs.randint(3, size=n)
            parts[name] = (rs.randn(n, 6) + labels[:, None], np.eye(3)[labels], labels)
        return parts
    monkeypatch.setattr(experiments, "_mnist", fake)
