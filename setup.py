"""Build hook: ship the training recipes of configs/ inside the wheel as ``ecellm/recipes/``.

configs/ stays at the top of the checkout (that is where people edit recipes); a non-editable
install copies it into the package so ``ecellm train --config NAME`` and ``ecellm recipes`` work
outside any checkout. Everything else about the build is declared in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RECIPE_SUFFIXES = (".yaml", ".md")


class BuildPyWithRecipes(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads configs/ from the checkout
        src = Path(__file__).resolve().parent / "configs"
        dst = Path(self.build_lib) / "ecellm" / "recipes"
        for f in sorted(src.rglob("*")):
            if f.is_file() and f.suffix in RECIPE_SUFFIXES:
                target = dst / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.copy_file(str(f), str(target))


setup(cmdclass={"build_py": BuildPyWithRecipes})
