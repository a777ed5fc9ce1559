"""CLI: ``ecellm train`` and ``ecellm export`` (thin wrappers over the Python API)."""

from __future__ import annotations

from typing import Annotated

import typer

from ecellm.cli_options import one_of


def _export_formats() -> tuple[str, ...]:
    from ecellm.train.export import FORMATS

    return FORMATS


def _gguf_dtypes() -> tuple[str, ...]:
    from ecellm.train.export import GGUF_DTYPES

    return GGUF_DTYPES


def _templates() -> tuple[str, ...]:
    from ecellm.prompts import TEMPLATES

    return TEMPLATES


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        config: Annotated[
            str,
            typer.Option("--config", "-c", help="YAML file or recipe name (`ecellm recipes ls`)"),
        ],
        overrides: Annotated[
            list[str] | None, typer.Argument(help="key=value overrides, e.g. lora.r=8 max_steps=20")
        ] = None,
        out: Annotated[
            str | None, typer.Option("--out", "-o", help="output folder (the config's output_dir)")
        ] = None,
    ) -> None:
        """Instruction-tune a model (LoRA, QLoRA or full) on ECInstruct samples; works under torchrun."""
        from ecellm.train.run import train

        extra = (f"output_dir={out}",) if out is not None else ()
        typer.echo(str(train(config, (*(overrides or ()), *extra))))

    @app.command("export")
    def export_cmd(
        adapter: Annotated[str, typer.Argument(help="adapter folder written by `ecellm train`")],
        out: Annotated[str, typer.Option("--out", "-o", help="output folder")],
        fmt: Annotated[
            str,
            typer.Option(
                "--format", "-f", callback=one_of(_export_formats), help="merged (safetensors) or gguf"
            ),
        ] = "merged",
        base: Annotated[
            str | None, typer.Option("--base", help="base model (default: the one recorded at training)")
        ] = None,
        dtype: Annotated[
            str, typer.Option("--dtype", callback=one_of(_gguf_dtypes), help="gguf tensor type: f32 or f16")
        ] = "f16",
        template: Annotated[
            str | None,
            typer.Option(
                "--template",
                callback=one_of(_templates),
                help="prompt template (default: the one recorded at training)",
            ),
        ] = None,
    ) -> None:
        """Merge an adapter into its base model (safetensors), or write a GGUF file for llama.cpp/Ollama."""
        from ecellm.train.export import export

        typer.echo(str(export(adapter, out, fmt=fmt, base=base, dtype=dtype, template=template)))

    recipes_app = typer.Typer(help="Training recipes shipped with ecellm.", no_args_is_help=True)
    app.add_typer(recipes_app, name="recipes")

    @recipes_app.command("ls")
    def recipes_ls() -> None:
        """List recipes (names for `ecellm train --config NAME`), where each comes from, what it is."""
        from ecellm.train.recipes import list_recipes

        for r in list_recipes():
            typer.echo(f"{r.name}\t{r.origin}\t{r.summary}")

    @recipes_app.command("cp")
    def recipes_cp(
        name: Annotated[str, typer.Argument(help="recipe name, e.g. smollm2-135m-lora")],
        out: Annotated[str | None, typer.Option("--out", "-o", help="file or folder to copy it to")] = None,
        dest: Annotated[
            str | None, typer.Argument(help="same as --out (the earlier form)", show_default=False)
        ] = None,
    ) -> None:
        """Copy a recipe to edit it; then `ecellm train --config OUT`."""
        from ecellm.cli_options import pick_out
        from ecellm.train.recipes import copy_recipe

        typer.echo(str(copy_recipe(name, pick_out(out, dest, old_flag="DEST", required=True))))
