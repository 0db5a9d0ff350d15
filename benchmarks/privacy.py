"""Personal-data detector benchmark on the labelled prompts of tests/data/pii_prompts.jsonl.

A finding matches a label when the types are equal and the spans overlap. Per type it reports
recall (labels found), precision (findings that match a label) and false positives; for prompts
without personal data, the share that got any finding at all. Also detector load time and
per-prompt scan latency. Then the scaling: the time of one scan for 8k, 16k, 32k and 64k characters
of a worst case for the name rules ("Marie, " repeated) and of a realistic mixed text (the labelled
prompts one after another), for the whole detector and for its rules alone (no spaCy); linear code
keeps the time per 1,000 characters flat.

Forms of writing (:mod:`benchmarks.privacy_forms`): recall per category and per form (no-break spaces,
dashes, dots, slashes, tabs, fullwidth digits...) on valid identifiers, e-mail addresses and names, and
the false-positive rate on clean French administrative sentences (structured types, and PERSON or
LOCATION apart, and the sensitive categories apart).

Sensitive data about a person (:mod:`benchmarks.privacy_sensitive`): recall and false positives per
SENSITIVE category on labelled French and English sentences with and without such data, and on a second set
written after the rules and never used to change them (the figure to expect on new text).

    python benchmarks/privacy.py [--data PATH] [--clean PATH] [--sensitive PATH] [--out benchmarks/results/privacy.json]
                                 [--model NAME] [--no-scaling]
    kit bench privacy [the same options]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import privacy_forms, privacy_sensitive  # noqa: E402
from kit.rules.privacy import PII_TYPES, Detector, Finding  # noqa: E402
from kit.rules.privacy import recognizers as rec  # noqa: E402
from kit.rules.privacy.sensitive import find_sensitive  # noqa: E402

DEFAULT_DATA = ROOT / "tests" / "data" / "pii_prompts.jsonl"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "privacy.json"


def evaluate_sensitive(path: str | Path = privacy_sensitive.SENSITIVE_DATA, detector: Detector | None = None,
                       model: str | None = None) -> dict[str, Any]:
    """Recall and false positives per SENSITIVE category (:mod:`benchmarks.privacy_sensitive`)."""
    detector = detector or Detector(model)
    return privacy_sensitive.evaluate_sensitive(detector.scan_many, path)


def load_prompts(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        spans: list[tuple[str, int, int]] = []
        for ent in row["entities"]:
            start = row["text"].find(ent["text"])
            while start >= 0 and any(s == start for _, s, _ in spans):
                start = row["text"].find(ent["text"], start + 1)
            if start < 0:
                raise ValueError(f"{path}:{number}: {ent['text']!r} is not in the text")
            spans.append((ent["type"], start, start + len(ent["text"])))
        row["spans"] = spans
        rows.append(row)
    return rows


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def evaluate(path: str | Path = DEFAULT_DATA, detector: Detector | None = None,
             model: str | None = None) -> dict[str, Any]:
    """Scan every prompt of ``path`` and compute the figures (see the module docstring)."""
    rows = load_prompts(path)
    load_s = 0.0
    if detector is None:
        started = time.perf_counter()
        detector = Detector(model)
        load_s = time.perf_counter() - started
    detector.scan("Préchauffage du détecteur.")

    per_type = {t: {"labels": 0, "found": 0, "findings": 0, "correct": 0} for t in PII_TYPES}
    clean = clean_flagged = 0
    latencies: list[float] = []
    misses: list[dict[str, Any]] = []
    false_findings: list[dict[str, Any]] = []
    for row in rows:
        started = time.perf_counter()
        findings: list[Finding] = detector.scan(row["text"])
        latencies.append((time.perf_counter() - started) * 1000)
        labels = row["spans"]
        for kind, start, end in labels:
            per_type[kind]["labels"] += 1
            if any(f.type == kind and _overlaps((f.start, f.end), (start, end)) for f in findings):
                per_type[kind]["found"] += 1
            else:
                misses.append({"type": kind, "text": row["text"][start:end], "prompt": row["text"]})
        for f in findings:
            per_type[f.type]["findings"] += 1
            if any(k == f.type and _overlaps((f.start, f.end), (s, e)) for k, s, e in labels):
                per_type[f.type]["correct"] += 1
            else:
                false_findings.append({"type": f.type, "text": f.text, "prompt": row["text"],
                                       "clean": not labels})
        if not labels:
            clean += 1
            clean_flagged += bool(findings)

    # The same prompts through the bare spaCy NER, to show what the context rules remove.
    raw = {"clean_with_per": 0, "clean_with_per_or_loc": 0, "per_found": 0, "per_labels": 0}
    for row, doc in zip(rows, detector.nlp.pipe(r["text"] for r in rows), strict=True):
        labels = {e.label_ for e in doc.ents}
        if not row["spans"]:
            raw["clean_with_per"] += "PER" in labels
            raw["clean_with_per_or_loc"] += bool(labels & {"PER", "LOC"})
        for kind, start, end in row["spans"]:
            if kind == "PERSON":
                raw["per_labels"] += 1
                raw["per_found"] += any(e.label_ == "PER" and _overlaps((e.start_char, e.end_char),
                                                                         (start, end)) for e in doc.ents)

    types: dict[str, Any] = {}
    for kind, c in per_type.items():
        types[kind] = {
            "labels": c["labels"], "findings": c["findings"],
            "recall": round(c["found"] / c["labels"], 4) if c["labels"] else None,
            "precision": round(c["correct"] / c["findings"], 4) if c["findings"] else None,
            "false_positives": c["findings"] - c["correct"],
        }
    return {
        "data": privacy_forms.shown(path), "model": detector.model_name, "prompts": len(rows),
        "types": types,
        "clean": {"prompts": clean, "flagged": clean_flagged,
                  "false_positive_rate": round(clean_flagged / clean, 4) if clean else 0.0},
        "timing": {"load_s": round(load_s, 3),
                   "scan_ms_mean": round(statistics.fmean(latencies), 2),
                   "scan_ms_p50": round(_percentile(latencies, 0.5), 2),
                   "scan_ms_p95": round(_percentile(latencies, 0.95), 2),
                   "scan_ms_max": round(max(latencies), 2)},
        "raw_spacy_ner": {
            "clean_prompts_with_PER": raw["clean_with_per"],
            "clean_prompts_with_PER_or_LOC": raw["clean_with_per_or_loc"],
            "PER_recall": round(raw["per_found"] / raw["per_labels"], 4) if raw["per_labels"] else None,
        },
        "misses": misses, "false_findings": false_findings,
    }


SCALING_SIZES = (8_000, 16_000, 32_000, 64_000)


def repeated(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def rules_only(text: str) -> None:
    """Everything the detector runs on a text besides spaCy."""
    names = rec.find_names(text, None)
    rec.resolve(rec.find_structured(text) + names + rec.find_addresses(text)
                + find_sensitive(text, names, rec.FIRST_NAMES))


def best_of(runs: int, scan: Any, text: str) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        scan(text)
        times.append(time.perf_counter() - started)
    return min(times)


def scaling(detector: Detector, path: str | Path = DEFAULT_DATA,
            sizes: tuple[int, ...] = SCALING_SIZES) -> dict[str, Any]:
    """Scan time per input size (best of 2 for the detector, of 3 for the rules alone)."""
    mixed = "\n".join(row["text"] for row in load_prompts(path))
    out: dict[str, Any] = {"sizes": list(sizes)}
    for name, unit in (("names", "Marie, "), ("mixed", mixed)):
        for part, scan, runs in (("detector", detector.scan, 2), ("rules", rules_only, 3)):
            seconds = [best_of(runs, scan, repeated(unit, n)) for n in sizes]
            out[f"{name}_{part}"] = {
                "seconds": [round(t, 3) for t in seconds],
                "ms_per_1k_chars": [round(1e6 * t / n, 2) for t, n in zip(seconds, sizes, strict=True)],
                "ratio_to_smallest": [round(t / seconds[0], 2) for t in seconds],
            }
    return out


def _print_report(result: dict[str, Any]) -> None:
    def pct(value: float | None) -> str:
        return "   -" if value is None else f"{value * 100:5.1f}%"

    print(f"model {result['model']}, {result['prompts']} prompts ({result['data']})")
    print(f"{'type':<20}{'labels':>7}{'found':>7}{'recall':>9}{'precision':>11}{'false+':>8}")
    for kind, t in result["types"].items():
        print(f"{kind:<20}{t['labels']:>7}{t['findings']:>7}{pct(t['recall']):>9}"
              f"{pct(t['precision']):>11}{t['false_positives']:>8}")
    c = result["clean"]
    print(f"clean prompts with any finding: {c['flagged']}/{c['prompts']} "
          f"({c['false_positive_rate'] * 100:.1f}%)")
    r = result["raw_spacy_ner"]
    print(f"bare spaCy NER for comparison: clean prompts with PER {r['clean_prompts_with_PER']}, "
          f"with PER or LOC {r['clean_prompts_with_PER_or_LOC']}; PER recall {pct(r['PER_recall'])}")
    t = result["timing"]
    print(f"detector load {t['load_s']:.2f} s; scan per prompt: mean {t['scan_ms_mean']:.1f} ms, "
          f"p50 {t['scan_ms_p50']:.1f} ms, p95 {t['scan_ms_p95']:.1f} ms, max {t['scan_ms_max']:.1f} ms")
    for miss in result["misses"]:
        print(f"  missed {miss['type']}: {miss['text']!r}")
    for wrong in result["false_findings"]:
        tag = "clean prompt" if wrong["clean"] else "unlabelled"
        print(f"  false {wrong['type']} ({tag}): {wrong['text']!r}")
    if "forms" in result:
        _print_forms(result["forms"])
    if "sensitive" in result:
        privacy_sensitive.print_sensitive(result["sensitive"])
    if "sensitive_unseen" in result:
        privacy_sensitive.print_sensitive(result["sensitive_unseen"])
    if "sensitive_fresh" in result:
        privacy_sensitive.print_sensitive(result["sensitive_fresh"])
    if "scaling" in result:
        sizes = result["scaling"]["sizes"]
        print("scaling: seconds per scan (time per 1,000 characters; a flat figure is linear)")
        print(f"{'input':<18}" + "".join(f"{n // 1000:>6}k" + " " * 9 for n in sizes))
        for name, row in result["scaling"].items():
            if name != "sizes":
                print(f"{name:<18}" + "".join(f"{t:7.2f}s ({m:5.1f}ms)" for t, m in
                                             zip(row["seconds"], row["ms_per_1k_chars"], strict=True)))


def _print_forms(forms: dict[str, Any]) -> None:
    recall = forms["recall"]
    names = sorted({form for by_form in recall.values() for form in by_form})
    print(f"forms of writing: recall on {forms['variants']} variants (exact span for identifiers)")
    print(f"{'form':<22}" + "".join(f"{cat[:13]:>14}" for cat in recall))
    for form in names:
        print(f"{form:<22}" + "".join(f"{by_form[form]:>14.2f}" if form in by_form else f"{'-':>14}"
                                      for by_form in recall.values()))
    print(f"{'all forms':<22}" + "".join(f"{forms['recall_by_category'][cat]:>14.2f}" for cat in recall))
    for miss in forms["misses"]:
        print(f"  missed {miss['category']} ({miss['form']}): {miss['text']!r} -> {miss['found']}")
    c = forms["clean"]
    print(f"clean sentences ({c['sentences']}, {c['data']}): with a structured finding {c['with_structured_finding']} "
          f"({c['structured_false_positive_rate'] * 100:.1f}%), with PERSON or LOCATION {c['with_person_or_location']} "
          f"({c['person_location_false_positive_rate'] * 100:.1f}%), with a SENSITIVE finding "
          f"{c['with_sensitive_finding']} ({c['sensitive_false_positive_rate'] * 100:.1f}%)")
    for row in c["structured_findings"] + c["person_location_findings"] + c["sensitive_findings"]:
        print(f"  false {row['findings']}: {row['sentence']!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="labelled prompts (JSONL)")
    parser.add_argument("--clean", default=str(privacy_forms.CLEAN_DATA),
                        help="clean sentences, one a line, for the false-positive rate")
    parser.add_argument("--sensitive", default=str(privacy_sensitive.SENSITIVE_DATA),
                        help="labelled sentences with and without sensitive data about a person (JSONL)")
    parser.add_argument("--sensitive-unseen", default=str(privacy_sensitive.UNSEEN_DATA),
                        help="the same, written after the rules and never used to change them (JSONL)")
    parser.add_argument("--sensitive-fresh", default=str(privacy_sensitive.FRESH_DATA),
                        help="the same, written before the rules were rebuilt on lexicons per domain (JSONL)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where to write the JSON result")
    parser.add_argument("--model", default=None, help="spaCy pipeline (default: best installed)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling measurement (minutes)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    detector = Detector(args.model)
    load_s = time.perf_counter() - started
    result = evaluate(args.data, detector=detector)
    result["timing"]["load_s"] = round(load_s, 3)
    result["forms"] = privacy_forms.evaluate_forms(detector.scan_many, args.clean)
    result["sensitive"] = privacy_sensitive.evaluate_sensitive(detector.scan_many, args.sensitive)
    result["sensitive_unseen"] = privacy_sensitive.evaluate_sensitive(detector.scan_many, args.sensitive_unseen)
    result["sensitive_fresh"] = privacy_sensitive.evaluate_sensitive(detector.scan_many, args.sensitive_fresh)
    if not args.no_scaling:
        result["scaling"] = scaling(detector, args.data)
    _print_report(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
