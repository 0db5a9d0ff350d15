"""Personal-data detection, local and offline: structured identifiers with checksums (identifiers),
names and places (recognizers, with spaCy's French pipeline, loaded by nlp), sensitive data about a person: health,
religion, opinions, union membership, sex life, origin, convictions (sensitive), and the detector that
combines them and applies the policy (allow, warn, mask, block) per category; every rule reads the
text in a plain form (forms: NFKC, ASCII digits, plain spaces and dashes, no invisible characters), and
findings are reported on the text as typed.

Imports kit.errors only. The detector loads spaCy lazily, on first use.
"""

from kit.rules.privacy.detector import (
    PII_TYPES,
    Detector,
    Finding,
    PolicyOutcome,
    apply_policy,
    get_detector,
    loaded_detector,
    mask,
    scan_report,
)

__all__ = ["PII_TYPES", "Detector", "Finding", "PolicyOutcome", "apply_policy", "get_detector", "loaded_detector",
           "mask", "scan_report"]
