"""The answer parser on real-looking EN and ZH answers (explicit CoT paragraphs, refusals, conflicts, negations)."""
import pytest

from c2ser.evaluation.parse import parse_emotion

CASES = [
    # official release styles
    ("这条语音的的情感为高兴", "happy"),
    ("说话者以缓慢的速度、高昂的语调和中等音量的声音说道：“不知道艾德林小姐有没有给我们准备好吃的点心呢。”"
     "通过分析语音特征，推测情绪为快乐，透露出一种期待和兴奋的喜悦。", "happy"),
    ("Spoken by a young woman with a slow pace, normal pitch, and low energy, the phrase 'Dear! dear!' "
     "conveys a happy and sincere tone.", "happy"),
    ("This speech conveys a happy and sincere tone.", "happy"),
    ("this speech conveys a sad and tired tone", "sad"),
    ("这条语音的情感为生气", "angry"), ("这条语音的情感为中性", "neutral"), ("这条语音的情感为伤心", "sad"),
    ("这条语音的情感为惊讶", "surprise"), ("这条语音的情感为害怕", "fear"), ("这条语音的情感为厌恶", "disgust"),
    ("这条语音的情感为悲伤。", "sad"), ("这条语音的情感为恐惧", "fear"), ("这条语音的情感为愤怒！", "angry"),
    ("情绪为开心", "happy"), ("推测情绪为平静，语气平和。", "neutral"), ("这段话听起来很难过", "sad"),
    # our templates
    ("The speaker says, at a fast pace with a high pitch and a loud voice: \"I hate waiting, it makes me sad.\" "
     "From these cues, the emotion is angry.", "angry"),
    ("The speaker says, at a slow pace with a low pitch and a quiet voice: \"I was so happy yesterday.\" "
     "From these cues, the emotion is sad.", "sad"),
    ("说话者以快速的语速、高昂的语调和响亮的音量说道：“别让我难过。”通过分析语音特征，推测情绪为生气。", "angry"),
    ("The emotion of this speech is neutral.", "neutral"), ("The emotion of this speech is surprised.", "surprise"),
    ("The emotion of this speech is fearful.", "fear"), ("The emotion of this speech is disgusted.", "disgust"),
    # synonyms / inflections
    ("Happy.", "happy"), ("joy", "happy"), ("The speaker sounds joyful.", "happy"), ("cheerful", "happy"),
    ("She is clearly excited about the trip.", "happy"), ("Anger.", "angry"), ("He is furious.", "angry"),
    ("The voice sounds annoyed.", "angry"), ("sadness", "sad"), ("The speaker is unhappy.", "sad"),
    ("A sorrowful voice.", "sad"), ("calm", "neutral"), ("The tone is neutral.", "neutral"),
    ("astonished", "surprise"), ("The speaker seems amazed by the news.", "surprise"), ("scared", "fear"),
    ("The speaker is afraid of the dark.", "fear"), ("terrified", "fear"), ("disgusting!", "disgust"),
    ("The speaker sounds disgusted by the food.", "disgust"), ("开心", "happy"), ("快乐", "happy"),
    ("喜悦", "happy"), ("恼火", "angry"), ("吃惊", "surprise"), ("反感", "disgust"), ("恶心", "disgust"),
    # negation
    ("The speaker is not angry, just sad.", "sad"), ("It isn't happy; it sounds neutral.", "neutral"),
    ("Not sad at all — the speaker is surprised.", "surprise"), ("不是生气，而是伤心。", "sad"),
    ("没有生气，很平静", "neutral"), ("He isn't angry, he is scared.", "fear"),
    # MELD-ish
    ("Joey sounds surprised.", "surprise"), ("Rachel's emotion is joy.", "happy"),
    # unparseable: refusals, nothing, conflicts
    ("I cannot determine the emotion from this audio.", None), ("", None), ("madam, hello", None),
    ("The speaker says hello.", None), ("无法判断。", None), ("happy or sad", None),
    ("The emotion is either angry or fearful.", None), ("既高兴又伤心", None),
    ("From these cues, the emotion is unclear.", None),
]


def test_at_least_sixty_cases():
    assert len(CASES) >= 60


@pytest.mark.parametrize("text,label", CASES)
def test_parse(text, label):
    res = parse_emotion(text)
    assert res.label == label, (text, res)
    assert res.ok == (label is not None)


def test_conflicts_and_out_of_set_are_reported():
    assert parse_emotion("happy or sad").reason == "conflicting: happy, sad"
    assert parse_emotion("nothing here").reason == "no label"
    res = parse_emotion("The emotion of this speech is disgusted.", allowed=["neutral", "happy"])
    assert res.label == "disgust" and not res.ok and res.reason == "out of set: disgust"
