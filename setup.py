"""Packaging for d3tf: setuptools only, no Bazel BUILD files.

The dependency ranges are the set verified together in shared/DESIGN.md
section 5 (TensorFlow 2.21 with Keras 3). TF Addons is deliberately absent:
it reached end of life and cannot be imported with TF >= 2.16.
"""

import pathlib
import re

import setuptools

_HERE = pathlib.Path(__file__).parent
_VERSION = re.search(r'^__version__ = "([^"]+)"',
                     (_HERE / "d3tf" / "__init__.py").read_text(), re.M).group(1)

_INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.15,<4",
    "tf-keras>=2.21,<2.22",  # TFP needs it installed, even for distributions.
    "tensorflow-probability>=0.25,<0.26",
    "h5py>=3.10,<3.15",  # TensorFlow's pin.
    "absl-py>=2.1",
    "numpy>=2.0,<3",
    "scipy>=1.13",
    "pillow>=10",
    "matplotlib>=3.8",
]

_EXTRAS = {
    # The export and serving tests run the LiteRT interpreter and TF Serving's gRPC stubs;
    # pytest-xdist runs the suite in two processes (README: the test command).
    "test": ["pytest>=8", "pytest-xdist>=3.6,<4", "ai-edge-litert>=2.3,<2.4",
             "tensorflow-serving-api>=2.21,<2.22"],
    "tune": ["keras-tuner>=1.4.8,<1.5", "tensorboard>=2.21,<2.22", "scikit-learn>=1.3"],  # sklearn: Bayesian
    "export": ["ai-edge-litert>=2.3,<2.4", "tensorflow-serving-api>=2.21,<2.22"],
}
_EXTRAS["all"] = sorted({req for reqs in _EXTRAS.values() for req in reqs})

setuptools.setup(
    name="d3tf",
    version=_VERSION,
    description="Single-image depth from defocus blur (Deep Depth from Defocus) in TensorFlow/Keras 3",
    long_description=(_HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["d3tf", "d3tf.*"]),
    python_requires=">=3.10",
    install_requires=_INSTALL_REQUIRES,
    extras_require=_EXTRAS,
    license="GPL-3.0-or-later",
)
