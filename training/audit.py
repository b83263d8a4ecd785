"""python -m training.audit — faces whose FER2013 label is probably wrong (FER+ votes and/or a model).

  python -m training.audit --data ../shared/data/fer2013 --json
  python -m training.audit --data ../shared/data/fer2013 --relabel-out relabel.csv --proba-out proba.csv
  python -m training.audit --data fer2013.csv --rules model --proba oof.csv --min-confidence 0.8 --json

Rules (see fercore.data.audit): ``ferplus`` — the FER+ majority among the 7 emotions differs from the label;
``model`` — confident learning on the model's probabilities (the shipped model by default; out-of-fold
probabilities with --proba are better, since a model has partly memorised its own training faces).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import NoReturn

from fercore.data.ferplus import VOTES_FILE, require_votes


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one stderr line (exit 2), like every other bad input here."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _rules(text: str) -> list[str]:
    from fercore.data.audit import RULES

    rules = [r.strip() for r in text.split(",") if r.strip()]
    if not rules or any(r not in RULES for r in rules):
        raise argparse.ArgumentTypeError(f"rules are a comma-separated subset of {','.join(RULES)}, got {text!r}")
    return rules


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    p = _Parser(
        prog="python -m training.audit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="FER2013 CSV, Kaggle folder layout or class-folder set")
    p.add_argument("--split", default="train", help="split to audit (train, test, private, all); default: train")
    p.add_argument("--rules", type=_rules, default=["ferplus", "model"], help="ferplus, model or ferplus,model")
    p.add_argument("--model", help="model file or tier for the model rule; default: the shipped model")
    p.add_argument("--proba", help="probabilities instead of a model: .npy (n, 7) or CSV (row/file + 7 emotions)")
    p.add_argument("--ferplus", help=f"FER+ vote file; default: {VOTES_FILE} in or beside --data")
    p.add_argument("--min-share", type=_fraction, default=0.5, help="FER+ majority: more than this vote share")
    p.add_argument("--min-confidence", type=_fraction, default=0.0, help="drop accusations weaker than this")
    p.add_argument("--limit", type=_positive, help="audit about this many faces (a stratified sample)")
    p.add_argument("--proba-out", help="also save the model's probabilities (CSV) for a later --proba")
    p.add_argument("--relabel-out", help="write row,old_label,new_label for every suspect to this CSV")
    p.add_argument("--top", type=_positive, default=10, help="class pairs shown without --json")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    try:
        result = _run(args)
        seconds = round(time.perf_counter() - start, 1)
        written = None
        if args.relabel_out:
            from fercore.data.audit import write_relabel

            written = write_relabel(result.suspects, args.relabel_out)
    except (ValueError, OSError) as exc:  # DataError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {"split": args.split, **result.to_dict(), "seconds": seconds, "relabel_rows": written}
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary, args.top)
    return 0


def _run(args: argparse.Namespace):  # -> fercore.data.audit.AuditResult (imports stay lazy for --help)
    from fercore.data.audit import audit, load_proba, save_proba
    from fercore.data.dataset import stratified_subset
    from fercore.data.loader import align_votes, load_dataset, load_ferplus_votes

    ds = load_dataset(args.data).split(args.split)
    ds = stratified_subset(ds, limit=args.limit) if args.limit else ds
    votes = proba = None
    if "ferplus" in args.rules:
        votes = align_votes(
            ds, *load_ferplus_votes(args.ferplus or require_votes(args.data, "give --ferplus FILE or --rules model"))
        )
    if "model" in args.rules:
        if args.proba:
            proba = load_proba(args.proba, ds)
        else:
            from fercore.evaluation.evaluate import predict_proba

            proba = predict_proba(args.model, ds.images)
        if args.proba_out:
            save_proba(args.proba_out, ds, proba)
    return audit(ds, proba=proba, votes=votes, min_share=args.min_share, min_confidence=args.min_confidence)


def _print_summary(summary: dict, top: int) -> None:
    print(f"{len(summary['suspects'])} suspects among {summary['n']} faces ({summary['seconds']} s)")
    print("  by rule: " + ", ".join(f"{k} {v}" for k, v in summary["by_rule"].items()))
    if "ferplus" in summary["rules"]:
        print(f"  no clear FER+ majority (not judged by FER+): {summary['excluded_no_majority']}")
    for pair, count in list(summary["by_pair"].items())[:top]:
        print(f"  {pair:<20} {count}")
    if summary["relabel_rows"] is not None:
        print(f"  relabel file: {summary['relabel_rows']} rows")


if __name__ == "__main__":
    sys.exit(main())
