"""Ships the workflow (Snakefile, workflow/, config/, profiles/, share/) inside the package as
mosaic/_workflow, so that a plain `pip install .` gives commands that work from any folder."""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

WORKFLOW_FILES = ["Snakefile", "workflow", "config", "profiles", "share"]


class build_py_with_workflow(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "mosaic", "_workflow")
        for name in WORKFLOW_FILES:
            destination = os.path.join(target, name)
            if os.path.isdir(name):
                shutil.copytree(name, destination, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                os.makedirs(target, exist_ok=True)
                shutil.copy2(name, destination)


setup(cmdclass={"build_py": build_py_with_workflow})
