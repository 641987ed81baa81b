"""The situations the veterans write about, as the UI shows them: labels, example questions, discussion prompts.

One source: the situations themselves (id, English and Chinese label, trigger words) are `data/themes.json`, the file
the query bridge reads (`bridge.load_themes`). This module only adds what the UI needs on top, keyed by the same ids:
an example question in each language (the empty chat screen, the trainer's scenario gallery, related situations), a
discussion prompt for a training session, and the neighbouring situations to suggest next. A situation added to
the JSON file shows up in the UI with its label as the example and a generic prompt until it gets an entry in
`UI_EXTRAS`.

Recognising a situation in a text uses the bridge's rules, so the UI names the same situations that steered the
search: English triggers match as whole (lightly stemmed) words or phrases, Chinese triggers anywhere in the
simplified text.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import bridge


@dataclass(frozen=True)
class Theme:
    id: str
    en: str  # label
    zh: str
    example_en: str  # a situation an agent might type
    example_zh: str
    prompt_en: str  # a discussion prompt for a training session
    prompt_zh: str
    keywords: tuple[str, ...]  # the JSON file's triggers: English words/phrases and Chinese terms
    related: tuple[str, ...] = ()
    description_zh: str = ""  # how the essays talk about it (the bridge's pivot text)

    def label(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    def example(self, lang: str) -> str:
        return self.example_zh if lang == "zh" else self.example_en

    def prompt(self, lang: str) -> str:
        return self.prompt_zh if lang == "zh" else self.prompt_en


# id -> (example question EN, ZH; discussion prompt EN, ZH; related situations). UI text only: labels and triggers
# live in data/themes.json.
UI_EXTRAS: dict[str, tuple[str, str, str, str, tuple[str, ...]]] = {
    "angry-caller": (
        "How do I handle an angry caller?",
        "客户在电话里破口大骂,我该怎么办?",
        "What is the caller really upset about, and what would you say in your first ten seconds?",
        "客户真正生气的是什么?你开口的前十秒会说什么?",
        ("own-temper", "conflict-negotiation", "empathy"),
    ),
    "own-temper": (
        "How do I keep my temper when a customer is annoying?",
        "客户很难缠,我自己情绪上来了怎么办?",
        "What do you do in the five seconds after a customer gets under your skin?",
        "客户让你火大的那五秒钟,你会做什么?",
        ("angry-caller", "conflict-negotiation", "expectations"),
    ),
    "nerves": (
        "My voice shakes and I panic when the phone rings",
        "刚上线接电话很紧张怎么办?",
        "Remember your first week. What helped, and what would you tell a new colleague?",
        "回想你的第一周:什么帮到了你?你会对新同事说什么?",
        ("new-hire-slump", "preparation", "angry-caller"),
    ),
    "new-hire-slump": (
        "A new hire on my team has lost all motivation",
        "新人培训时学不进去,状态很低落怎么办?",
        "What would you say to a new colleague who has stopped listening in training?",
        "新同事培训时心不在焉,你会对他说什么?",
        ("nerves", "team-management", "value-meaning"),
    ),
    "red-lines": (
        "A customer asks me to crack his password",
        "客户要求我帮他破解密码,可以吗?",
        "Where is the red line in your job, and how do you say no without losing the customer?",
        "你工作中的红线在哪里?怎样拒绝客户又不失去客户?",
        ("admit-mistakes", "angry-caller", "conflict-negotiation"),
    ),
    "admit-mistakes": (
        "Should I admit a mistake to the customer?",
        "我给客户说错了信息,要不要承认?",
        "When did admitting a mistake earn you trust? What stopped you the last time?",
        "什么时候承认错误反而赢得了信任?上一次是什么让你犹豫?",
        ("angry-caller", "red-lines", "review-feedback"),
    ),
    "condescension": (
        "I get impatient when customers ask basic questions",
        "客户问的问题太低级,我忍不住有优越感",
        "Think of a question you found too basic. How would your parents have asked it?",
        "想一个你觉得太低级的问题:如果是你父母来问,会是什么样?",
        ("empathy", "plain-language", "expectations"),
    ),
    "empathy": (
        "How do I see things from the customer's perspective?",
        "怎样做到换位思考、理解客户?",
        "If you were the caller, what would you want to hear first?",
        "如果打电话的人是你,你最想先听到什么?",
        ("angry-caller", "condescension", "elderly"),
    ),
    "plain-language": (
        "The customer doesn't understand my explanation of the jargon",
        "客户听不懂我解释的业务术语怎么办?",
        "Take one knowledge-base answer and say it in your own words to a customer who is not an expert.",
        "挑一条知识库答案,用你自己的话讲给一位外行客户听。",
        ("phrase-library", "condescension", "elderly"),
    ),
    "expectations": (
        "The customer won't listen and is uncooperative",
        "客户不配合,明明自己开通的业务还不承认",
        "Which of your expectations of customers do you hold without noticing?",
        "你对客户有哪些不知不觉的期望?",
        ("own-temper", "empathy", "conflict-negotiation"),
    ),
    "elderly": (
        "An elderly customer can't find the button in the app",
        "老年客户不会用手机银行怎么办?",
        "How would you guide someone who has never used a smartphone app through one step?",
        "你会怎样一步一步引导从没用过手机应用的长辈?",
        ("empathy", "plain-language", "multi-chat"),
    ),
    "multi-chat": (
        "I have several chats at once and fall behind",
        "在线同时接待多个会话忙不过来怎么办?",
        "Which replies can be prepared in advance, and which must be written for this customer?",
        "哪些回复可以提前准备,哪些必须为这位客户单独写?",
        ("phrase-library", "preparation", "elderly"),
    ),
    "phrase-library": (
        "How do I build a good set of canned replies?",
        "在线客服的短语库和话术怎么整理?",
        "Which canned reply do you change most often, and why?",
        "你最常改动的是哪一条快捷回复?为什么?",
        ("multi-chat", "plain-language", "preparation"),
    ),
    "preparation": (
        "How do I prepare before my shift when a new promotion launches?",
        "新活动上线前我该怎么准备?",
        "What do you check before your first call of the day?",
        "每天接第一通电话之前,你会先确认哪些事?",
        ("multi-chat", "nerves", "review-feedback"),
    ),
    "review-feedback": (
        "How do I learn from a bad rating?",
        "收到客户差评后怎么复盘?",
        "Pick last week's worst rating. What pattern does it belong to?",
        "挑出上周最差的一条评价:它属于哪一类反复出现的问题?",
        ("admit-mistakes", "good-agent", "preparation"),
    ),
    "conflict-negotiation": (
        "How do I avoid an argument with a customer who wants compensation?",
        "怎样避免和投诉客户发生冲突?",
        "What could you offer a customer who insists on getting a result, without arguing?",
        "面对坚持要讨个说法的客户,你能提供什么而不与他争吵?",
        ("angry-caller", "own-temper", "expectations"),
    ),
    "paid-services": (
        "Is it right to sell paid services to customers?",
        "推销收费的增值服务,客户会反感吗?",
        "When is a paid service better service? When is it not?",
        "什么时候收费服务反而是更好的服务?什么时候不是?",
        ("value-meaning", "product-mindset", "red-lines"),
    ),
    "career-growth": (
        "I was promoted to team lead and older staff doubt me",
        "刚当上组长,老员工不服我怎么办?",
        "What did your first month as a lead teach you?",
        "刚带队的第一个月,你学到了什么?",
        ("team-management", "hiring", "value-meaning"),
    ),
    "hiring": (
        "How do I interview and pick the right candidate?",
        "怎么招到合适的客服?面试看什么?",
        "What would you look for in a candidate's first five minutes? What do you tell them about the job?",
        "面试的前五分钟你会看什么?你会怎样向应聘者介绍这份工作?",
        ("team-management", "career-growth", "value-meaning"),
    ),
    "team-management": (
        "My team's morale is low and the KPI is slipping",
        "团队士气低落、接听率上不去怎么办?",
        "What is one thing you would change in your team this month, and how will you know it worked?",
        "这个月你会在团队里改变哪一件事?怎样知道它有效?",
        ("career-growth", "hiring", "new-hire-slump"),
    ),
    "value-meaning": (
        "Is this job worth it? What is its value?",
        "做客服有什么价值和意义?",
        "What has this job taught you that you use outside work?",
        "这份工作教会了你哪些在工作之外也用得上的东西?",
        ("good-agent", "product-mindset", "career-growth"),
    ),
    "good-agent": (
        "What skills and qualities make a good agent?",
        "一个好客服需要哪些素质?",
        "Think of the best agent you have worked with. What did they do that others did not?",
        "想一位你共事过的最好的客服:他做了哪些别人没做的事?",
        ("value-meaning", "empathy", "review-feedback"),
    ),
    "product-mindset": (
        "The job feels boring and passive, just waiting for calls",
        "天天被动等电话,工作很枯燥怎么办?",
        "What did a customer tell you this week that your product team should hear?",
        "这周哪位客户说的话,应该让产品团队听到?",
        ("value-meaning", "paid-services", "review-feedback"),
    ),
}

# Shown on the empty chat screen (first four, in both languages) and listed in the "not covered" card.
FEATURED = ("angry-caller", "nerves", "red-lines", "admit-mistakes", "elderly", "multi-chat", "hiring", "value-meaning")

_GENERIC_PROMPT = ("What would you do in this situation, and why?", "遇到这种情况你会怎么做?为什么?")


def _with_ui_text(t: bridge.Theme) -> Theme:
    ex_en, ex_zh, pr_en, pr_zh, related = UI_EXTRAS.get(t.id, (t.en, t.zh, *_GENERIC_PROMPT, ()))
    return Theme(t.id, t.en, t.zh, ex_en, ex_zh, pr_en, pr_zh, tuple(t.triggers), related, t.description_zh)


_SOURCE: dict[str, bridge.Theme] = {t.id: t for t in bridge.load_themes()}  # data/themes.json, read once
THEMES: tuple[Theme, ...] = tuple(_with_ui_text(t) for t in _SOURCE.values())  # in the file's order
BY_ID = {t.id: t for t in THEMES}
FEATURED_THEMES: tuple[Theme, ...] = tuple(BY_ID[i] for i in FEATURED if i in BY_ID) or THEMES


def _english_keys(text: str) -> set[tuple[str, ...]]:
    """Every run of up to bridge.MAX_PHRASE_WORDS stemmed content words (how the bridge matches English triggers)."""
    words = [bridge.stem(w) for w in bridge.english_words(text) if w not in bridge.STOPWORDS]
    n_max = bridge.MAX_PHRASE_WORDS
    return {tuple(words[i : i + n]) for n in range(1, n_max + 1) for i in range(len(words) - n + 1)}


def score_themes(text: str) -> list[tuple[Theme, int]]:
    """Situations whose triggers occur in `text` (simplified Chinese or English), with the number matched, best
    first (ties in the file's order)."""
    from .clean import to_simplified

    keys, simplified = _english_keys(text or ""), to_simplified(text or "")
    scored = []
    for t in THEMES:
        n = _SOURCE[t.id].matches(keys, simplified)
        if n:
            scored.append((t, n))
    return sorted(scored, key=lambda tn: -tn[1])
