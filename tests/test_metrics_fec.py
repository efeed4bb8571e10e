"""facelab.metrics_fec: AutoDQ / TEM with the rule tools, CIDEr-D and ROUGE-L on hand cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from facelab.metrics_fec import (ENTAILMENT, EXTRACTORS, JUDGES, LABELS, TIME_PHRASES, FacialEvent, LLMExtractor,
                                 LLMJudge, LocalLM, RuleExtractor, RuleJudge, cider_d, event_scores, fec_bench_scores,
                                 fec_caption, lcs_length, make_extractor, make_judge, parse_caption, parse_event,
                                 relation, render_event, rouge_l, tokenize)

J = RuleJudge()


def one(event: str, description: str) -> str:
    return J([event], description)[0]


# ---------------------------------------------------------------- the rule judge


@pytest.mark.parametrize("event, description", [
    ("the man grins", "She smiles broadly."),                      # grins = smiles broadly
    ("he raises his eyebrows", "The woman lifts her brows."),     # eyebrows = brows, lifts = raises
    ("her lip corners pull up", "The person raises the corners of her mouth."),
    ("she squints", "Her eyes narrow slightly."),
    ("she tilts her head", "He tilts his head to the left."),     # the premise says more
    ("she does not frown", "The woman does not scowl."),
])
def test_paraphrase_is_entailment(event, description):
    assert one(event, description) == "entailment"


@pytest.mark.parametrize("event, description", [
    ("he raises his eyebrows", "The person lowers her brows."),
    ("she opens her eyes", "Her eyes close."),
    ("she widens her eyes", "She narrows her eyes."),
    ("she smiles", "She frowns deeply."),
    ("she tilts her head to the left", "He tilts his head right."),
    ("her lip corners pull up", "Her lip corners pull down."),
    ("she does not smile", "She smiles."),                       # negation mismatch
    ("she smiles", "She does not smile."),
])
def test_opposites_and_negation_are_contradiction(event, description):
    assert one(event, description) == "contradiction"


@pytest.mark.parametrize("event, description", [
    ("she nods", "She opens her mouth."),                         # unrelated
    ("she raises her eyebrows", "She raises her cheeks."),        # wrong region: not entailed
    ("she tilts her head to the left", "She tilts her head."),    # the premise says less
    ("the person on the left smiles", "The person on the right smiles."),
    ("she does not raise her brows", "She lowers her brows."),
    ("the weather is nice", "She smiles."),                       # not a facial event
])
def test_unrelated_is_neutral(event, description):
    assert one(event, description) == "neutral"


def test_judge_over_a_caption_prefers_entailment_then_contradiction():
    cap = "At the beginning, she raises her brows. Towards the end, she lowers her brows."
    assert J(["she raises her eyebrows", "she lowers her eyebrows", "she smiles"], cap) == \
        ["entailment", "entailment", "neutral"]
    assert J(["she frowns"], "She smiles. She nods.") == ["contradiction"]


def test_relation_on_events_directly():
    up = FacialEvent("raise", "brows")
    assert relation(up, FacialEvent("raise", None)) == "entailment"   # no region claimed
    assert relation(FacialEvent("raise", None), up) == "neutral"
    assert relation(up, FacialEvent("lower", "brows", negated=True)) == "neutral"


# ---------------------------------------------------------------- extraction and captions


def test_synonyms_map_to_canonical_forms():
    assert parse_event("The man grins.") == parse_event("the person smiles broadly")
    assert parse_event("she knits her eyebrows").core() == parse_event("he furrows his brows").core()
    e = parse_event("She does not open her mouth wide")
    assert (e.action, e.region, e.negated, e.intensity) == ("open", "mouth", True, "strong")
    e = parse_event("the person on the right tilts the head to the left slightly")
    assert (e.subject, e.action, e.region, e.direction, e.intensity) == ("right", "tilt", "head", "left", "slight")
    e = parse_event("she clenches her jaw")
    assert (e.action, e.region) == ("tighten", "jaw")
    e = parse_event("he lowers his lower lip")   # 'lower lip' is a region, 'lowers' the verb
    assert (e.action, e.region) == ("lower", "lips")


def test_render_round_trip_and_region_inheritance():
    cap = ("She raises her eyebrows and cheeks, then smiles broadly while blinking twice. "
           "The person looks very surprised. He shakes his head.")
    evs = parse_caption(cap)
    assert [(e.action, e.region) for e in evs] == [("raise", "brows"), ("raise", "cheeks"), ("smile", "face"),
                                                   ("blink", "eyes"), ("look", "face"), ("shake", "head")]
    assert evs[3].count == "2" and evs[4].emotion == "surprised"
    for e in evs:
        assert parse_event(render_event(e)) == FacialEvent(**{**e.__dict__, "time": None})


def test_fec_caption_template_and_round_trip():
    events = [("beginning", "she raises her eyebrows slightly"), ("beginning", "she opens her mouth"),
              ("progress", "her lip corners pull up into a broad smile"), ("middle", "she does not frown"),
              ("Towards the end", "she closes her eyes")]
    cap = fec_caption("A young woman with short dark hair and round glasses", events)
    assert cap == ("A young woman with short dark hair and round glasses. At the beginning, she raises her eyebrows "
                   "slightly, then she opens her mouth. As the video progresses, her lip corners pull up into a "
                   "broad smile. In the middle, she does not frown. Towards the end, she closes her eyes.")
    got = parse_caption(cap)
    want = [(t, parse_event(text)) for t, text in events]
    assert len(got) == len(want)
    for g, (t, w) in zip(got, want):
        assert g.core() == w.core() and g.intensity == w.intensity
    assert [g.time for g in got] == ["beginning", "beginning", "progress", "middle", "end"]
    assert RuleExtractor()(cap) == ["the person raises brows slightly", "the person opens mouth",
                                    "the person raises lip corners strongly", "the person does not frown",
                                    "the person closes eyes"]
    assert set(TIME_PHRASES) == {"beginning", "progress", "middle", "end"}


def test_fec_caption_bad_input():
    with pytest.raises(ValueError, match="unknown time phrase"):
        fec_caption("A man", [("yesterday", "he smiles")])
    with pytest.raises(ValueError, match="pair"):
        fec_caption("A man", ["he smiles"])
    with pytest.raises(ValueError, match="non-empty"):
        fec_caption("A man", [("end", "  ")])


def test_reads_synthetic_video_captions():
    from facelab.synth.videos import caption

    def ev(t, action, phrase, subject="the person", who=0):
        return {"t_start": t, "t_apex": t + 0.2, "t_end": t + 0.5, "subject": subject, "who": who,
                "event": phrase, "action": action}

    cap = caption([ev(0.1, "brow_raise", "raises their eyebrows"), ev(1.0, "smile", "smiles broadly"),
                   ev(1.1, "blink", "blinks"), ev(2.0, "lip_press", "presses their lips together"),
                   ev(3.0, "nod", "nods")])
    assert [(e.action, e.region) for e in parse_caption(cap)] == [
        ("raise", "brows"), ("smile", "face"), ("blink", "eyes"), ("tighten", "lips"), ("nod", "head")]


# ---------------------------------------------------------------- AutoDQ and TEM


def test_identical_captions_score_one():
    cap = fec_caption("A man", [("beginning", "he raises his brows"), ("end", "he smiles")])
    s = event_scores([cap], [cap])
    assert (s.autodq, s.tem, s.n_failed) == (1.0, 1.0, 0)


def test_autodq_precision_recall_by_hand():
    ref = "She raises her brows, then opens her mouth, then nods, then blinks."
    pred = "She raises her eyebrows, then closes her mouth, then smiles."   # 1 hit, 1 contradiction, 1 extra
    s = event_scores([ref], [pred])
    smp = s.samples[0]
    assert smp.recall_labels == ["entailment", "contradiction", "neutral", "neutral"]
    assert smp.precision_labels == ["entailment", "contradiction", "neutral"]
    assert s.recall == pytest.approx(1 / 4) and s.precision == pytest.approx(1 / 3)
    assert s.autodq == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))


def test_f1_of_means_not_mean_of_f1():
    refs = ["She smiles.", "She smiles, then nods."]
    preds = ["She smiles, then frowns.", "She nods."]   # P 1/2, R 1 ; P 1, R 1/2
    s = event_scores(refs, preds)
    assert (s.precision, s.recall) == (0.75, 0.75) and s.autodq == pytest.approx(0.75)


def test_reordered_events_lower_tem_not_autodq():
    ref = fec_caption("A woman", [("beginning", "she raises her eyebrows"), ("progress", "she opens her mouth"),
                                  ("middle", "she smiles"), ("end", "she nods")])
    rev = fec_caption("A woman", [("beginning", "she nods"), ("progress", "she smiles"),
                                  ("middle", "she opens her mouth"), ("end", "she raises her eyebrows")])
    swap = fec_caption("A woman", [("beginning", "she opens her mouth"), ("progress", "she raises her eyebrows"),
                                   ("middle", "she smiles"), ("end", "she nods")])
    same, r, w = (event_scores([ref], [p]) for p in (ref, rev, swap))
    assert same.autodq == r.autodq == w.autodq == 1.0
    assert same.tem == 1.0 and r.tem == pytest.approx(1 / 4) and w.tem == pytest.approx(3 / 4)
    assert r.samples[0].lcs == 1 and w.samples[0].lcs == 3


def test_repeated_events_match_in_order():
    ref = "She blinks, then smiles, then blinks."
    s = event_scores([ref], ["She blinks, then smiles, then blinks."])
    assert s.tem == 1.0 and s.samples[0].matches == [(0, 0), (1, 1), (2, 2)]


def test_tem_never_exceeds_autodq():
    rng = np.random.default_rng(0)
    pool = ["she raises her brows", "she lowers her brows", "she opens her mouth", "she closes her mouth",
            "she smiles", "she frowns", "she nods", "she blinks", "she tilts her head left", "she squints"]
    refs, preds = [], []
    for _ in range(40):
        refs.append(", then ".join(rng.choice(pool, rng.integers(1, 7))) + ".")
        preds.append(", then ".join(rng.choice(pool, rng.integers(0, 7))) + ".")
    s = event_scores(refs, preds)
    assert s.n_failed == 0 and 0 < s.tem <= s.autodq <= 1
    for smp in s.samples:
        assert smp.tem_precision <= smp.precision + 1e-12 and smp.tem_recall <= smp.recall + 1e-12


def test_empty_event_lists_score_one():
    s = event_scores(["A man with short hair."], ["A man with short hair."])   # no dynamic events
    assert (s.precision, s.recall, s.autodq, s.tem) == (1.0, 1.0, 1.0, 1.0)
    s = event_scores(["A man with short hair."], ["He smiles."])     # nothing to recall; the claim is unsupported
    assert s.recall == 1.0 and s.precision == 0.0 and s.tem_recall == 1.0 and s.tem_precision == 0.0


def test_failures_are_counted_and_excluded():
    base = RuleExtractor()

    def flaky(caption):
        if "boom" in caption:
            raise RuntimeError("extractor down")
        return base(caption)

    def bad_judge(events, description):
        return ["entailment"] * len(events) if "smiles" not in description else ["maybe"] * len(events)

    s = event_scores(["She nods.", "She nods. boom", "She nods."], ["She nods.", "She nods.", "She frowns."],
                     extractor=flaky)
    assert (s.n_samples, s.n_scored, s.n_failed) == (3, 2, 1)
    assert s.failures[0][0] == 1 and "extractor down" in s.failures[0][1]
    assert s.recall == pytest.approx(0.5)   # mean of 1 and 0 over the scored samples only
    s = event_scores(["She nods.", "She smiles."], ["She nods.", "She nods."], judge=bad_judge)
    assert s.n_failed == 1 and "labels must be one of" in s.failures[0][1] and s.autodq == 1.0
    s = event_scores(["She nods."], ["She nods."], judge=lambda ev, d: [])   # wrong number of labels
    assert s.n_failed == 1 and math.isnan(s.autodq) and math.isnan(s.tem)


def test_ten_event_cap():
    calls = []

    def judge(events, description):
        calls.append(len(events))
        return ["entailment"] * len(events)

    many = ", then ".join(["she blinks"] * 14) + "."
    s = event_scores([many], [many], judge=judge)
    assert len(s.samples[0].reference_events) == 10 and len(s.samples[0].prediction_events) == 10
    assert max(calls) == 10
    s = event_scores([many], ["She blinks."], max_events=3)
    assert len(s.samples[0].reference_events) == 3 and s.recall == 1.0


def test_precomputed_reference_events():
    s = event_scores(["She smiles."], ["She nods, then smiles."], reference_events=[["the person smiles"]])
    assert s.samples[0].reference_events == ["the person smiles"] and s.recall == 1.0 and s.precision == 0.5


def test_unknown_names_and_bad_input():
    with pytest.raises(ValueError, match="unknown judge 'gpt4': expected one of llm, rules"):
        event_scores(["a"], ["b"], judge="gpt4")
    with pytest.raises(ValueError, match="unknown extractor 'x': expected one of llm, rules"):
        make_extractor("x")
    with pytest.raises(ValueError, match="one per sample"):
        event_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="max_events"):
        event_scores(["a"], ["a"], max_events=0)
    assert set(JUDGES) == set(EXTRACTORS) == {"rules", "llm"}
    assert LABELS == ("entailment", "neutral", "contradiction")


# ---------------------------------------------------------------- the LLM tools (no model)


def test_llm_judge_prompt_and_parsing_with_a_fake_model():
    prompts = []

    def fake(prompt):
        prompts.append(prompt)
        return ('```json\n{"events": [{"event": "she smiles", "relationship": "Entailment"}, '
                '{"event": "she nods", "relationship": "neutral"}]}\n```')

    judge = make_judge("llm", generate=fake)
    assert judge(["she smiles", "she nods"], "She smiles broadly.") == ["entailment", "neutral"]
    p = prompts[0]
    assert "She smiles broadly." in p and "1. she smiles" in p and "2. she nods" in p and "contradiction" in p
    assert LLMJudge.parse("1: contradiction\n2: entailment", 2) == ["contradiction", "entailment"]
    with pytest.raises(ValueError, match="expected 3 labels"):
        LLMJudge.parse('{"events": [{"relationship": "entailment"}]}', 3)
    # a judge answering with the wrong count makes the sample fail, not the run
    s = event_scores(["She smiles, then nods."], ["She smiles."], judge=LLMJudge(generate=lambda p: "neutral"))
    assert s.n_failed == 1


def test_llm_extractor_parsing_with_a_fake_model():
    ext = LLMExtractor(generate=lambda p: "{'events': ['the woman smiles', 'the woman nods']}", max_events=10)
    assert ext("whatever") == ["the woman smiles", "the woman nods"]
    assert LLMExtractor(generate=lambda p: "1. a smiles\n2. a nods\n3. a blinks", max_events=2)("x") == \
        ["a smiles", "a nods"]
    assert "at most 10" in ext.prompt("She smiles.") and "She smiles." in ext.prompt("She smiles.")
    with pytest.raises(ValueError, match="could not read"):
        ext.parse("no events here")
    s = event_scores(["x"], ["y"], extractor=ext, judge=lambda ev, d: [ENTAILMENT] * len(ev))
    assert s.autodq == 1.0


def test_llm_never_downloads(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        LLMJudge("Qwen/Qwen2-0.5B-Instruct")
    with pytest.raises(FileNotFoundError, match="config.json"):
        LocalLM(tmp_path)
    with pytest.raises(ValueError, match="model_path"):
        make_judge("llm")


# ---------------------------------------------------------------- CIDEr-D, ROUGE-L, LCS


def test_tokenize_and_lcs():
    assert tokenize("She doesn't smile, at ALL.") == ["she", "does", "n't", "smile", "at", "all"]
    assert lcs_length("abcbdab", "bdcaba") == 4 and lcs_length([], [1]) == 0


def test_cider_d_hand_cases():
    L = math.log(2)   # two samples: every n-gram found in one of them has idf log 2 - log 1
    # perfect short captions: n = 1, 2 have cosine 1, n = 3, 4 are empty -> mean 0.5 -> 5.0
    score, per = cider_d([["a b"], ["c d"]], ["a b", "c d"])
    np.testing.assert_allclose(per, [5.0, 5.0])
    # clipping and the length penalty: hypothesis "a a b" vs reference "a b"
    # unigrams: h = (2L, L), r = (L, L): sum min(h, r) r = 2L^2; norms L*sqrt(5), L*sqrt(2)
    # bigrams: h = {aa: L (df 0 -> idf log 2), ab: L}, r = {ab: L}: L^2 / (L sqrt 2 * L)
    # length = number of bigrams: 2 vs 1 -> exp(-1 / 72)
    _, per = cider_d([["a b"], ["c d"]], ["a a b", "c d"])
    want = (2 / math.sqrt(10) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72) * 10
    assert per[0] == pytest.approx(want) and per[1] == pytest.approx(5.0)
    assert L > 0 and score == pytest.approx(5.0)
    # two references: the scores average over them; "x" is in no reference -> 0 for the second
    _, per = cider_d([["a b", "x y"], ["c d"]], ["a b", "c d"])
    # sample 0, ref "a b": unigram weights all L: cos 1; bigram cos 1 -> 5; ref "x y" -> 0
    assert per[0] == pytest.approx(2.5)


def test_cider_d_corpus_behaviour():
    # one sample: every idf is log(1) - log(1) = 0, so even a perfect caption scores 0
    score, _ = cider_d(["she raises her brows then smiles"], ["she raises her brows then smiles"])
    assert score == 0.0
    # identical captions in a corpus of distinct captions score 10 (all four n-gram orders)
    caps = ["the man raises his brows and nods", "a woman smiles broadly at the camera",
            "the child frowns then blinks twice", "he shakes his head slowly and frowns"]
    score, per = cider_d(caps, caps)
    np.testing.assert_allclose(per, 10.0)
    # n-grams shared by every reference carry no weight
    score, per = cider_d(["the cat sat", "the cat ran"], ["the cat sat", "the cat sat"])
    # sample 0: only "sat", "cat sat", "the cat sat" weigh: cosines 1, 1, 1, (no 4-gram) 0 -> 7.5
    assert per[1] == 0.0 and per[0] == pytest.approx(7.5)
    with pytest.raises(ValueError, match="one per sample"):
        cider_d(["a"], ["a", "b"])


def test_rouge_l_hand_cases():
    # LCS("a c e", "a b c d") = 2: P = 2/4, R = 2/3; F = (1 + b^2) P R / (R + b^2 P), b = 1.2
    _, per = rouge_l(["a c e"], ["a b c d"])
    p, r, b2 = 0.5, 2 / 3, 1.44
    assert per[0] == pytest.approx((1 + b2) * p * r / (r + b2 * p))
    # P and R maximised separately over the references
    # ("a b": P 2/3, R 1; "a b c d e f": P 1, R 1/2 -> P = 1 from one, R = 1 from the other)
    _, per = rouge_l([["a b", "a b c d e f"]], ["a b c"])
    assert per[0] == pytest.approx(1.0)
    score, per = rouge_l(["Same words, here!", "x"], ["same words here", ""])
    assert per[0] == pytest.approx(1.0) and per[1] == 0.0 and score == pytest.approx(0.5)
    assert rouge_l(["a b"], ["c d"])[0] == 0.0


def test_fec_bench_scores_columns():
    refs = [fec_caption("A man", [("beginning", "he raises his brows"), ("end", "he smiles")]),
            fec_caption("A woman", [("beginning", "she nods"), ("end", "she frowns")])]
    out = fec_bench_scores(refs, refs)
    assert set(out) >= {"CIDEr", "ROUGE-L", "AutoDQ", "TEM", "n_failed"}
    assert out["ROUGE-L"] == pytest.approx(1.0) and out["AutoDQ"] == 1.0 and out["TEM"] == 1.0
    assert out["CIDEr"] > 5
