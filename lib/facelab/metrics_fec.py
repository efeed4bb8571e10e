"""FEC-Bench caption metrics: AutoDQ, TEM, CIDEr-D and ROUGE-L, with pluggable event tools.

FEC-Bench (Zhao et al., "Facial Dynamics in Video: Instruction Tuning for Improved Facial
Expression Perception and Contextual Awareness", arXiv 2501.07978) scores a caption of a face
video against a reference caption with CIDEr, ROUGE-L, AutoDQ and TEM.

**AutoDQ** follows Tarsier's evaluation (``evaluate_dream_gpt.py`` of ``bytedance/tarsier``):

* an *extractor* turns a caption into at most ``max_events`` (10) atomic dynamic events;
* a *judge* labels each event ``entailment``, ``neutral`` or ``contradiction`` against a whole
  caption, in both directions: recall = reference events entailed by the prediction / their
  number; precision = predicted events entailed by the reference / their number. Only
  entailment counts (neutral and contradiction both score 0);
* an empty event list scores 1.0 (nothing to recall / nothing claimed);
* AutoDQ = F1 of the *mean* precision and the *mean* recall over samples;
* a sample whose extraction or judging fails (an exception, a malformed answer) is counted in
  ``n_failed`` and left out of the means, as Tarsier keeps such samples in ``invalid_results``.

**TEM** (temporal event matching) adds order. The exact published formula is NOT public (the
official repository ``Jiaxing-star/FacialDynamic`` holds no metric code), so TEM here is a
RECONSTRUCTION from the paper's description ("LCS over temporally ordered, matched events"):

1. candidates are the predicted events entailed by the reference caption and the reference
   events entailed by the predicted caption (the events AutoDQ counts);
2. a candidate pair (predicted i, reference j) is compatible when the judge says the single
   reference event j entails predicted event i;
3. a one-to-one matching of compatible pairs with the most pairs (Hungarian; among matchings
   of that size, the one whose relative positions agree best);
4. L = LCS of the matched reference indices, read in predicted order, against the reference
   order (i.e. their longest increasing run);
5. TEM-R = L / |reference events|, TEM-P = L / |predicted events| (1.0 for an empty list, as
   AutoDQ), TEM = F1 of mean TEM-P and mean TEM-R.

Since L <= matched <= entailed events, TEM-P <= precision and TEM-R <= recall per sample, so
TEM <= AutoDQ by construction; a prediction with the right events in a different order keeps
its AutoDQ and loses TEM.

**CIDEr-D** is the COCO caption evaluation's "CIDEr" (Vedantam et al. 2015, the ``-D`` variant):
n-grams n = 1..4; TF-IDF weights with document frequencies from the *reference* captions of
the evaluated corpus (idf = log(#samples) - log(max(1, df))); per n the cosine with clipped
hypothesis weights, min(w_h, w_r) * w_r; a Gaussian length penalty exp(-delta^2 / (2 * 6^2))
where, as in the COCO code, the "length" is the number of *bigrams*; mean over n and over
references, times 10. A corpus of one sample therefore scores 0 (every idf is log 1 = 0), and
a prediction identical to its single reference scores 10 when each n-gram order has a term
that is rare in the corpus. **ROUGE-L** is the COCO scorer's: for each reference the LCS
length over tokens, precision and recall maximised separately over references, F-measure
with beta = 1.2. Tokens: lower-cased words (a stand-in for the PTB tokenizer: punctuation
dropped, "n't" split off).

**Event tools.** An extractor is any ``callable(caption: str) -> list[str]``; a judge any
``callable(events: list[str], description: str) -> list[str]`` of labels. Registered names
(:data:`EXTRACTORS`, :data:`JUDGES`):

* ``"rules"`` - :class:`RuleExtractor` / :class:`RuleJudge`, deterministic and offline, over a
  small grammar of facial events (subject, action, face region, direction, intensity,
  negation, time phrase; synonyms mapped to canonical forms). The judge: same region and same
  action / direction -> entailment; same region with an opposite action or direction (raise /
  lower, open / close, widen / narrow, smile / frown, tighten / relax, up / down, left /
  right) or a negation mismatch -> contradiction; anything else (another region, an unrelated
  action, an unparsed event) -> neutral. Intensity, counts and time phrases are parsed but not
  judged (order is TEM's job).
* ``"llm"`` - :class:`LLMExtractor` / :class:`LLMJudge`, prompting a local ``transformers``
  causal LM; they load only from a local directory and never download.

:func:`fec_caption` writes FEC-Bench-style captions ("<appearance>. At the beginning, ... As
the video progresses, ... In the middle, ... Towards the end, ...") that the rule extractor
reads back.
"""
from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = [
    "LABELS", "TIME_PHRASES", "EXTRACTORS", "JUDGES", "EventExtractor", "EventJudge", "FacialEvent",
    "RuleExtractor", "RuleJudge", "LocalLM", "LLMExtractor", "LLMJudge", "make_extractor", "make_judge",
    "parse_caption", "parse_event", "relation", "render_event", "fec_caption", "tokenize", "lcs_length",
    "cider_d", "rouge_l", "SampleEvents", "EventScores", "event_scores", "autodq", "tem", "fec_bench_scores",
]

ENTAILMENT, NEUTRAL, CONTRADICTION = "entailment", "neutral", "contradiction"
LABELS = (ENTAILMENT, NEUTRAL, CONTRADICTION)

# --------------------------------------------------------------------------------------------
# Text utilities, LCS, CIDEr-D, ROUGE-L
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|'[a-z]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; punctuation dropped, "n't" split off ("doesn't" -> does n't)."""
    if not isinstance(text, str):
        raise TypeError(f"expected a caption string, got {type(text).__name__}")
    t = re.sub(r"n't\b", " n't", text.lower().replace("\u2019", "'"))
    return _WORD.findall(t)


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of two sequences (O(len(a) * len(b)))."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _as_corpus(references, predictions) -> tuple[list[list[str]], list[str]]:
    """Check inputs: one prediction string and one reference string or list of strings per sample."""
    refs, preds = list(references), list(predictions)
    if len(refs) != len(preds):
        raise ValueError(f"{len(refs)} references but {len(preds)} predictions: expected one per sample")
    out = []
    for i, r in enumerate(refs):
        rs = [r] if isinstance(r, str) else list(r)
        if not rs or not all(isinstance(x, str) for x in rs):
            raise ValueError(f"sample {i}: references must be a string or a non-empty list of strings, got {r!r}")
        out.append(rs)
    for i, p in enumerate(preds):
        if not isinstance(p, str):
            raise ValueError(f"sample {i}: prediction must be a string, got {type(p).__name__}")
    return out, preds


def _ngram_counts(tokens: list[str], n: int) -> Counter:
    c = Counter()
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            c[tuple(tokens[i:i + k])] += 1
    return c


def cider_d(references, predictions, *, n: int = 4, sigma: float = 6.0,
            tokenizer: Callable[[str], list[str]] = tokenize) -> tuple[float, np.ndarray]:
    """CIDEr-D of ``predictions`` (one string per sample) against ``references`` (a string or a
    list of strings per sample), as the COCO caption evaluation computes it.

    Returns ``(corpus score, per-sample scores)``; the corpus score is the mean. Document
    frequencies come from the references of this corpus, so scores depend on the whole set.
    """
    refs, preds = _as_corpus(references, predictions)
    if not refs:
        raise ValueError("cider_d needs at least one sample")
    if n < 1 or sigma <= 0:
        raise ValueError(f"need n >= 1 and sigma > 0, got n={n}, sigma={sigma}")
    crefs = [[_ngram_counts(tokenizer(r), n) for r in rs] for rs in refs]
    chyps = [_ngram_counts(tokenizer(p), n) for p in preds]
    df = Counter()
    for rs in crefs:
        for g in set().union(*(c.keys() for c in rs)):
            df[g] += 1
    log_n = math.log(len(crefs))

    def weights(c: Counter):
        vec = [dict() for _ in range(n)]
        norm = np.zeros(n)
        length = 0
        for g, tf in c.items():
            k = len(g) - 1
            w = tf * (log_n - math.log(max(1.0, df[g])))
            vec[k][g] = w
            norm[k] += w * w
            if k == 1:  # the COCO code measures length in bigrams
                length += tf
        return vec, np.sqrt(norm), length

    scores = np.zeros(len(refs))
    for i, (ch, rs) in enumerate(zip(chyps, crefs)):
        vh, nh, lh = weights(ch)
        total = np.zeros(n)
        for cr in rs:
            vr, nr, lr = weights(cr)
            val = np.zeros(n)
            for k in range(n):
                for g, w in vh[k].items():
                    wr = vr[k].get(g, 0.0)
                    val[k] += min(w, wr) * wr
                if nh[k] != 0 and nr[k] != 0:
                    val[k] /= nh[k] * nr[k]
            total += val * math.exp(-((lh - lr) ** 2) / (2 * sigma ** 2))
        scores[i] = total.mean() / len(rs) * 10.0
    return float(scores.mean()), scores


def rouge_l(references, predictions, *, beta: float = 1.2,
            tokenizer: Callable[[str], list[str]] = tokenize) -> tuple[float, np.ndarray]:
    """ROUGE-L as the COCO caption scorer: per reference, LCS / len(prediction) and LCS /
    len(reference); the maxima over references give P and R; F = (1 + b^2) P R / (R + b^2 P).

    Returns ``(mean over samples, per-sample scores)``; an empty prediction scores 0.
    """
    refs, preds = _as_corpus(references, predictions)
    if not refs:
        raise ValueError("rouge_l needs at least one sample")
    scores = np.zeros(len(refs))
    for i, (rs, p) in enumerate(zip(refs, preds)):
        tc = tokenizer(p)
        if not tc:
            continue
        prec, rec = [], []
        for r in rs:
            tr = tokenizer(r)
            lcs = lcs_length(tr, tc)
            prec.append(lcs / len(tc))
            rec.append(lcs / len(tr) if tr else 0.0)
        pm, rm = max(prec), max(rec)
        if pm > 0 and rm > 0:
            scores[i] = (1 + beta ** 2) * pm * rm / (rm + beta ** 2 * pm)
    return float(scores.mean()), scores


# --------------------------------------------------------------------------------------------
# A small grammar of facial events
# --------------------------------------------------------------------------------------------

#: Canonical time keys and the phrases :func:`fec_caption` writes.
TIME_PHRASES = {"beginning": "At the beginning", "progress": "As the video progresses",
                "middle": "In the middle", "end": "Towards the end"}
_TIME_RE = re.compile(
    r"^\s*(?P<p>at the (?:beginning|start)|in the beginning|initially|at first|first|"
    r"as the (?:video|clip) (?:progresses|continues|goes on)|subsequently|afterwards|after that|later|next|then|"
    r"in the middle|midway|halfway through|towards? the end|at the end|in the end|by the end|finally|eventually)\b"
    r"(?: of the (?:video|clip))?\s*,?\s*", re.I)
_TIME_KEY = [("beginning", ("beginning", "start", "initially", "at first", "first")),
             ("middle", ("middle", "midway", "halfway")),
             ("end", ("end", "finally", "eventually")),
             ("progress", ("progress", "continue", "goes on", "subsequently", "after", "later", "next", "then"))]

_SUBJECT_RE = re.compile(
    r"\b(?:the|a|an)\s+(?:(?:young|old|older|elderly|middle-aged|little)\s+)?"
    r"(?:person|man|woman|boy|girl|subject|individual|character|lady|guy|child)"
    r"(?:\s+on\s+the\s+(?P<side>left|right))?\b", re.I)

# canonical actions; "_motion" verbs take their action from a direction, "_light" verbs only
# make an event with an emotion word ("looks surprised", "shows a happy expression").
_VERBS = {
    "raise": "raise", "lift": "raise", "elevate": "raise", "arch": "raise", "rise": "raise",
    "lower": "lower", "drop": "lower", "droop": "lower", "sag": "lower", "fall": "lower",
    "furrow": "furrow", "knit": "furrow",
    "smile": "smile", "beam": "smile", "grin": "smile",
    "frown": "frown", "scowl": "frown",
    "open": "open", "part": "open",
    "close": "close", "shut": "close",
    "widen": "widen",
    "narrow": "narrow", "squint": "narrow",
    "purse": "purse", "pucker": "purse", "pout": "purse",
    "tighten": "tighten", "clench": "tighten", "press": "tighten", "compress": "tighten", "tense": "tighten",
    "relax": "relax", "loosen": "relax", "soften": "relax", "release": "relax",
    "tilt": "tilt", "tip": "tilt", "cock": "tilt",
    "nod": "nod", "shake": "shake", "blink": "blink", "wink": "wink", "wrinkle": "wrinkle",
    "stretch": "stretch",
    "turn": "_motion", "rotate": "_motion", "pull": "_motion", "draw": "_motion", "move": "_motion",
    "curl": "_motion", "curve": "_motion",
    "look": "_light", "appear": "_light", "seem": "_light", "show": "_light", "display": "_light",
    "become": "_light", "express": "_light", "grow": "_light",
}
_VERB_INTENSITY = {"grin": "strong", "beam": "strong"}
_VERB_REGION = {"squint": "eyes", "clench": "jaw", "press": "lips", "pout": "lips", "pucker": "lips", "arch": "brows",
                "knit": "brows"}
_ACTION_REGION = {"smile": "face", "frown": "face", "furrow": "brows", "nod": "head", "shake": "head",
                  "tilt": "head", "turn": "head", "blink": "eyes", "wink": "eyes", "wrinkle": "nose",
                  "purse": "lips", "look": "face"}
_IRREGULAR = {"shake": ("shook", "shaken"), "rise": ("rose", "risen"), "fall": ("fell", "fallen"), "show": ("showed", "shown"), "become": ("became",),
              "draw": ("drew", "drawn"), "grow": ("grew", "grown"), "shut": (), "knit": ()}
_DOUBLE = {"nod", "grin", "drop", "knit", "tip", "shut"}
_DIRECTED = {"tilt", "turn", "move", "stretch"}  # actions that keep a direction
OPPOSITE_ACTIONS = {frozenset(p) for p in [("raise", "lower"), ("open", "close"), ("widen", "narrow"),
                                           ("smile", "frown"), ("tighten", "relax"), ("furrow", "relax"),
                                           ("purse", "relax")]}
OPPOSITE_DIRECTIONS = {frozenset(p) for p in [("up", "down"), ("left", "right"), ("inward", "outward")]}
OPPOSITE_EMOTIONS = {frozenset(p) for p in [("happy", "sad")]}

_REGIONS = {
    "brows": ["eyebrows", "eyebrow", "brows", "brow"],
    "eyes": ["eyes", "eye"],
    "eyelids": ["eyelids", "eyelid", "lids", "lid"],
    "mouth": ["mouth"],
    "lip corners": ["lip corners", "lip corner", "mouth corners", "mouth corner", "corners of mouth",
                    "corner of mouth", "corners of lips", "corners of lip"],
    "lips": ["lips", "lip", "upper lip", "lower lip"],
    "jaw": ["jaw", "chin"],
    "nose": ["nose", "nostrils"],
    "cheeks": ["cheeks", "cheek"],
    "head": ["head"],
    "face": ["face", "expression", "facial expression"],
}
_DIRECTIONS = {"up": ["up", "upward", "upwards"], "down": ["down", "downward", "downwards"],
               "left": ["left"], "right": ["right"],
               "inward": ["inward", "inwards", "together"], "outward": ["outward", "outwards", "apart"]}
_INTENSITIES = {
    "slight": ["slightly", "little", "bit", "subtly", "gently", "barely", "faintly", "softly", "mildly", "lightly",
               "slight", "small", "subtle", "faint", "gentle", "mild"],
    "moderate": ["moderately", "somewhat", "moderate"],
    "strong": ["strongly", "broadly", "widely", "deeply", "hard", "tightly", "high", "sharply", "wide", "intensely",
               "very", "greatly", "fully", "firmly", "vigorously", "dramatically", "strong", "broad", "deep", "big",
               "intense"],
}
_EMOTIONS = {
    "happy": ["happy", "happily", "happiness", "joy", "joyful", "pleased", "cheerful"],
    "sad": ["sad", "sadly", "sadness", "sorrow", "sorrowful", "unhappy"],
    "surprised": ["surprised", "surprise", "surprisedly", "astonished", "shocked", "amazed"],
    "angry": ["angry", "angrily", "anger", "annoyed", "irritated", "furious"],
    "disgusted": ["disgusted", "disgust", "disgustedly"],
    "fearful": ["fearful", "fearfully", "fear", "afraid", "scared", "frightened"],
    "contempt": ["contempt", "contemptuous"],
    "neutral": ["neutral", "calm"],
}
_NEGATIONS = ["not", "n't", "never", "without"]
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
            "ten": 10}
_DROP = {"the", "a", "an", "her", "his", "their", "its", "both", "into", "to", "slowly", "briefly", "then"}
# clause separators, captured; a clause with a face region but no verb repeats the previous
# clause's verb only after a comma, "and" or "then" ("raises her brows and cheeks")
_CLAUSE_SPLIT = re.compile(r"(,\s*(?:and\s+)?(?:(?:then|while|as|with|before|after|and)\b)?|"
                           r"\s+(?:and\s+)?then\b|\s+(?:and|while|with|before|after|as)\b)\s*", re.I)
_NO_INHERIT = re.compile(r"\b(?:while|with|before|after|as)\b", re.I)


def _forms(base: str) -> set[str]:
    """Base, third person, -ing and past forms of a verb."""
    third = base + ("es" if base.endswith(("s", "sh", "ch", "x", "z")) else "s")
    stem = base + base[-1] if base in _DOUBLE else (base[:-1] if base.endswith("e") and not base.endswith("ee")
                                                     else base)
    ing = stem + "ing"
    past = (base + "d") if base.endswith("e") else stem + "ed"
    extra = _IRREGULAR.get(base)
    out = {base, third, ing}
    if extra is None:
        out.add(past)
    else:
        out.update(extra)
    return out


def _build_lexicon() -> dict[tuple[str, ...], tuple[str, str]]:
    lex: dict[tuple[str, ...], tuple[str, str]] = {}
    for base in _VERBS:
        for f in _forms(base):
            lex[(f,)] = ("verb", base)
    for kind, table in (("direction", _DIRECTIONS), ("intensity", _INTENSITIES), ("emotion", _EMOTIONS),
                        ("region", _REGIONS)):
        for canon, phrases in table.items():
            for ph in phrases:
                lex[tuple(ph.split())] = (kind, canon)
    for w in _NEGATIONS:
        lex[(w,)] = ("negation", "not")
    for ph, k in [("once", "1"), ("twice", "2"), ("thrice", "3"), ("repeatedly", "repeatedly"),
                  ("several times", "repeatedly"), ("multiple times", "repeatedly"), ("many times", "repeatedly")]:
        lex[tuple(ph.split())] = ("count", k)
    for w, k in _NUMBERS.items():
        lex[(w, "times")] = ("count", str(k))
    return lex


_LEXICON = _build_lexicon()
_MAX_PHRASE = max(len(k) for k in _LEXICON)


@dataclass(frozen=True)
class FacialEvent:
    """One parsed facial event. ``subject``: "person", or "left" / "right" for positional
    subjects; ``action``: a canonical verb (raise, lower, furrow, smile, frown, open, close,
    widen, narrow, purse, tighten, relax, tilt, nod, shake, blink, wink, wrinkle, stretch, turn,
    move, look); ``region``: brows, eyes, eyelids, mouth, lips, lip corners, jaw, nose, cheeks,
    head, face or None; ``direction``: up, down, left, right, inward, outward or None;
    ``intensity``: slight, moderate, strong or None; ``emotion``: space-joined sorted emotion
    words (action "look"); ``count``: "1", "2", ... or "repeatedly"; ``time``: a
    :data:`TIME_PHRASES` key or None."""

    action: str
    region: str | None = None
    direction: str | None = None
    negated: bool = False
    intensity: str | None = None
    subject: str = "person"
    emotion: str | None = None
    count: str | None = None
    time: str | None = None

    def core(self) -> tuple:
        """What the judge compares (no intensity, count or time)."""
        return (self.subject, self.action, self.region, self.direction, self.negated, self.emotion)


def _tag(words: list[str]) -> list[tuple[str, str]]:
    """Greedy longest-match of lexicon phrases, left to right; unknown words are skipped."""
    tags, i = [], 0
    while i < len(words):
        for k in range(min(_MAX_PHRASE, len(words) - i), 0, -1):
            hit = _LEXICON.get(tuple(words[i:i + k]))
            if hit is not None:
                tags.append(hit)
                i += k
                break
        else:
            if words[i].isdigit() and i + 1 < len(words) and words[i + 1] == "times":
                tags.append(("count", str(int(words[i]))))
                i += 2
            else:
                i += 1
    return tags


def _time_key(phrase: str) -> str:
    p = phrase.lower()
    for key, cues in _TIME_KEY:
        if any(c in p for c in cues):
            return key
    return "progress"  # pragma: no cover - every phrase of _TIME_RE has a cue


def _first(tags, kind):
    return next((v for k, v in tags if k == kind), None)


def _clause_event(tags, subject, time, inherited_verb, inherited_neg):
    """Build an event from a clause's tags, or None. Returns (event, verb, negated)."""
    verbs = [v for k, v in tags if k == "verb"]
    emotions = sorted({v for k, v in tags if k == "emotion"})
    region = _first(tags, "region")
    negated = any(k == "negation" for k, _ in tags)
    verb = next((v for v in verbs if _VERBS[v] != "_light"), None)
    light = next((v for v in verbs if _VERBS[v] == "_light" or v == "turn"), None)
    if emotions and light is not None and (verb is None or verb == "turn"):
        return (FacialEvent("look", "face", None, negated, _first(tags, "intensity"), subject, " ".join(emotions),
                            _first(tags, "count"), time), None, False)
    if verb is None:
        if region is None or inherited_verb is None:
            return None, None, False
        verb, negated = inherited_verb, inherited_neg or negated
    direction = _first(tags, "direction")
    action = _VERBS[verb]
    region = region or _VERB_REGION.get(verb)
    if action == "_motion":
        if direction == "up":
            action, direction = "raise", None
        elif direction == "down":
            action, direction = "lower", None
        elif direction == "inward":
            action, direction = ("furrow" if region == "brows" else "tighten"), None
        elif direction == "outward" and region in ("mouth", "lips"):
            action, direction = "open", None
        elif direction in ("left", "right") or verb in ("turn", "rotate"):
            action = "turn"
        else:
            action = "move"
    elif action not in _DIRECTED:
        direction = None  # implied by the action ("raises", "presses together")
    region = region or _ACTION_REGION.get(action)
    intensity = _first(tags, "intensity") or _VERB_INTENSITY.get(verb)
    return (FacialEvent(action, region, direction, negated, intensity, subject, None, _first(tags, "count"), time),
            verb, negated)


def parse_caption(caption: str) -> list[FacialEvent]:
    """Facial events of a caption in text order, each with its sentence's time phrase.

    Sentences split at . ! ? ;, a leading time phrase ("At the beginning", "As the video
    progresses", "In the middle", "Towards the end", "Finally", ...) sets the time of its
    sentence (later sentences without one keep it); clauses split at commas, "and", "then",
    "while", "as", "with", "before", "after". A clause with an action verb makes an event; one
    with only a face region repeats the previous clause's verb ("raises her brows and
    cheeks"); one with only an intensity or count qualifies the previous event.
    """
    if not isinstance(caption, str):
        raise TypeError(f"expected a caption string, got {type(caption).__name__}")
    events: list[FacialEvent] = []
    subject, time = "person", None
    for sentence in re.split(r"[.!?;]+(?:\s+|$)", caption):
        m = _TIME_RE.match(sentence)
        if m:
            time = _time_key(m.group("p"))
            sentence = sentence[m.end():]
        verb, neg = None, False
        pieces = _CLAUSE_SPLIT.split(sentence)
        for c in range(0, len(pieces), 2):
            clause = pieces[c]
            if not clause or not clause.strip():
                continue
            if c and _NO_INHERIT.search(pieces[c - 1]):
                verb, neg = None, False
            sm = _SUBJECT_RE.search(clause)
            if sm:
                subject = sm.group("side") or "person"
                clause = clause[:sm.start()] + " " + clause[sm.end():]
            words = [w for w in tokenize(clause) if w not in _DROP]
            tags = _tag(words)
            ev, v, n = _clause_event(tags, subject, time, verb, neg)
            if ev is not None:
                events.append(ev)
                verb, neg = v, n
            elif events and not any(k in ("verb", "region") for k, _ in tags):
                last, upd = events[-1], {}
                if last.intensity is None and _first(tags, "intensity"):
                    upd["intensity"] = _first(tags, "intensity")
                if last.count is None and _first(tags, "count"):
                    upd["count"] = _first(tags, "count")
                if upd:
                    events[-1] = FacialEvent(**{**asdict(last), **upd})
    return events


def parse_event(text: str) -> FacialEvent | None:
    """The first facial event of ``text`` (None when it names none)."""
    evs = parse_caption(text)
    return evs[0] if evs else None


_ADVERB = {"slight": "slightly", "moderate": "moderately", "strong": "strongly"}


def render_event(ev: FacialEvent) -> str:
    """A short canonical sentence for an event ("the person does not raise brows slightly");
    :func:`parse_event` reads it back to the same event (without its time)."""
    subj = {"left": "the person on the left", "right": "the person on the right"}.get(ev.subject, "the person")
    verb = ev.action
    third = verb + ("es" if verb.endswith(("s", "sh", "ch", "x", "z")) else "s")
    words = [subj, ("does not " + verb) if ev.negated else third]
    if ev.action == "look":
        words.append(ev.emotion or "")
    elif ev.region is not None and ev.region != _ACTION_REGION.get(ev.action):
        words.append(ev.region)
    if ev.direction is not None:
        words.append(ev.direction)
    if ev.intensity is not None:
        words.append(_ADVERB[ev.intensity])
    if ev.count is not None:
        words.append({"1": "once", "2": "twice"}.get(ev.count, ev.count if ev.count == "repeatedly"
                                                     else f"{ev.count} times"))
    return " ".join(w for w in words if w)


def relation(premise: FacialEvent, hypothesis: FacialEvent) -> str:
    """Does ``premise`` entail / contradict ``hypothesis``? (the rule judge's core)."""
    if premise.subject != hypothesis.subject and "person" not in (premise.subject, hypothesis.subject):
        return NEUTRAL  # two different people
    if hypothesis.region is not None and premise.region != hypothesis.region:
        return NEUTRAL
    neg = premise.negated or hypothesis.negated
    if premise.action == hypothesis.action:
        if premise.action == "look" and premise.emotion != hypothesis.emotion:
            opposite = frozenset((premise.emotion, hypothesis.emotion)) in OPPOSITE_EMOTIONS
            return CONTRADICTION if opposite and not neg else NEUTRAL
        hd, pd = hypothesis.direction, premise.direction
        if hd is not None and pd is not None and frozenset((hd, pd)) in OPPOSITE_DIRECTIONS:
            return NEUTRAL if neg else CONTRADICTION
        if hd is not None and pd != hd:
            return NEUTRAL  # the premise says less (no direction) or something else
        return ENTAILMENT if premise.negated == hypothesis.negated else CONTRADICTION
    if frozenset((premise.action, hypothesis.action)) in OPPOSITE_ACTIONS:
        return NEUTRAL if neg else CONTRADICTION
    return NEUTRAL


def _time_phrase(key_or_phrase: str) -> str:
    k = str(key_or_phrase).strip().rstrip(",").strip().lower()
    if k in TIME_PHRASES:
        return TIME_PHRASES[k]
    for phrase in TIME_PHRASES.values():
        if k == phrase.lower():
            return phrase
    raise ValueError(f"unknown time phrase {key_or_phrase!r}: expected one of {', '.join(TIME_PHRASES)} "
                     f"or {', '.join(repr(p) for p in TIME_PHRASES.values())}")


def fec_caption(appearance: str, events: Sequence[tuple[str, str]]) -> str:
    """An FEC-Bench-style caption: the appearance sentence, then one sentence per time phrase,
    e.g. ``fec_caption("A young woman with short hair", [("beginning", "she raises her
    eyebrows"), ("end", "she smiles")])`` -> "A young woman with short hair. At the beginning,
    she raises her eyebrows. Towards the end, she smiles." Time phrases are keys of
    :data:`TIME_PHRASES` or the phrases themselves; consecutive events with the same phrase
    share a sentence, joined by ", then"."""
    if not isinstance(appearance, str):
        raise TypeError(f"appearance must be a string, got {type(appearance).__name__}")
    sentences = []
    app = appearance.strip().rstrip(".").strip()
    if app:
        sentences.append(app[0].upper() + app[1:] + ".")
    last, parts = None, []
    for item in events:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"each event must be a (time_phrase, event_text) pair, got {item!r}")
        phrase, text = _time_phrase(item[0]), item[1]
        if not isinstance(text, str) or not text.strip().rstrip("."):
            raise ValueError(f"event text must be a non-empty string, got {text!r}")
        text = text.strip().rstrip(".").strip()
        if phrase == last:
            parts.append(text)
            continue
        if parts:
            sentences.append(f"{last}, " + ", then ".join(parts) + ".")
        last, parts = phrase, [text]
    if parts:
        sentences.append(f"{last}, " + ", then ".join(parts) + ".")
    return " ".join(sentences)


# --------------------------------------------------------------------------------------------
# Pluggable extractors and judges
# --------------------------------------------------------------------------------------------

@runtime_checkable
class EventExtractor(Protocol):
    def __call__(self, caption: str) -> list[str]: ...


@runtime_checkable
class EventJudge(Protocol):
    def __call__(self, events: Sequence[str], description: str) -> list[str]: ...


class RuleExtractor:
    """Caption -> canonical event sentences (:func:`render_event`) from the rule grammar."""

    def __init__(self, max_events: int | None = None):
        self.max_events = max_events

    def events(self, caption: str) -> list[FacialEvent]:
        evs = parse_caption(caption)
        return evs if self.max_events is None else evs[:self.max_events]

    def __call__(self, caption: str) -> list[str]:
        return [render_event(e) for e in self.events(caption)]


class RuleJudge:
    """Label each event against a description with :func:`relation`: entailment when some
    event of the description entails it, else contradiction when one contradicts it, else
    neutral (also for an event the grammar cannot parse)."""

    def __call__(self, events: Sequence[str], description: str) -> list[str]:
        premises = parse_caption(description)
        out = []
        for text in events:
            h = parse_event(text)
            rels = {relation(p, h) for p in premises} if h is not None else set()
            out.append(ENTAILMENT if ENTAILMENT in rels else CONTRADICTION if CONTRADICTION in rels else NEUTRAL)
        return out


class LocalLM:
    """Greedy text generation with a ``transformers`` causal LM loaded from a local directory
    (``local_files_only``: nothing is ever downloaded). Loads on the first call."""

    def __init__(self, model_path, *, device: str = "cpu", max_new_tokens: int = 512, dtype=None):
        if model_path is None:
            raise ValueError("LocalLM needs model_path: the local directory of a saved transformers causal LM")
        path = Path(model_path).expanduser()
        if not path.is_dir() or not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{str(model_path)!r} is not a local model directory (a folder with config.json and weights); "
                "facelab never downloads models: save one with model.save_pretrained(dir) and "
                "tokenizer.save_pretrained(dir) and pass that folder")
        self.path, self.device, self.max_new_tokens, self.dtype = path, device, int(max_new_tokens), dtype
        self._model = self._tok = None

    def _load(self):
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            kw = {"local_files_only": True}
            if self.dtype is not None:
                kw["torch_dtype"] = self.dtype
            self._model = AutoModelForCausalLM.from_pretrained(self.path, **kw).to(self.device).eval()
        return self._tok, self._model

    def __call__(self, prompt: str) -> str:
        import torch

        tok, model = self._load()
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
        else:
            text = prompt
        enc = tok(text, return_tensors="pt").to(self.device)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def _generator(model_path, generate, **lm_kwargs) -> Callable[[str], str]:
    if generate is not None:
        if not callable(generate):
            raise TypeError("generate must be a callable prompt -> text")
        return generate
    if model_path is None:
        raise ValueError("an LLM extractor/judge needs model_path (a local model directory) or generate "
                         "(a callable prompt -> text)")
    return LocalLM(model_path, **lm_kwargs)


def _json_payload(text: str):
    """The first JSON / Python-literal object or list in a model answer (code fences allowed)."""
    t = re.sub(r"```(?:json|python)?", "", text).strip()
    for open_, close in (("{", "}"), ("[", "]")):
        a, b = t.find(open_), t.rfind(close)
        if a != -1 and b > a:
            chunk = t[a:b + 1]
            for loader in (json.loads, ast.literal_eval):
                try:
                    return loader(chunk)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    continue
    return None


class LLMExtractor:
    """Extract at most ``max_events`` atomic dynamic facial events with a local causal LM.
    Give ``model_path`` (a local directory) or ``generate`` (any callable prompt -> text)."""

    def __init__(self, model_path=None, *, generate: Callable[[str], str] | None = None, max_events: int = 10,
                 **lm_kwargs):
        self.generate = _generator(model_path, generate, **lm_kwargs)
        self.max_events = int(max_events)

    def prompt(self, caption: str) -> str:
        return ("Here is a description of a video of a person's face.\n"
                f"Description: {caption}\n\n"
                f"List at most {self.max_events} key dynamic events of the description. Each event must be a "
                "movement or change (of the face, eyes, brows, mouth, head...), not a static appearance detail. "
                "Write each event as one short sentence of at most 10 words with a subject and a verb, "
                "replace pronouns by the noun they stand for, make every event atomic (not splittable) and "
                "do not repeat events. Keep the order of the description.\n"
                'Answer with JSON only, in the form {"events": ["event 1", "event 2", ...]}.')

    def parse(self, text: str) -> list[str]:
        data = _json_payload(text)
        if isinstance(data, dict):
            data = data.get("events")
        if isinstance(data, list) and all(isinstance(e, str) for e in data):
            return [e.strip() for e in data if e.strip()][:self.max_events]
        bullet = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+)$")
        items = [m.group(1).strip() for m in map(bullet.match, text.splitlines()) if m]
        if items:
            return items[:self.max_events]
        raise ValueError(f"could not read an event list from the model answer: {text[:200]!r}")

    def __call__(self, caption: str) -> list[str]:
        return self.parse(self.generate(self.prompt(caption)))


class LLMJudge:
    """Label events entailment / neutral / contradiction against a description with a local
    causal LM. Give ``model_path`` (a local directory) or ``generate`` (a callable prompt -> text)."""

    def __init__(self, model_path=None, *, generate: Callable[[str], str] | None = None, **lm_kwargs):
        self.generate = _generator(model_path, generate, **lm_kwargs)

    @staticmethod
    def prompt(events: Sequence[str], description: str) -> str:
        listed = "\n".join(f"{i + 1}. {e}" for i, e in enumerate(events))
        return ("You are given a description of a video of a person's face and a numbered list of events. "
                "For every event decide how the description relates to it:\n"
                '- "entailment": the description states or clearly implies the event;\n'
                '- "contradiction": some detail of the description conflicts with the event;\n'
                '- "neutral": neither of the two.\n\n'
                f"Description:\n{description}\n\nEvents:\n{listed}\n\n"
                f"Answer with JSON only, one entry per event ({len(events)} in all), in order:\n"
                '{"events": [{"event": "<the event>", "relationship": "entailment|neutral|contradiction"}, ...]}')

    @staticmethod
    def parse(text: str, n: int) -> list[str]:
        """Labels from a model answer; ValueError unless exactly ``n`` valid labels are found."""
        data = _json_payload(text)
        labels = None
        if isinstance(data, dict):
            data = data.get("events", data.get("relationships"))
        if isinstance(data, list):
            labels = []
            for item in data:
                if isinstance(item, dict):
                    item = item.get("relationship", item.get("relation", item.get("label")))
                labels.append(str(item).strip().lower() if item is not None else "")
            if len(labels) != n or any(lab not in LABELS for lab in labels):
                labels = None
        if labels is None:
            found = re.findall(r"\b(entailment|neutral|contradiction)\b", text.lower())
            if len(found) == n:
                labels = found
        if labels is None:
            raise ValueError(f"expected {n} labels (entailment / neutral / contradiction) in the model answer, "
                             f"got {text[:200]!r}")
        return labels

    def __call__(self, events: Sequence[str], description: str) -> list[str]:
        events = list(events)
        if not events:
            return []
        return self.parse(self.generate(self.prompt(events, description)), len(events))


EXTRACTORS: dict[str, type] = {"rules": RuleExtractor, "llm": LLMExtractor}
JUDGES: dict[str, type] = {"rules": RuleJudge, "llm": LLMJudge}


def _make(kind: str, table: dict, spec, signature: str, kwargs: dict):
    if isinstance(spec, str):
        if spec not in table:
            raise ValueError(f"unknown {kind} {spec!r}: expected one of {', '.join(sorted(table))} "
                             f"or a callable {signature}")
        return table[spec](**kwargs)
    if callable(spec):
        if kwargs:
            raise ValueError(f"{kind} options {sorted(kwargs)} only apply to a {kind} given by name")
        return spec
    raise ValueError(f"unknown {kind} {spec!r}: expected one of {', '.join(sorted(table))} or a callable {signature}")


def make_extractor(extractor="rules", **kwargs) -> EventExtractor:
    """An extractor by name (:data:`EXTRACTORS`, with ``kwargs``) or a callable passed through."""
    return _make("extractor", EXTRACTORS, extractor, "(caption) -> list[str]", kwargs)


def make_judge(judge="rules", **kwargs) -> EventJudge:
    """A judge by name (:data:`JUDGES`, with ``kwargs``) or a callable passed through."""
    return _make("judge", JUDGES, judge, "(events, description) -> labels", kwargs)


# --------------------------------------------------------------------------------------------
# AutoDQ and TEM
# --------------------------------------------------------------------------------------------

@dataclass
class SampleEvents:
    """One scored sample: events, labels, AutoDQ precision / recall and TEM's alignment."""

    index: int
    reference_events: list[str]
    prediction_events: list[str]
    recall_labels: list[str]       # reference events vs the prediction
    precision_labels: list[str]    # predicted events vs the reference
    recall: float
    precision: float
    matches: list[tuple[int, int]]  # (predicted index, reference index), in predicted order
    lcs: int
    tem_recall: float
    tem_precision: float


@dataclass
class EventScores:
    """Corpus AutoDQ and TEM. ``failures``: (sample index, reason) of samples left out."""

    autodq: float
    precision: float
    recall: float
    tem: float
    tem_precision: float
    tem_recall: float
    n_samples: int
    n_scored: int
    n_failed: int
    failures: list[tuple[int, str]] = field(default_factory=list)
    samples: list[SampleEvents] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"AutoDQ": self.autodq, "AutoDQ_precision": self.precision, "AutoDQ_recall": self.recall,
                "TEM": self.tem, "TEM_precision": self.tem_precision, "TEM_recall": self.tem_recall,
                "n_samples": self.n_samples, "n_scored": self.n_scored, "n_failed": self.n_failed}


def _f1(p: float, r: float) -> float:
    if math.isnan(p) or math.isnan(r):
        return float("nan")
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _checked_events(events, where: str, max_events: int) -> list[str]:
    if not isinstance(events, (list, tuple)) or not all(isinstance(e, str) for e in events):
        raise ValueError(f"{where}: the extractor must return a list of strings, got {events!r}")
    return list(events)[:max_events]


def _checked_labels(labels, n: int, where: str) -> list[str]:
    if not isinstance(labels, (list, tuple)) or len(labels) != n:
        raise ValueError(f"{where}: the judge must return {n} labels, got {labels!r}")
    out = [str(lab).strip().lower() for lab in labels]
    bad = [lab for lab in out if lab not in LABELS]
    if bad:
        raise ValueError(f"{where}: labels must be one of {', '.join(LABELS)}, got {bad}")
    return out


def _order_matching(compat: np.ndarray) -> list[tuple[int, int]]:
    """Most one-to-one pairs of a (n_pred, n_ref) boolean matrix; ties go to the matching whose
    relative positions agree best. Returned sorted by predicted index."""
    if compat.size == 0 or not compat.any():
        return []
    from scipy.optimize import linear_sum_assignment

    n_p, n_r = compat.shape
    pos_p = (np.arange(n_p) + 0.5) / n_p
    pos_r = (np.arange(n_r) + 0.5) / n_r
    # one pair is worth 1; the order term sums to < 1e-3 * min(n_p, n_r) <= 0.01, never buying a pair
    cost = np.where(compat, -1.0 + 1e-3 * np.abs(pos_p[:, None] - pos_r[None, :]), 0.0)
    rows, cols = linear_sum_assignment(cost)
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if compat[i, j])


def _score_sample(i, ref, pred, ref_events, extractor, judge, max_events, lowercase) -> SampleEvents:
    r_text, p_text = (ref.lower(), pred.lower()) if lowercase else (ref, pred)
    stage = "extract reference"
    try:
        gt = _checked_events(extractor(r_text) if ref_events is None else ref_events, stage, max_events)
        stage = "extract prediction"
        pr = _checked_events(extractor(p_text), stage, max_events)
        stage = "judge recall"
        rl = _checked_labels(judge(gt, p_text), len(gt), stage) if gt else []
        stage = "judge precision"
        pl = _checked_labels(judge(pr, r_text), len(pr), stage) if pr else []
        stage = "judge alignment"
        cand_p = [k for k, lab in enumerate(pl) if lab == ENTAILMENT]
        cand_r = [k for k, lab in enumerate(rl) if lab == ENTAILMENT]
        compat = np.zeros((len(pr), len(gt)), bool)
        if cand_p:
            for j in cand_r:
                labs = _checked_labels(judge([pr[k] for k in cand_p], gt[j]), len(cand_p), stage)
                for k, lab in zip(cand_p, labs):
                    compat[k, j] = lab == ENTAILMENT
    except Exception as e:  # noqa: BLE001 - any failure of a pluggable tool excludes the sample
        raise _SampleFailure(f"{stage}: {type(e).__name__}: {e}") from e
    matches = _order_matching(compat)
    lcs = lcs_length([j for _, j in matches], sorted(j for _, j in matches))
    recall = rl.count(ENTAILMENT) / len(gt) if gt else 1.0
    precision = pl.count(ENTAILMENT) / len(pr) if pr else 1.0
    return SampleEvents(i, gt, pr, rl, pl, recall, precision, matches, lcs,
                        lcs / len(gt) if gt else 1.0, lcs / len(pr) if pr else 1.0)


class _SampleFailure(Exception):
    pass


def event_scores(references: Sequence[str], predictions: Sequence[str], *, extractor="rules", judge="rules",
                 max_events: int = 10, reference_events: Sequence[Sequence[str] | None] | None = None,
                 lowercase: bool = True) -> EventScores:
    """AutoDQ and TEM of ``predictions`` against ``references`` (one caption string each).

    ``extractor`` / ``judge``: a registered name (:data:`EXTRACTORS`, :data:`JUDGES`) or a
    callable. ``reference_events``: optional precomputed event lists (None entries are
    extracted). Captions are lower-cased first, as in Tarsier. At most ``max_events`` events per
    caption are kept (the first ones). Failed samples are excluded and counted; with none
    scored the corpus scores are NaN.
    """
    refs, preds = list(references), list(predictions)
    if len(refs) != len(preds):
        raise ValueError(f"{len(refs)} references but {len(preds)} predictions: expected one per sample")
    for name, seq in (("reference", refs), ("prediction", preds)):
        for k, s in enumerate(seq):
            if not isinstance(s, str):
                raise ValueError(f"sample {k}: {name} must be a caption string, got {type(s).__name__}")
    if not isinstance(max_events, (int, np.integer)) or isinstance(max_events, bool) or max_events < 1:
        raise ValueError(f"max_events must be a positive int, got {max_events!r}")
    if reference_events is not None and len(reference_events) != len(refs):
        raise ValueError(f"reference_events has {len(reference_events)} entries for {len(refs)} samples")
    ext, jdg = make_extractor(extractor), make_judge(judge)
    samples, failures = [], []
    for i, (r, p) in enumerate(zip(refs, preds)):
        try:
            samples.append(_score_sample(i, r, p, None if reference_events is None else reference_events[i],
                                         ext, jdg, int(max_events), lowercase))
        except _SampleFailure as e:
            failures.append((i, str(e)))

    def mean(attr):
        return float(np.mean([getattr(s, attr) for s in samples])) if samples else float("nan")

    p, r, tp, tr = mean("precision"), mean("recall"), mean("tem_precision"), mean("tem_recall")
    return EventScores(_f1(p, r), p, r, _f1(tp, tr), tp, tr, len(refs), len(samples), len(failures), failures,
                       samples)


def autodq(references, predictions, **kwargs) -> float:
    """Corpus AutoDQ (see :func:`event_scores`, which gives TEM and the details in one pass)."""
    return event_scores(references, predictions, **kwargs).autodq


def tem(references, predictions, **kwargs) -> float:
    """Corpus TEM, a reconstruction (see the module docstring and :func:`event_scores`)."""
    return event_scores(references, predictions, **kwargs).tem


def fec_bench_scores(references, predictions, **kwargs) -> dict:
    """The FEC-Bench caption columns: CIDEr (CIDEr-D), ROUGE-L, AutoDQ and TEM, plus AutoDQ /
    TEM precision and recall and the sample counts. ``kwargs`` go to :func:`event_scores`."""
    ev = event_scores(references, predictions, **kwargs)
    return {"CIDEr": cider_d(references, predictions)[0], "ROUGE-L": rouge_l(references, predictions)[0],
            **ev.as_dict()}
