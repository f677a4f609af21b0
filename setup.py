"""Build the Cython extensions in cext/ (numpy's include dir, -O3). A compile error fails
the install: cythonize raises and the build stops."""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class ParallelBuildExt(build_ext):
    """Compile the extensions on every core (the C++ book and the risk gate are the slow ones)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

HERE = os.path.dirname(os.path.abspath(__file__))

extensions = [
    Extension(
        f"cext.{os.path.splitext(os.path.basename(pyx))[0]}",
        [os.path.relpath(pyx, HERE)],
        include_dirs=[numpy.get_include(), "cext"],
        extra_compile_args=["-O3", "-Wno-unused-function"],
        libraries=["rt"],
    )
    for pyx in sorted(glob.glob(os.path.join(HERE, "cext", "*.pyx")))
]

setup(
    cmdclass={"build_ext": ParallelBuildExt},
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
        include_path=[HERE],
        nthreads=os.cpu_count() or 1,
    ),
)
