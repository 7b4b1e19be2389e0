"""Answer parser on a table of realistic EN/ZH answers (implicit, explicit CoT, refusals, negations, MELD-ish)."""
from __future__ import annotations

import pytest

from c2ser.evaluation.parse import parse_emotion
from c2ser.labels import corpus_classes

OFFICIAL_ZH_EXPLICIT = ("说话者以缓慢的速度、高昂的语调和中等音量的声音说道：“不知道艾德林小姐有没有给我们准备好吃的点心呢。”"
                        "通过分析语音特征，推测情绪为快乐，透露出一种期待和兴奋的喜悦。")
OFFICIAL_EN_EXPLICIT = ("Spoken by a young woman with a slow pace, normal pitch, and low energy, the phrase 'Dear! dear!' "
                        "conveys a happy and sincere tone.")

# (answer, expected label or None, expected reason prefix)
CASES = [
    # official release / paper formats
    ("这条语音的的情感为高兴", "happy", "ok"),
    ("这条语音的的情感为生气", "angry", "ok"),
    ("这条语音的的情感为中性", "neutral", "ok"),
    ("这条语音的的情感为伤心", "sad", "ok"),
    ("这条语音的的情感为惊讶", "surprise", "ok"),
    ("这条语音的的情感为厌恶", "disgust", "ok"),
    ("这条语音的的情感为害怕", "fear", "ok"),
    ("这条语音的的情感为恐惧", "fear", "ok"),
    ("这条语音的的情感为悲伤", "sad", "ok"),
    (OFFICIAL_ZH_EXPLICIT, "happy", "ok"),
    (OFFICIAL_EN_EXPLICIT, "happy", "ok"),
    ("This speech conveys a happy and sincere tone.", "happy", "ok"),
    ("this speech conveys a sad and helpless tone", "sad", "ok"),
    ("this speech conveys an angry and impatient tone", "angry", "ok"),
    ("this speech conveys a neutral and calm tone", "neutral", "ok"),
    ("this speech conveys a surprised and curious tone", "surprise", "ok"),
    ("this speech conveys a fearful and anxious tone", "fear", "ok"),
    ("this speech conveys a disgusted and scornful tone", "disgust", "ok"),
    # explicit CoT whose description mentions other emotions: the conclusion wins
    ("说话者以快速的速度、高昂的语调和响亮音量的声音说道：“你怎么能这么开心？我快气死了！”通过分析语音特征，推测情绪为生气，"
     "透露出一种不满和愤怒。", "angry", "ok"),
    ("说话者以缓慢的速度、低沉的语调和轻柔音量的声音说道：“以前我们多快乐啊。”通过分析语音特征，推测情绪为伤心，透露出一种怀念与失落。",
     "sad", "ok"),
    ("Spoken by a middle-aged man with a fast pace, high pitch, and high energy, the phrase 'I'm so happy for you, "
     "really' conveys an angry and sarcastic tone.", "angry", "ok"),
    ("Spoken by a girl with a normal pace, low pitch, and low energy, the phrase 'We used to be so happy' conveys a "
     "sad and nostalgic tone.", "sad", "ok"),
    ("The speaker talks about being scared of the dark, but the emotion is happy.", "happy", "ok"),
    ("The words mention anger, yet the speaker's emotional state is calm.", "neutral", "ok"),
    ("Emotion: surprise", "surprise", "ok"),
    ("emotion: Disgust.", "disgust", "ok"),
    ("情感：惊讶", "surprise", "ok"),
    ("情绪是平静的。", "neutral", "ok"),
    # first label right after the marker wins over a nuance naming another emotion
    ("this speech conveys a happy and slightly surprised tone", "happy", "ok (first after marker)"),
    ("通过分析语音特征，推测情绪为惊讶，夹杂着一丝害怕。", "surprise", "ok (first after marker)"),
    # plain answers, synonyms and inflections
    ("Happy", "happy", "ok"), ("happiness", "happy", "ok"), ("Joy.", "happy", "ok"), ("joyful", "happy", "ok"),
    ("The speaker sounds cheerful.", "happy", "ok"), ("She is glad to see him.", "happy", "ok"),
    ("He sounds excited!", "happy", "ok"), ("ANGRY", "angry", "ok"), ("anger", "angry", "ok"),
    ("The speaker is furious.", "angry", "ok"), ("He's mad at her.", "angry", "ok"),
    ("She sounds annoyed.", "angry", "ok"), ("sadness", "sad", "ok"), ("a voice full of sorrow", "sad", "ok"),
    ("The speaker is unhappy.", "sad", "ok"), ("neutral", "neutral", "ok"), ("calm", "neutral", "ok"),
    ("surprised", "surprise", "ok"), ("He was astonished.", "surprise", "ok"), ("amazed", "surprise", "ok"),
    ("fear", "fear", "ok"), ("She is afraid.", "fear", "ok"), ("scared", "fear", "ok"),
    ("frightened", "fear", "ok"), ("disgusting!", "disgust", "ok"), ("disgusted", "disgust", "ok"),
    ("开心", "happy", "ok"), ("快乐", "happy", "ok"), ("喜悦", "happy", "ok"), ("愉快", "happy", "ok"),
    ("愤怒", "angry", "ok"), ("恼火", "angry", "ok"), ("难过", "sad", "ok"), ("平静", "neutral", "ok"),
    ("中立", "neutral", "ok"), ("惊奇", "surprise", "ok"), ("吃惊", "surprise", "ok"), ("反感", "disgust", "ok"),
    ("恶心", "disgust", "ok"), ("说话人听起来很不开心。", "sad", "ok"),
    # word boundaries
    ("Yes, madam, I will bring the tea.", None, "no label"),
    ("The saddle was left in the barn.", None, "no label"),
    # negations
    ("The speaker is not angry, just sad.", "sad", "ok"),
    ("She isn't happy; she sounds sad.", "sad", "ok"),
    ("He doesn't sound angry at all, he is calm.", "neutral", "ok"),
    ("The speaker is not happy.", None, "no label"),
    ("这不是生气，而是伤心。", "sad", "ok"),
    ("他没有生气，只是有点惊讶。", "surprise", "ok"),
    ("她并不是很害怕", None, "no label"),
    ("他非常生气", "angry", "ok"),
    # refusals and off-topic answers
    ("I cannot determine the emotion from this audio.", None, "no label"),
    ("I'm sorry, I can't tell how the speaker feels.", None, "no label"),
    ("I cannot determine whether the speaker is angry.", None, "no label"),
    ("无法判断说话人的情绪。", None, "no label"),
    ("无法判断是否生气", None, "no label"),
    ("The speaker says: 'Could you pass me the salt?'", None, "no label"),
    ("", None, "no label"),
    # two labels
    ("happy or sad", None, "conflicting: happy, sad"),
    ("The speaker might be angry or afraid.", None, "conflicting: angry, fear"),
    ("既有高兴也有伤心", None, "conflicting: happy, sad"),
    # two labels right after a conclusion marker, joined as a pair or as alternatives
    ("Judging by the pitch, the emotion is happy or sad.", None, "conflicting: happy, sad"),
    ("The emotion is either angry or afraid.", None, "conflicting: angry, fear"),
    ("this speech conveys a happy and sad tone", None, "conflicting: happy, sad"),
    ("这条语音的情感为生气和高兴", None, "conflicting: happy, angry"),
    ("通过分析语音特征，推测情绪为伤心或害怕。", None, "conflicting: sad, fear"),
    ("推测情绪为生气、厌恶", None, "conflicting: angry, disgust"),
    # a truncated conclusion: the quoted transcript is not the answer
    ('The speaker says, at a slow pace with a low pitch and a quiet voice: "I am so sad". From these cues, '
     "the emotion is", None, "no label"),
    ("Spoken by a girl with a low pitch, the phrase 'We used to be so happy' conveys", None, "no label"),
    ("说话者以缓慢的语速、低沉的语调和轻柔的音量说道：“我真的好难过”。通过分析语音特征，推测情绪为", None, "no label"),
    ('With a quiet voice and a low pitch that sound sad, the speaker says: "What a joy". The emotion is',
     "sad", "ok"),
    # MELD-ish answers
    ("Joey sounds joyful here.", "happy", "ok"),
    ("Rachel is in a neutral mood.", "neutral", "ok"),
    ("Ross: surprised", "surprise", "ok"),
    ("The emotion of the speaker is sadness.", "sad", "ok"),
]


def test_table_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("text,label,reason", CASES)
def test_parse_table(text, label, reason):
    r = parse_emotion(text)
    assert r.label == label, (text, r)
    assert r.reason.startswith(reason), (text, r)


def test_allowed_set_marks_out_of_set():
    casia = corpus_classes("casia")
    assert "disgust" not in casia
    r = parse_emotion("这条语音的的情感为厌恶", allowed=casia)
    assert (r.label, r.reason, r.valid) == ("disgust", "out-of-set: disgust", False)
    ok = parse_emotion("这条语音的的情感为厌恶", allowed=corpus_classes("meld"))
    assert (ok.label, ok.valid) == ("disgust", True)


def test_explicit_false_reads_whole_text():
    text = "Happy words were spoken, but the emotion is sad."
    assert parse_emotion(text).label == "sad"
    assert parse_emotion(text, explicit=False).reason == "conflicting: happy, sad"


def test_marker_without_label_falls_back_to_whole_text():
    assert parse_emotion("The speaker sounds angry. The emotion is hard to pin down.").label == "angry"
