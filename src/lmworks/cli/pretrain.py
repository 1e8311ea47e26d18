"""``lmworks pretrain``: domain-adaptive masked-LM pretraining on unlabelled text."""

from __future__ import annotations

import argparse
import logging

from .common import (
    STDOUT,
    ListOption,
    add_json_option,
    one_text_column,
    positive_int,
    write_json,
)

LOGGER = logging.getLogger("lmworks")


def register(sub) -> None:
    """Add the subcommand."""
    from ..pretrain import PretrainConfig

    d = PretrainConfig()
    p = sub.add_parser(
        "pretrain", help="continue masked-LM training of the encoder on your unlabelled text",
        description="Continue the encoder's masked-language-model training on UNLABELLED_TEXT (a .txt file with "
        "one text per line, or CSV/JSONL/Parquet with a text column) and write an encoder directory that "
        "'lmworks train --model DIR' accepts.",
    )
    p.add_argument("data", metavar="UNLABELLED_TEXT",
                   help=".txt (one text per line), or .csv/.jsonl/.parquet with a text column")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="encoder directory to write")
    p.add_argument("--text-column", action=ListOption, metavar="NAME",
                   help="column holding the text in a data file (default: text)")
    p.add_argument("--model", default=d.model, help="encoder to start from: minilm, mpnet or a directory")
    p.add_argument("--epochs", type=float, default=d.epochs, help="passes over the data")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="texts per batch")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--max-length", type=positive_int, default=d.max_length,
                   help="max tokens per text; longer ones are truncated")
    p.add_argument("--mlm-probability", type=float, default=d.mlm_probability,
                   help="share of tokens masked for the model to predict")
    p.add_argument("--whole-word-masking", action="store_true", help="mask whole words, not single word pieces")
    p.add_argument("--head-warmup", type=float, default=d.head_warmup,
                   help="share of steps that train only the new MLM head, encoder frozen")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: the CPUs this process may use)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of the input file")
    p.add_argument("--delimiter", help="CSV field delimiter (default: detected from the header line)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_json_option(p, "write the run summary (losses, steps, seconds) as JSON (default: -)")
    p.set_defaults(run=run, json=STDOUT)


def run(args: argparse.Namespace) -> int:
    """Pretrain and write the encoder."""
    from ..data import read_texts
    from ..pretrain import PretrainConfig, pretrain

    texts = read_texts(args.data, text_column=one_text_column(args), encoding=args.encoding, delimiter=args.delimiter)
    config = PretrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            max_length=args.max_length, mlm_probability=args.mlm_probability,
                            whole_word_masking=args.whole_word_masking, head_warmup=args.head_warmup, seed=args.seed,
                            num_threads=args.threads)
    LOGGER.info("pretraining %s on %d texts from %s", args.model, len(texts), args.data)
    info = pretrain(texts, args.output, config, progress=not args.quiet)
    LOGGER.info("MLM loss %.3f -> %.3f over %d steps in %.0f s; encoder written to %s (use: lmworks train "
                "--model %s)", info["first_loss"], info["last_loss"], info["steps"], info["seconds"], args.output,
                args.output)
    write_json(args.json, {k: v for k, v in info.items() if k != "config"})
    return 0
