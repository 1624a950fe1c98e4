"""Benchmark: activation recording on a GPU, batched sea-dist path vs the reference approach.

The CPU benchmark (``collect_throughput.py``) runs the whole Ray pipeline. A lent GPU machine has
no Ray and cannot receive the demo model's weights (the transfer is capped at 64 MiB), so this
script measures the part a GPU accelerates, in one process, on the demo model's *architecture*
(SmolLM2-135M config and tokenizer) with random weights (throughput does not depend on the
weight values; generation then always runs to ``max_new_tokens``):

- (a) bare: the recorder's own padded batches, plain forward, no hooks, no writes;
- (b) sea-dist: :class:`~sea_dist.collect.record.ActivationRecorder` per shard (hooks, gather of
  the selected tokens, early stop) plus :meth:`ActivationStore.write_shard` into a local Zarr
  store, i.e. what one collector actor does;
- (c) reference approach: one example at a time, ``output_hidden_states=True`` for all layers,
  kept in memory and saved once;
- the ``generate`` neutral mode, batched vs one prompt at a time, on a subset.

Tokens/s counts the prompt + positive and prompt + negative tokens for every row, as the CPU
script does. Prints a table and ``RESULT gpu_b_over_a=<x> gpu_b_over_c=<y>``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, run: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by ``run`` (device work included)."""
    _sync(device)
    started = time.perf_counter()
    result = run()
    _sync(device)
    return time.perf_counter() - started, result


def main(argv: Sequence[str] | None = None) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from sea_dist.collect.batching import length_batches, pad_batch
    from sea_dist.collect.record import ActivationRecorder, RecordOptions
    from sea_dist.config import DataConfig
    from sea_dist.data import make_template, truthfulqa_demonstrations
    from sea_dist.layers import site_modules
    from sea_dist.store import ActivationStore, StoreSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="folder with config.json + tokenizer")
    parser.add_argument("--random-weights", action="store_true", help="init from the config")
    parser.add_argument("--data", required=True, help="TruthfulQA.csv")
    parser.add_argument("--limit", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rows-per-shard", type=int, default=128)
    parser.add_argument("--reference-limit", type=int, default=128)
    parser.add_argument("--generate-limit", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    if args.random_weights:
        torch.manual_seed(0)
        config = AutoConfig.from_pretrained(args.model_dir)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype)
    model = model.to(device).eval()
    n_layers, d = model.config.num_hidden_layers, model.config.hidden_size
    layers = tuple(range(n_layers))
    demos = truthfulqa_demonstrations(args.data)[: args.limit]
    template = make_template(DataConfig())
    sites = site_modules(model, layers, "residual")
    options = RecordOptions(neutral="prompt", batch_size=args.batch_size)
    recorder = ActivationRecorder(model, tokenizer, sites, template, options)
    shards = [demos[s : s + args.rows_per_shard] for s in range(0, len(demos), args.rows_per_shard)]

    batches = []
    for shard in shards:
        sequences, _ = recorder.sequences(shard)
        batches += [pad_batch(b, recorder.pad_id, "right") for b in length_batches(sequences, 64)]
    tokens = sum(b.n_tokens for b in batches)

    def bare() -> None:
        with torch.inference_mode():
            for batch in batches:
                model(
                    input_ids=batch.input_ids.to(device),
                    attention_mask=batch.attention_mask.to(device),
                    position_ids=batch.position_ids.to(device),
                    use_cache=False,
                )

    workdir = Path(tempfile.mkdtemp(prefix="sea-gpu-bench-"))

    def sea(run: int) -> None:
        spec = StoreSpec(
            "smollm2-random",
            "bench",
            "llama",
            d,
            n_layers,
            "bench",
            "residual",
            None,
            layers,
            "last",
            "prompt",
            16,
            f"bench-{run}",
            len(demos),
            args.rows_per_shard,
        )
        store = ActivationStore.create(str(workdir / f"store-{run}.zarr"), spec, overwrite=True)
        for index, shard in enumerate(shards):
            recorded = recorder.record(shard)
            store.write_shard(
                index,
                recorded.arrays(),
                [x.id for x in shard],
                recorded.generated,
                recorded.n_tokens,
            )

    def reference(subset: Sequence[Any]) -> None:
        kept: dict[str, list[np.ndarray]] = {"neutral": [], "positive": [], "negative": []}
        with torch.inference_mode():
            for demo in subset:
                prompt = template.render(demo.prompt)
                texts = {
                    "neutral": prompt,
                    "positive": prompt + template.completion(demo.positive),
                    "negative": prompt + template.completion(demo.negative),
                }
                for name, text in texts.items():
                    ids = tokenizer(text, return_tensors="pt")["input_ids"].to(device)
                    states = model(input_ids=ids, output_hidden_states=True).hidden_states
                    kept[name].append(torch.stack(states[1:])[:, 0, -1].float().cpu().numpy())
        np.savez(workdir / "reference.npz", **{k: np.stack(v) for k, v in kept.items()})

    bare()  # warm-up: kernels, allocator
    runs = {"a": [], "b": [], "c": []}
    for run in range(3):
        runs["a"].append(timed(device, bare)[0])
        runs["b"].append(timed(device, lambda run=run: sea(run))[0])
    ref_demos = demos[: args.reference_limit]
    ref_tokens = tokens * len(ref_demos) / len(demos)
    for _ in range(2):
        runs["c"].append(timed(device, lambda: reference(ref_demos))[0])
    rate = {
        "a": tokens / float(np.median(runs["a"])),
        "b": tokens / float(np.median(runs["b"])),
        "c": ref_tokens / float(np.median(runs["c"])),
    }

    gen_demos = demos[: args.generate_limit]
    gen_options = RecordOptions(
        neutral="generate", batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
    )
    batched = ActivationRecorder(model, tokenizer, sites, template, gen_options)
    one = ActivationRecorder(
        model,
        tokenizer,
        sites,
        template,
        RecordOptions(neutral="generate", batch_size=1, max_new_tokens=args.max_new_tokens),
    )
    gen_batched = float(
        np.median([timed(device, lambda: batched.record(gen_demos))[0] for _ in range(2)])
    )
    gen_one = timed(device, lambda: one.record(gen_demos))[0]

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device: {name}; model: SmolLM2-135M architecture ({n_layers} layers, d={d}), "
        f"{'random' if args.random_weights else 'real'} weights, {args.dtype}; "
        f"{len(demos)} TruthfulQA demonstrations, {tokens} tokens, batch {args.batch_size}, "
        "all layers, residual site, neutral: prompt; median of 3 runs (reference: 2 runs on "
        f"{len(ref_demos)} rows)"
    )
    print(f"{'row':<46} {'tokens/s':>12} {'vs (a)':>8}")
    labels = {
        "a": "(a) bare batched forward, no hooks, no writes",
        "b": "(b) sea-dist recorder + Zarr writes (1 worker)",
        "c": "(c) reference: batch 1, all hidden states",
    }
    for key, label in labels.items():
        print(f"{label:<46} {rate[key]:>12.0f} {rate[key] / rate['a']:>8.2f}")
    print(
        f"generate mode ({len(gen_demos)} prompts, {args.max_new_tokens} new tokens): batched "
        f"{gen_batched:.2f} s, one at a time {gen_one:.2f} s, speed-up {gen_one / gen_batched:.1f}x"
    )
    print(
        f"RESULT gpu_b_over_a={rate['b'] / rate['a']:.3f} gpu_b_over_c={rate['b'] / rate['c']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
