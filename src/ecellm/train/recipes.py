"""Training recipes by name: ``ecellm train --config smollm2-135m-lora`` from anywhere.

Recipes live in the checkout's ``configs/`` (where they are edited); a non-editable install
carries a copy inside the package as ``ecellm/recipes/`` (see setup.py). A name is looked up in
``./configs`` (a checkout you are standing in), then in the ``configs/`` of the checkout ecellm
was imported from (an editable install), then in the installed package, so a local edit always
wins over the shipped copy.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ecellm.errors import InputError

SUFFIXES = (".yaml", ".yml")


def recipe_dirs() -> list[tuple[str, Path]]:
    """(origin, folder) pairs in lookup order; folders that do not exist are left out."""
    import ecellm

    pkg = Path(ecellm.__file__).resolve().parent
    cands = [("checkout", Path.cwd() / "configs")]
    source_root = pkg.parents[1]
    if (source_root / "pyproject.toml").exists():
        cands.append(("source", source_root / "configs"))
    cands.append(("package", pkg / "recipes"))
    out, seen = [], set()
    for origin, d in cands:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append((origin, d))
    return out


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    origin: str  # checkout, source or package
    summary: str  # the first comment line of the file


def _summary(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def list_recipes() -> list[Recipe]:
    """Every training recipe by name (the first folder that has a name wins), sorted by name."""
    found: dict[str, Recipe] = {}
    for origin, d in recipe_dirs():
        for f in sorted(d.iterdir()):
            if f.is_file() and f.suffix in SUFFIXES and f.stem not in found:
                found[f.stem] = Recipe(f.stem, f, origin, _summary(f))
    return [found[k] for k in sorted(found)]


def find_recipe(name: str) -> Path | None:
    """The file of recipe ``name`` (with or without .yaml; ``accelerate/ddp`` reaches a subfolder)."""
    rel = name if name.endswith(SUFFIXES) else f"{name}.yaml"
    for _, d in recipe_dirs():
        if (d / rel).is_file():
            return d / rel
    return None


def resolve_config_path(spec: str) -> Path:
    """A ``--config`` value as a file: an existing path as given, else a recipe name."""
    p = Path(spec)
    if p.exists():
        return p
    hit = find_recipe(spec) if not p.is_absolute() else None
    if hit is None:
        known = ", ".join(r.name for r in list_recipes()) or "none found"
        raise InputError(f"config file not found and not a recipe name (recipes: {known})", file=spec)
    return hit


def copy_recipe(name: str, out: str | Path) -> Path:
    """Copy recipe ``name`` to ``out`` (a file, or a folder to put ``NAME.yaml`` in); never overwrites."""
    src = find_recipe(name)
    if src is None:
        known = ", ".join(r.name for r in list_recipes()) or "none found"
        raise InputError(f"unknown recipe (recipes: {known})", file=name)
    dest = Path(out)
    target = dest / src.name if dest.is_dir() else dest
    if target.exists():
        raise InputError("destination exists; remove it or pick another name", file=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return target
