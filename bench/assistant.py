"""Benchmark: the FAQ assistant on three knowledge bases, before and after contrastive tuning.

Knowledge bases: the hand-written banking FAQ (examples/assistant) and the
chatterbot-corpus English and Chinese folders. For each, the hand-off threshold and
margin are calibrated on the *dev* queries, tuning is checked on them, and every
reported number comes from the *test* queries, which nothing is fitted on.

    .venv/bin/python bench/assistant.py --json runs/bench_assistant.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples" / "assistant"


def chatterbot_dir(language: str) -> Path:
    import chatterbot_corpus

    return Path(chatterbot_corpus.__file__).parent / "data" / language


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seeds", default="42,43,44", help="tuning seeds (mean reported)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from lmworks.assistant import Assistant, AssistantConfig, read_faq, read_queries
    from lmworks.assistant.tune import TuneConfig, tune

    sets = {
        "banking (en, hand-written)": (EX / "banking_faq.csv", "banking"),
        "chatterbot English": (chatterbot_dir("english"), "chatterbot_en"),
        "chatterbot Chinese": (chatterbot_dir("chinese"), "chatterbot_zh"),
    }
    rows = []
    for name, (faq, prefix) in sets.items():
        entries, conflicts = read_faq(faq)
        dev = read_queries(EX / f"{prefix}_queries_dev.csv")
        test = read_queries(EX / f"{prefix}_queries_test.csv")
        started = time.perf_counter()
        base = Assistant.build(entries, AssistantConfig(), dev)
        build_s = time.perf_counter() - started
        before = base.evaluate(test)
        loo = Assistant.build(entries, AssistantConfig(), None, encoder=base.encoder).evaluate(test)
        rows.append({"set": name, "stage": "MiniLM as shipped, default build (no queries: leave-one-out)",
                     "entries": len(entries), **loo})
        rows.append({"set": name, "stage": "MiniLM as shipped, calibrated on dev queries", "entries": len(entries),
                     "conflicts": len(conflicts), "build_s": build_s, **before})
        print(f"{name}: {len(entries)} entries, before tuning top-1 {before['top1_accuracy']:.3f}", flush=True)
        keys = ("top1_accuracy", "top3_accuracy", "handoff_recall_out_of_scope", "answered_fraction_of_answerable",
                "accuracy_when_answered")
        dev_before = base.evaluate(dev)
        raw, guarded, kept = [], [], []
        for seed in [int(s) for s in args.seeds.split(",")]:
            assistant = Assistant.build(entries, AssistantConfig(), dev)
            tune(assistant, TuneConfig(epochs=args.epochs, seed=seed), None, progress=False)
            assistant.calibrate(dev)  # hand-off rule and weights re-chosen on dev for the tuned encoder
            dev_after = assistant.evaluate(dev)
            m = assistant.evaluate(test)
            improved = (dev_after["top1_accuracy"], dev_after["top3_accuracy"]) > \
                (dev_before["top1_accuracy"], dev_before["top3_accuracy"])
            raw.append(m)
            guarded.append(m if improved else before)
            kept.append(improved)
            print(f"  seed {seed}: dev top-1 {dev_before['top1_accuracy']:.3f} -> {dev_after['top1_accuracy']:.3f}, "
                  f"kept={improved}; test top-1 {m['top1_accuracy']:.3f}", flush=True)
        for stage, ms in ((f"tuned, {len(raw)} seeds (mean)", raw),
                          ("tuned, kept only if dev improves (`tune --dev`)", guarded)):
            mean = {k: sum(m[k] for m in ms) / len(ms) for k in keys}
            rows.append({"set": name, "stage": stage, "entries": len(entries), "kept": kept,
                         "answerable": before["answerable"], "out_of_scope": before["out_of_scope"], **mean})

    print()
    print("| knowledge base | encoder | test queries (answerable / out of scope) | top-1 | top-3 | "
          "out-of-scope handed off | answerable answered | accuracy when answered |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['stage']} | {r['answerable']} / {r['out_of_scope']} | "
              f"{100 * r['top1_accuracy']:.1f}% | {100 * r['top3_accuracy']:.1f}% | "
              f"{100 * r['handoff_recall_out_of_scope']:.1f}% | {100 * r['answered_fraction_of_answerable']:.1f}% | "
              f"{100 * r['accuracy_when_answered']:.1f}% |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
