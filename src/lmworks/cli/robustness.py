"""``lmworks robustness``: accuracy under text perturbations and an embedding-space attack."""

from __future__ import annotations

import argparse

from .common import add_data_options, add_json_option, model_inputs, write_json


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "robustness", help="accuracy under typos, case/punctuation noise, word drops/swaps and an embedding attack",
        description="Evaluate MODEL_DIR on DATA as is and under seeded perturbations (keyboard typos, case and "
        "punctuation noise, dropped words, swapped neighbouring words), and after one FGM step of size "
        "--attack-epsilon on each text's word embeddings (PyTorch models only).",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("data", metavar="DATA", help=".csv, .jsonl, .parquet, or - for JSONL on stdin")
    add_data_options(p)
    p.add_argument("--seed", type=int, default=0, help="perturbation seed (default: 0)")
    p.add_argument("--attack-epsilon", type=float, default=1.0,
                   help="embedding attack radius, L2 per text (default: 1.0; 0 skips the attack)")
    add_json_option(p, "also write the results as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print."""
    from ..predictor import load
    from ..robustness import evaluate_robustness

    predictor = load(args.model_dir)
    data = model_inputs(args, predictor.meta).read(args.data, label_separator=args.label_separator,
                                                   encoding=args.encoding, delimiter=args.delimiter)
    result = evaluate_robustness(predictor, data.texts, data.require_labels(), seed=args.seed,
                                 attack_epsilon=args.attack_epsilon or None)
    print(f"{'condition':<22}{'accuracy':>10}")
    print(f"{'clean':<22}{result['clean_accuracy']:>10.4f}")
    for name, acc in result["perturbed"].items():
        print(f"{name:<22}{acc:>10.4f}")
    print(f"{'perturbed (mean)':<22}{result['perturbed_mean_accuracy']:>10.4f}")
    attack = result.get("embedding_attack_accuracy")
    if "attack_epsilon" in result:
        shown = "n/a (no gradients)" if attack is None else f"{attack:.4f}"
        print(f"{'embedding attack':<22}{shown:>10}  (epsilon {result['attack_epsilon']})")
    if args.json:
        write_json(args.json, result)
    return 0
