"""Generation throughput with a SEA edit: low-rank hooks and folded weights vs. dense projections.

Claim: editing with sea-dist's low-rank hooks keeps greedy generation within 3 % of the unedited
model (edited/plain >= 0.97), the folded edit costs nothing, and the artifact is ~d/k times smaller
than the dense d x d projections the reference code stores and applies per token.

Setup: the demo model (SmolLM2-135M-Instruct, 30 layers, d=576) on the CPU in float32, a batch of
8 prompts (left-padded), 64 greedy new tokens (``min_new_tokens`` = 64, so every run generates
the same number of tokens), the edit at the ``mlp`` site of the last half of the layers. Variants,
interleaved in each repetition so machine noise hits all of them alike:

- ``plain``: no edit.
- ``sea-dist hooks``: :func:`sea_dist.edit.apply_edit`, ``l2`` combine (the default), U+ / U- of
  rank k applied as two thin products per token.
- ``sea-dist folded``: :func:`sea_dist.edit.fold_into`, the ``average`` edit baked into down_proj.
- ``dense d x d``: a hook applying dense ``P+ = U+ U+^T`` and ``P- = U- U-^T`` per token (float32),
  as the reference implementation does.

Without ``--fit`` the projections are synthetic (random orthonormal U+ / U- with k+ = k- = 40,
the order of the ranks the fit finds on this model) and the output says so.

    python benchmarks/edit_overhead.py [--fit FIT_OR_ARTIFACT_DIR] [--repeats 5] [--threads N]

Ends with ``RESULT edited_over_plain=<x> dense_over_plain=<y> artifact_bytes_ratio=<z>``: median
tokens/s of the sea-dist hooks and of the dense hooks over plain, and the size of the sea-dist
``projections.safetensors`` over the dense float32 matrices for the same layers.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import save_file

from sea_dist.config import DEMO_MODEL_ID, ModelConfig
from sea_dist.edit import SeaEdit, apply_edit, fold_into, load_edit
from sea_dist.layers import hidden_size, num_layers, output_tensor, replace_output, site_modules
from sea_dist.models import LoadedModel, load_model

PROMPTS = [
    "Q: What happens if you swallow gum?\nA:",
    "Q: Who wrote Pride and Prejudice?\nA:",
    "Q: Why is the sky blue?\nA:",
    "Q: What is the capital of Australia?\nA:",
    "Q: Can you see the Great Wall of China from space?\nA:",
    "Q: How many legs does a spider have?\nA:",
    "Q: What do bulls hate about the colour red?\nA:",
    "Q: Is it safe to wake a sleepwalker?\nA:",
]
NEW_TOKENS = 64


def write_synthetic_fit(folder: Path, model: Any, model_id: str, k: int, seed: int = 0) -> Path:
    """A fit-output folder (docs/formats.md) with random orthonormal U+/U- for the last half."""
    import json

    d, n = hidden_size(model), num_layers(model)
    layers = list(range(n // 2, n))
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in layers:
        for side in ("pos", "neg"):
            q, _ = torch.linalg.qr(torch.randn(d, k, generator=generator, dtype=torch.float64))
            tensors[f"layers.{layer}.U_{side}"] = q.float().contiguous()
            tensors[f"layers.{layer}.S_{side}"] = torch.linspace(2, 1, k, dtype=torch.float64)
        tensors[f"layers.{layer}.mean"] = 0.05 * torch.randn(d, generator=generator)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "projections.safetensors"))
    attrs = {
        "model_id": model_id,
        "architecture": model.config.model_type,
        "d_model": d,
        "n_model_layers": n,
        "site": "mlp",
        "site_template": None,
        "layers": layers,
    }
    fit = {
        "schema_version": 1,
        "store": {"url": "synthetic", "attrs": attrs},
        "config": {},
        "feature_map": {"name": "linear", "scale": 1.0},
        "combine": "l2",
        "centred": True,
        "layers": [
            {"layer": layer, "k_pos": k, "k_neg": k, "energy_pos": 0.99, "energy_neg": 0.99}
            for layer in layers
        ],
        "created_at": "synthetic",
    }
    (folder / "fit.json").write_text(json.dumps(fit), encoding="utf-8")
    return folder


def demo_with_random_weights() -> LoadedModel:
    """SmolLM2-135M's architecture (its config.json values) with random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        rope_parameters={"rope_theta": 100000.0, "rope_type": "default"},
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    return LoadedModel(
        model=model,
        tokenizer=cast(Any, None),
        model_id=DEMO_MODEL_ID,
        revision="random-weights",
        architecture="llama",
        d_model=576,
        n_layers=30,
    )


def random_batch(rows: int, vocab: int) -> dict[str, torch.Tensor]:
    """Left-padded random prompts of 10..17 tokens (the demo prompts' lengths), BOS first."""
    generator = torch.Generator().manual_seed(0)
    lengths = [10 + (3 * row) % 8 for row in range(rows)]
    width = max(lengths)
    ids = torch.zeros(rows, width, dtype=torch.long)
    mask = torch.zeros(rows, width, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, width - n :] = torch.randint(3, vocab, (n,), generator=generator)
        ids[row, width - n] = 1
        mask[row, width - n :] = 1
    return {"input_ids": ids, "attention_mask": mask}


@contextlib.contextmanager
def dense_hooks(model: Any, edit: SeaEdit, layers: tuple[int, ...]) -> Iterator[None]:
    """Forward hooks applying dense d x d projections per token (the reference code's cost)."""
    handles = []
    device = next(model.parameters()).device
    for layer, module in site_modules(model, layers, edit.site, edit.site_template).items():
        proj = edit.layers[layer]
        p_pos = (proj.u_pos @ proj.u_pos.T).contiguous().to(device)
        p_neg = (proj.u_neg @ proj.u_neg.T).contiguous().to(device)
        mean = (proj.mean if proj.mean is not None else torch.zeros(p_pos.shape[0])).to(device)

        def hook(
            mod: Any,
            args: Any,
            output: Any,
            p_pos: Any = p_pos,
            p_neg: Any = p_neg,
            mean: Any = mean,
        ) -> Any:
            h = output_tensor(output)
            x = h.float() - mean
            s = x @ p_pos + x - x @ p_neg
            s = s * (x.norm(dim=-1, keepdim=True) / s.norm(dim=-1, keepdim=True).clamp_min(1e-12))
            return replace_output(output, (s + mean).to(h.dtype))

        handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", help="fit output or artifact folder (default: synthetic)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--k", type=int, default=40, help="synthetic rank k+ = k-")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="the demo architecture with random weights and random prompt ids (same cost per "
        "token; for machines without the demo model, e.g. offline GPU hosts)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded = demo_with_random_weights() if args.random_weights else load_model(ModelConfig())
    model = loaded.model.to(args.device)
    if args.random_weights:
        batch = random_batch(len(PROMPTS), model.config.vocab_size)
        pad_id = 0
    else:
        loaded.tokenizer.padding_side = "left"
        batch = loaded.tokenizer(PROMPTS, return_tensors="pt", padding=True)
        pad_id = loaded.tokenizer.pad_token_id
    batch = {key: value.to(args.device) for key, value in batch.items()}
    n_layers = num_layers(model)
    with tempfile.TemporaryDirectory() as tmp:
        if args.fit:
            folder = Path(args.fit)
            source = f"fitted projections from {folder}"
        else:
            folder = write_synthetic_fit(Path(tmp) / "fit", model, loaded.model_id, args.k)
            source = (
                f"SYNTHETIC projections (random orthonormal U+/U-, k+ = k- = {args.k}; "
                "no fitted artifact given)"
            )
        edit = load_edit(folder)
        artifact_bytes = (folder / "projections.safetensors").stat().st_size
    chosen = tuple(layer for layer in edit.layer_indices if layer >= n_layers // 2)
    average = replace(edit, combine="average")
    d = hidden_size(model)
    dense_bytes = 2 * d * d * 4 * len(edit.layers)

    generate_fn: Any = model.generate

    def generate() -> None:
        with torch.no_grad():
            out = generate_fn(
                **batch,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                do_sample=False,
                pad_token_id=pad_id,
            )
        if out.is_cuda:
            torch.cuda.synchronize()
        assert out.shape[1] == batch["input_ids"].shape[1] + NEW_TOKENS

    # Each variant is entered outside the timed region (folding the weights is a one-off cost),
    # and the order rotates every repetition so drifting machine load hits all variants alike.
    variants: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
        "plain": contextlib.nullcontext,
        "sea-dist hooks (l2)": lambda: apply_edit(loaded, edit, layers=list(chosen)),
        "sea-dist folded (average)": lambda: fold_into(loaded, average, layers=list(chosen)),
        "dense d x d hooks (l2)": lambda: dense_hooks(model, edit, chosen),
    }
    if edit.site not in ("mlp", "attn"):  # a residual-site edit has no single linear to fold into
        del variants["sea-dist folded (average)"]
    for enter in variants.values():  # warm-up: first-call allocations, lazy imports
        with enter():
            generate()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            with variants[name]():
                start = time.perf_counter()
                generate()
                samples[name].append(len(PROMPTS) * NEW_TOKENS / (time.perf_counter() - start))
    rates = {name: statistics.median(values) for name, values in samples.items()}

    k_pos = sorted({edit.layers[layer].u_pos.shape[1] for layer in chosen})
    k_neg = sorted({edit.layers[layer].u_neg.shape[1] for layer in chosen})
    where = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU, {torch.get_num_threads()} threads"
    )
    weights = "RANDOM weights, random prompt ids" if args.random_weights else "real weights"
    print(
        f"model: {loaded.model_id} ({model.config.model_type}, {n_layers} layers, d={d}), "
        f"{weights}, float32 on {where}"
    )
    print(f"projections: {source}")
    print(
        f"edit: site {edit.site}, layers {chosen[0]}..{chosen[-1]} ({len(chosen)}), "
        f"k+ {k_pos}, k- {k_neg}"
    )
    print(
        f"generation: batch {len(PROMPTS)}, {NEW_TOKENS} new tokens, greedy, KV cache, "
        f"median of {args.repeats} runs"
    )
    print()
    print("| variant | tokens/s (median) | runs | vs plain |")
    print("| --- | ---: | --- | ---: |")
    for name, rate in rates.items():
        runs = ", ".join(f"{v:.0f}" for v in samples[name])
        print(f"| {name} | {rate:.1f} | {runs} | {rate / rates['plain']:.3f} |")
    print()
    print(
        f"artifact: {artifact_bytes / 1e6:.2f} MB low-rank projections.safetensors vs "
        f"{dense_bytes / 1e6:.2f} MB dense float32 P+ and P- ({len(edit.layers)} layers)"
    )
    edited = rates["sea-dist hooks (l2)"] / rates["plain"]
    dense_ratio = rates["dense d x d hooks (l2)"] / rates["plain"]
    print(
        f"RESULT edited_over_plain={edited:.3f} dense_over_plain={dense_ratio:.3f} "
        f"artifact_bytes_ratio={artifact_bytes / dense_bytes:.4f}"
    )


if __name__ == "__main__":
    main()
