"""Build script: metadata lives in setup.cfg; this only compiles the pool core.

The modules named in ``greenpools/_build.py`` are plain Python with Cython
declarations beside them (``.pxd``).  With Cython (a build requirement)
and a C compiler they are compiled; without a compiler the build goes on
and greenpools runs the same sources as plain Python.
"""

import os
import runpy

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
COMPILED = runpy.run_path(os.path.join(HERE, "greenpools", "_build.py"))["COMPILED"]

#: Annotations are for mypy; Cython takes its types from the .pxd files.
DIRECTIVES = {
    "language_level": 3, "annotation_typing": False, "embedsignature": True, "binding": False,
}


def extensions() -> list:
    try:
        from Cython.Build import cythonize
    except ImportError:  # no Cython: plain Python
        return []
    modules = [
        Extension(name, [name.replace(".", "/") + ".py"], optional=True) for name in COMPILED
    ]
    compiled = cythonize(modules, compiler_directives=DIRECTIVES, quiet=True)
    for extension in compiled:  # cythonize makes new Extensions and drops the flag
        extension.optional = True
    return compiled


setup(ext_modules=extensions())
