"""``sea-dist export REF --out DIR``: fold an edit into the config's model and save a checkpoint.

The folder is what :func:`sea_dist.edit.export.export_folded` writes: a plain Hugging Face
checkpoint (plus ``sea-dist-edit.json``) that transformers loads and generates with, no sea-dist
needed, checked by loading it back and comparing logits with the hooked model. Only a linear edit
folds (``combine: average``, ``feature_map: linear``, site ``mlp`` or ``attn``, recipe alpha 1 and
positions ``all``); anything else is refused before the model is loaded, with every reason on one
line and the hooks route (``load_edit`` + ``apply_edit``) as the alternative.

The export is written to a temporary folder beside ``--out`` and renamed into place, so a failed
export leaves nothing behind. A non-empty ``--out`` is replaced only with ``--overwrite`` and only
when it is a previous export (it holds ``sea-dist-edit.json`` and only files an export writes):
user files are never deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sea_dist.cli.environment import (
    anchored_from_environment,
    apply_environment,
    registry_from_environment,
)
from sea_dist.config import SeaConfig, load_config
from sea_dist.errors import ArtifactError
from sea_dist.outputs import is_url

_EXPORT_FILES = re.compile(
    r"sea-dist-edit\.json|config\.json|generation_config\.json|model(-\d+-of-\d+)?\.safetensors"
    r"|model\.safetensors\.index\.json|tokenizer(_config)?\.json|special_tokens_map\.json"
    r"|chat_template\.(jinja|json)|tokenizer\.model|spiece\.model|vocab\.(json|txt)|merges\.txt"
    r"|added_tokens\.json"
)
"""Names of the files ``save_pretrained`` (model and tokenizer) and the export write."""

_HOOKS = (
    "apply it with hooks instead: sea_dist.edit.apply_edit(model, sea_dist.edit.load_edit(REF))"
)


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand to the ``sea-dist`` parser."""
    parser = subparsers.add_parser(
        "export",
        help="fold an edit into the model's weights and save a plain transformers checkpoint",
        description="Fold the edit REF into the weights of the config's model (model: section) "
        "and save a standard Hugging Face checkpoint in --out that plain transformers (and any "
        "serving engine) loads without sea-dist. The folder is verified: it loads completely "
        "and its logits match the hooked model's. Only linear edits fold: combine average, "
        "feature map linear, site mlp or attn, recipe alpha 1 and positions all; anything else "
        "is refused with the reason, and is applied with hooks instead (sea_dist.edit.load_edit "
        "+ apply_edit). The recipe's layers are the layers folded.",
    )
    parser.add_argument(
        "ref",
        metavar="REF",
        help="fit output folder, artifact folder, or registry reference (name@latest, name@3, "
        "name@production, sha256:PREFIX)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder to write")
    parser.add_argument(
        "--config", default=None, help="YAML config whose model: to fold into (default: demo)"
    )
    parser.add_argument(
        "--registry",
        default=None,
        help="registry for a reference REF (default $SEA_DIST_REGISTRY or the config's "
        "publish.registry)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous export in --out (a folder holding other files is refused)",
    )
    parser.add_argument(
        "--allow-model-mismatch",
        action="store_true",
        help="fold into another model id / architecture of the same shape (e.g. a fine-tune)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_export)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that is a file, or non-empty without being a replaceable export."""
    from sea_dist.edit.export import PROVENANCE_FILE

    if not out.exists():
        return
    if not out.is_dir():
        raise ArtifactError(
            f"export --out: expected a folder, found a file at {str(out)!r}; choose another --out"
        )
    names = sorted(entry.name for entry in out.iterdir())
    if not names:
        return
    foreign = [n for n in names if not _EXPORT_FILES.fullmatch(n) or (out / n).is_dir()]
    if PROVENANCE_FILE not in names or foreign:
        raise ArtifactError(
            f"export --out: expected an empty folder or a previous export, found {str(out)!r} "
            f"holding {', '.join((foreign or names)[:4])}; choose another --out (sea-dist never "
            "deletes files it did not write)"
        )
    if not overwrite:
        raise ArtifactError(
            f"export --out: expected an empty folder, found a previous export in {str(out)!r}; "
            "pass --overwrite to replace it, or choose another --out"
        )


def _install(tmp: Path, out: Path) -> None:
    """Move the finished export ``tmp`` to ``out``, replacing an empty folder or old export."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()  # a free name beside out, so both renames stay on one file system
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _folded_modules(model: Any, edit: Any, layers: tuple[int, ...]) -> list[str]:
    """Qualified names of the linear layers the fold changes, one per layer."""
    from sea_dist.edit.compat import unwrap_model
    from sea_dist.edit.fold import output_linear
    from sea_dist.layers import site_module

    module, _ = unwrap_model(model)
    names = {id(m): name for name, m in module.named_modules()}
    return [
        names.get(
            id(output_linear(site_module(module, i, edit.site, edit.site_template), edit.site)), "?"
        )
        for i in layers
    ]


def _export(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except OSError as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise ArtifactError(
            f"export: expected readable sources and a writable --out, found "
            f"{type(error).__name__}: {detail}; check the paths, permissions and free space"
        ) from None


def _run(args: argparse.Namespace) -> int:
    from sea_dist.edit.compat import check_compatible, select_layers
    from sea_dist.edit.export import PROVENANCE_FILE, export_folded
    from sea_dist.edit.loader import load_edit

    config = apply_environment(load_config(args.config) if args.config else SeaConfig())
    location = anchored_from_environment(args.out, "--out")
    if is_url(location):
        raise ArtifactError(
            f"export --out: expected a local folder, found {location!r}; export locally, then "
            "copy the folder"
        )
    out = Path(location)
    _check_out(out, args.overwrite)
    registry = args.registry or registry_from_environment() or config.publish.registry
    edit = load_edit(args.ref, registry=anchored_from_environment(registry, "--registry"))
    from sea_dist.edit.fold import fold_blockers

    blockers = fold_blockers(edit)
    if blockers:
        raise ArtifactError(
            f"export {args.ref}: expected an edit that folds into weights (combine average, "
            f"feature map linear, site mlp or attn, alpha 1, positions all), found "
            f"{'; '.join(blockers)}; nothing written, {_HOOKS.replace('REF', repr(args.ref))}"
        )

    from sea_dist.models import load_model

    loaded = load_model(config.model)
    check_compatible(
        loaded.model, edit, model_id=loaded.model_id, allow_model_mismatch=args.allow_model_mismatch
    )
    layers = select_layers(edit, edit.recipe.layers if edit.recipe else "all")
    modules = _folded_modules(loaded, edit, layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        export_folded(
            loaded, edit, tmp, layers=layers, allow_model_mismatch=args.allow_model_mismatch
        )
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    provenance = json.loads((out / PROVENANCE_FILE).read_text(encoding="utf-8"))
    skipped = [layer for layer in edit.layer_indices if layer not in layers]
    summary = {
        "ref": args.ref,
        "out": str(out),
        "model_id": loaded.model_id,
        "site": edit.site,
        "layers": list(layers),
        "modules": modules,
        "not_in_recipe": skipped,
        "centred": edit.centred,
        "bias_flag": provenance.get("bias_flag"),
        "verified": True,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"exported {args.ref} into {loaded.model_id} -> {out}")
    print(f"folded: site {edit.site}, layers {', '.join(map(str, layers))} ({', '.join(modules)})")
    if summary["bias_flag"]:
        print(f"config: {summary['bias_flag']} = true (holds the centred edit's bias)")
    if skipped:
        print(f"not folded: layers {', '.join(map(str, skipped))} (fitted, not in the recipe)")
    print("verified: loads with plain transformers; logits match the hooked model")
    return 0
