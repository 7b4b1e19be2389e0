"""Task prompts (the official C2SER strings: the released checkpoint was trained on them)."""

EXPLICIT_PROMPT = "Please describe the speaking style, content, and the speaker's emotional state of this speech."
IMPLICIT_PROMPT = ("Please consider the speaking style, content, and directly provide the speaker's emotion "
                   "in this speech.")
# Short task prompt for the non-autoregressive Gen-SER / CE heads (prefill only, no decoding).
GEN_SER_PROMPT = "emotion:"

PROMPTS = {"explicit": EXPLICIT_PROMPT, "implicit": IMPLICIT_PROMPT, "gen-ser": GEN_SER_PROMPT}

# Varied questions (training option ``data.chat_prompts``, and the chat demo): the same two tasks asked in other
# words, in English and Chinese, and follow-ups asking for the reasoning. The answer is in the question's language.
EXPLICIT_QUESTIONS = {
    "en": [EXPLICIT_PROMPT, "Describe how this person speaks and how they feel.",
           "Explain the speaking style of this clip, what is said, and the emotion.",
           "Walk me through the voice in this recording and the emotion it shows."],
    "zh": ["请描述这段语音的说话风格、内容和说话人的情绪。", "分析一下这段话的语速、语调、音量和情绪。",
           "这段录音里的人是怎么说话的？情绪如何？"],
}
IMPLICIT_QUESTIONS = {
    "en": [IMPLICIT_PROMPT, "What emotion is this?", "How does the speaker feel?",
           "What is the emotion of this speech?", "Which emotion do you hear in this clip?"],
    "zh": ["这段语音是什么情绪？", "说话人的情绪是什么？", "这个人听起来是什么心情？", "请直接说出这段话的情感。"],
}
WHY_QUESTIONS = {
    "en": ["Why do you think so?", "What makes you say that?", "Why?"],
    "zh": ["为什么这么认为？", "你为什么这样判断？", "为什么？"],
}
