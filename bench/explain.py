"""How faithful and how fast are lmworks' explanations? ERASER AOPC against LIME, SHAP, occlusion and random.

For each dataset (Rotten Tomatoes, two classes; BBC News, five topics, each article cut to its
first words so that every method sees the same text) the script fine-tunes MiniLM (blend off, so
the transformer's own method is measured) and fits the TF-IDF model on the train split, samples
test texts, explains each text's predicted class with every method, and scores each method with
ERASER (DeYoung et al., 2020): comprehensiveness AOPC (probability lost when the top k % words are
removed; higher is better) and sufficiency AOPC (probability lost when only they are kept; lower
is better), k in {1, 5, 10, 20, 50} %. Time per text is wall-clock on this machine, texts explained
one call per method (LIME and SHAP per text, as their APIs go; lmworks batched as it runs).

Baselines, measured in the same run: LIME (``lime`` 0.2, ``bow=False`` on the same words,
--samples perturbations), SHAP's partition explainer with its text masker (--samples evaluations;
its tokens mapped onto the same words by character offsets), occlusion (leave one word out) and
random scores. lmworks' default for each model (Integrated Gradients over word presence; TF-IDF's exact
contributions) is also compared with SHAP and LIME text by text: the mean paired difference and its
standard error, so that a gap smaller than the sampling noise reads as one. A last table times
Integrated Gradients on texts of exactly 128 tokens.

    .venv/bin/python bench/explain.py [--texts 100] [--samples 500] [--results]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmworks import TextClassifier  # noqa: E402
from lmworks.datasets import load_bbc_news, load_rotten_tomatoes, split_frame  # noqa: E402
from lmworks.explain.explainer import attribute  # noqa: E402
from lmworks.explain.faithfulness import eraser_aopc  # noqa: E402
from lmworks.explain.gradients import integrated_gradients  # noqa: E402
from lmworks.explain.occlusion import occlusion  # noqa: E402
from lmworks.explain.words import Words, split_words  # noqa: E402

BBC_WORDS = 60
#: Where Integrated Gradients interpolates: the embedding block's output (default) or the token embeddings.
LAYER_NAMES = {"embeddings": "embedding layer", "tokens": "token embeddings"}
TFIDF_EXACT = "tfidf exact (coefficient x feature)"


def lime_scores(clf, words: list[Words], columns: list[int], samples: int, seed: int) -> list[np.ndarray]:
    from lime.lime_text import LimeTextExplainer

    explainer = LimeTextExplainer(split_expression=lambda s: split_words(s).words, bow=False, random_state=seed)
    out = []
    for w, column in zip(words, columns):
        found = explainer.explain_instance(w.text, clf.predict_proba, labels=(column,), num_features=len(w),
                                           num_samples=samples)
        scores = np.zeros(len(w))
        for feature, weight in found.as_map()[column]:
            scores[feature] = weight
        out.append(scores)
    return out


def shap_scores(clf, words: list[Words], columns: list[int], samples: int) -> list[np.ndarray]:
    import shap

    masker = shap.maskers.Text(r"\W+")
    explainer = shap.Explainer(lambda xs: clf.predict_proba([str(x) for x in xs]), masker, algorithm="partition")
    out = []
    for w, column in zip(words, columns):
        values = explainer([w.text], max_evals=samples, silent=True).values[0][:, column]
        spans = masker.tokenizer(w.text)["offset_mapping"]
        out.append(w.spread([tuple(s) for s in spans], values.tolist()))
    return out


def ig_label(baseline: str, layer: str, steps: int) -> str:
    if baseline == "absent":
        return f"integrated gradients (word presence, {steps} steps)"
    return f"integrated gradients ({LAYER_NAMES[layer]}, {baseline} baseline, {steps} steps)"


def paired(per: dict, method: str, other: str) -> dict[str, float]:
    """Mean and standard error of ``method - other`` over the same texts, per ERASER measure."""
    out = {}
    for measure in ("comprehensiveness", "sufficiency"):
        d = np.asarray(per[method][measure]) - np.asarray(per[other][measure])
        out[measure] = (round(float(d.mean()), 4), round(float(d.std(ddof=1) / np.sqrt(len(d))), 4))
    return out


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def methods_for(clf, kind: str, words, columns, args) -> dict:
    multi = False
    proba_fn = clf.predict_proba
    rng = np.random.default_rng(args.seed)
    found = {}
    if kind == "transformer":
        for layer, baseline, steps in (("embeddings", "absent", args.steps), ("embeddings", "absent", 2 * args.steps),
                                       ("embeddings", "pad", args.steps), ("embeddings", "mask", args.steps),
                                       ("tokens", "pad", args.steps)):
            found[ig_label(baseline, layer, steps)] = timed(lambda lay=layer, b=baseline, n=steps: [
                a.scores for a in integrated_gradients(clf.backend_, words, columns, steps=n, baseline=b, layer=lay)])
    else:
        found[TFIDF_EXACT] = timed(
            lambda: attribute(clf.backend_, words, columns, multi_label=multi).scores)
    found["occlusion (leave one word out)"] = timed(lambda: occlusion(proba_fn, words, columns, multi_label=multi))
    found[f"LIME ({args.samples} samples)"] = timed(lambda: lime_scores(clf, words, columns, args.samples, args.seed))
    found[f"SHAP partition ({args.samples} evals)"] = timed(lambda: shap_scores(clf, words, columns, args.samples))
    found["random"] = timed(lambda: [rng.random(len(w)) for w in words])
    return found


def load(name: str, seed: int):
    if name == "rt":
        frame = load_rotten_tomatoes()
    else:
        frame = load_bbc_news()
        frame = frame.assign(text=[" ".join(t.split()[:BBC_WORDS]) for t in frame["text"]])
    parts = split_frame(frame, seed=seed)
    return parts["train"], parts["dev"], parts["test"]


def train(kind: str, train_frame, dev_frame, args):
    if kind == "tfidf":
        return TextClassifier("tfidf").fit(train_frame["text"].tolist(), train_frame["label"].tolist(),
                                           progress=False)
    sample = train_frame.sample(n=min(args.train_rows, len(train_frame)), random_state=args.seed)
    clf = TextClassifier("minilm", epochs=args.epochs, max_length=128, blend="none", seed=args.seed, patience=0)
    return clf.fit(sample["text"].tolist(), sample["label"].tolist(), dev_frame["text"].tolist(),
                   dev_frame["label"].tolist(), progress=not args.quiet)


def speed_128(clf, test_texts: list[str], args) -> dict:
    """Seconds per text for IG on texts of exactly max_length=128 tokens."""
    tokenizer = clf.backend_.tokenizer
    long_texts, current = [], []
    for text in test_texts:
        current.append(text)
        if len(tokenizer(" ".join(current))["input_ids"]) >= 128:
            long_texts.append(" ".join(current))
            current = []
        if len(long_texts) == args.speed_texts:
            break
    words = [split_words(t) for t in long_texts]
    columns = [int(np.argmax(p)) for p in clf.predict_proba(long_texts)]
    attribute(clf.backend_, words[:2], columns[:2], multi_label=False, steps=args.steps)  # warm-up
    _, seconds = timed(lambda: attribute(clf.backend_, words, columns, multi_label=False, steps=args.steps))
    one = [timed(lambda i=i: attribute(clf.backend_, [words[i]], [columns[i]], multi_label=False,
                                        steps=args.steps))[1] for i in range(min(5, len(words)))]
    return {"texts": len(words), "batched_s_per_text": seconds / len(words),
            "single_s_per_text": statistics.median(one)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="rt,bbc")
    p.add_argument("--texts", type=int, default=100, help="test texts explained per dataset and model")
    p.add_argument("--samples", type=int, default=500, help="LIME perturbations / SHAP evaluations per text")
    p.add_argument("--steps", type=int, default=8, help="Integrated Gradients steps (lmworks' default)")
    p.add_argument("--train-rows", type=int, default=4000, help="MiniLM training rows (a sample of train)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--speed-texts", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--results", action="store_true", help="write docs/results/explain.json")
    args = p.parse_args()
    logging.getLogger("lmworks").setLevel(logging.ERROR)

    rows, values = [], {}
    for dataset in args.datasets.split(","):
        train_frame, dev_frame, test_frame = load(dataset, args.seed)
        sample = test_frame.sample(n=args.texts, random_state=args.seed)["text"].tolist()
        words = [split_words(t) for t in sample]
        for kind in ("transformer", "tfidf"):
            clf, train_s = timed(lambda k=kind, t=train_frame, d=dev_frame: train(k, t, d, args))
            accuracy = clf.score(test_frame["text"].tolist(), test_frame["label"].tolist())
            columns = [int(np.argmax(p)) for p in clf.predict_proba(sample)]
            print(f"\n{dataset} / {kind}: trained in {train_s:.0f} s, test accuracy {accuracy:.4f} "
                  f"on {len(test_frame)} texts; explaining {len(sample)} texts", flush=True)
            per = {}
            for method, (scores, seconds) in methods_for(clf, kind, words, columns, args).items():
                faith = eraser_aopc(clf.predict_proba, words, scores, columns)
                per[method] = faith["per_text"]
                row = [dataset, "MiniLM" if kind == "transformer" else "TF-IDF", method,
                       round(faith["comprehensiveness"], 4), round(faith["sufficiency"], 4),
                       round(seconds / len(words), 4)]
                rows.append(row)
                print(f"  {method:<48} comp {row[3]:.3f}  suff {row[4]:.3f}  {row[5]:.3f} s/text", flush=True)
            values[f"{dataset}_{kind}_accuracy"] = round(accuracy, 4)
            default = ig_label("absent", "embeddings", args.steps) if kind == "transformer" else TFIDF_EXACT
            for other in [m for m in per if m.split()[0] in ("LIME", "SHAP")]:
                diff = paired(per, default, other)
                values[f"{dataset}_{kind}_default_minus_{other.split()[0].lower()}"] = diff
                print(f"  default - {other.split()[0]}: comprehensiveness {diff['comprehensiveness'][0]:+.4f} ± "
                      f"{diff['comprehensiveness'][1]:.4f}, sufficiency {diff['sufficiency'][0]:+.4f} ± "
                      f"{diff['sufficiency'][1]:.4f} (mean ± s.e. over texts)", flush=True)
            if kind == "transformer":
                speed = speed_128(clf, test_frame["text"].tolist(), args)
                values[f"{dataset}_ig_128_tokens_s_per_text"] = round(speed["batched_s_per_text"], 3)
                values[f"{dataset}_ig_128_tokens_single_s"] = round(speed["single_s_per_text"], 3)
                print(f"  IG on {speed['texts']} texts of 128 tokens: {speed['batched_s_per_text']:.3f} s/text "
                      f"batched, {speed['single_s_per_text']:.3f} s one at a time", flush=True)

    columns = ["dataset", "model", "method", "comprehensiveness AOPC (higher better)",
               "sufficiency AOPC (lower better)", "s per text"]
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{x:.3f}" if isinstance(x, float) else str(x) for x in row) + " |")
    if args.results:
        from results import record

        ig = [r for r in rows if r[0] == "rt" and r[2] == ig_label("absent", "embeddings", args.steps)]
        best_other = max((r for r in rows if r[0] == "rt" and r[1] == "MiniLM" and r[2].split()[0] in ("LIME", "SHAP")),
                         key=lambda r: r[3], default=None)
        record("explain", title="Explanations: faithfulness (ERASER AOPC) and time per text",
               what=f"{args.texts} test texts per dataset; MiniLM fine-tuned {args.epochs} epoch on "
                    f"{args.train_rows} rows (blend off), TF-IDF on the full train split; BBC articles cut to "
                    f"their first {BBC_WORDS} words; each text's predicted class explained",
               baseline="LIME, SHAP partition, occlusion and random scores, on the same texts and models",
               columns=columns, rows=rows, values=values, packages=("captum", "lime", "shap"),
               headline={"task": "Explanations, Rotten Tomatoes (MiniLM): ERASER comprehensiveness, s/text",
                         "lmworks": f"IG {ig[0][3]:.3f}, {ig[0][5]:.2f} s" if ig else "-",
                         "baseline": f"{best_other[2].split()[0]} {best_other[3]:.3f}, {best_other[5]:.2f} s"
                         if best_other else "-"})


if __name__ == "__main__":
    main()
