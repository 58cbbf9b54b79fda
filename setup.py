"""Installs the clap_rt package and builds the C++ frontend `clap_rt._frontend` with CMake.

CMake is driven directly (configure + build); extra CMake flags come from the CMAKE_ARGS
environment variable, e.g. CMAKE_ARGS="-DFFTW3_ROOT=/opt/fftw -DCMAKE_BUILD_TYPE=Debug".
The build needs cmake >= 3.18, a C++17 compiler and FFTW3 (apt-get install libfftw3-dev).
"""
import os
import shlex
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", str(ROOT),
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            *shlex.split(os.environ.get("CMAKE_ARGS", "")),
        ]
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        subprocess.run(configure, cwd=build_dir, check=True)
        subprocess.run(["cmake", "--build", ".", "--parallel", jobs], cwd=build_dir, check=True)


setup(
    name="clap_rt",
    version="0.1.0",
    description="Streaming CLAP (contrastive language-audio pretraining) inference engine with a training backend",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["clap_rt", "clap_rt.*"]),
    package_data={"clap_rt": ["models/**/*.safetensors", "models/**/*.json", "models/**/*.txt", "models/**/*.onnx",
                              "assets/gpt2/*", "_frontend.pyi"]},
    install_requires=["numpy", "torch", "safetensors", "soundfile", "soxr"],
    ext_modules=[CMakeExtension("clap_rt._frontend")],
    cmdclass={"build_ext": CMakeBuild},
    entry_points={"console_scripts": ["clap-rt = clap_rt.cli:main"]},
    zip_safe=False,
)
