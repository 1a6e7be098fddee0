"""Build script: metadata lives in setup.cfg; this only adds the optional C speedups."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # optional: without a compiler, greenpools falls back to pure Python.
        Extension("greenpools._speedups", ["greenpools/_speedups.c"], optional=True),
    ],
)
