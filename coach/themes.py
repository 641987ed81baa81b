"""A small bilingual list of the situations the veterans write about: labels, example questions, discussion prompts.

Used by the UI to name the situation Coach recognised, to suggest related situations and to fill the trainer's
scenario gallery. Keywords are matched on the lower-cased, simplified form of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Theme:
    id: str
    en: str                        # label
    zh: str
    example_en: str                # a situation an agent might type
    example_zh: str
    prompt_en: str                 # a discussion prompt for a training session
    prompt_zh: str
    keywords: tuple[str, ...]      # lower-case English words and simplified Chinese terms
    related: tuple[str, ...] = ()

    def label(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    def example(self, lang: str) -> str:
        return self.example_zh if lang == "zh" else self.example_en

    def prompt(self, lang: str) -> str:
        return self.prompt_zh if lang == "zh" else self.prompt_en


THEMES: tuple[Theme, ...] = (
    Theme("angry-caller", "An angry or abusive caller", "客户情绪激动、辱骂",
          "How do I handle an angry caller?", "客户在电话里破口大骂,我该怎么办?",
          "What is the caller really upset about, and what would you say in your first ten seconds?",
          "客户真正生气的是什么?你开口的前十秒会说什么?",
          ("angry", "anger", "furious", "shout", "yell", "abus", "rude", "swear", "insult", "calm down", "upset",
           "complain", "生气", "发火", "骂", "辱骂", "情绪", "投诉", "脾气", "冷静", "愤怒", "吼"),
          ("admitting-mistakes", "understanding-needs", "value-of-job")),
    Theme("first-calls-nerves", "Nerves on your first calls", "新人接线紧张",
          "My voice shakes when the phone rings", "刚上线接电话很紧张怎么办?",
          "Remember your first week. What helped, and what would you tell a new colleague?",
          "回想你的第一周:什么帮到了你?你会对新同事说什么?",
          ("nervous", "first call", "first day", "first week", "new agent", "shak", "anxious", "scared", "afraid",
           "panic", "紧张", "新人", "颤抖", "心跳", "害怕", "第一次", "刚入职", "新手"),
          ("value-of-job", "angry-caller", "understanding-needs")),
    Theme("rules-red-lines", "Rules and red lines", "规则与红线",
          "A customer asks me to break the rules for him", "客户要求我违反规定帮他操作",
          "Where is the red line in your job, and how do you say no without losing the customer?",
          "你工作中的红线在哪里?怎样拒绝客户又不失去客户?",
          ("rule", "policy", "security", "refuse", "red line", "not allowed", "bend", "switch off", "say no",
           "红线", "规定", "原则", "拒绝", "安全", "破解", "违规", "制度"),
          ("admitting-mistakes", "angry-caller", "understanding-needs")),
    Theme("admitting-mistakes", "Admitting a mistake", "承认错误",
          "Should I admit a mistake to the customer?", "我给客户说错了信息,要不要承认?",
          "When did admitting a mistake earn you trust? What stopped you the last time?",
          "什么时候承认错误反而赢得了信任?上一次是什么让你犹豫?",
          ("mistake", "apolog", "sorry", "fault", "wrong", "error", "admit", "错误", "道歉", "承认", "失误",
           "面子", "说错", "认错"),
          ("angry-caller", "rules-red-lines", "value-of-job")),
    Theme("elderly-customers", "Elderly customers", "老年客户",
          "An elderly customer can't find the button in the app", "老年客户不会用手机银行怎么办?",
          "How would you guide someone who has never used a smartphone app through one step?",
          "你会怎样一步一步引导从没用过手机应用的长辈?",
          ("elderly", "old man", "old lady", "older", "grandma", "grandpa", "grandmother", "grandfather", "senior", "aged",
           "老人", "老年", "长辈", "大爷", "阿姨", "截图", "爷爷", "奶奶"),
          ("understanding-needs", "many-chats", "angry-caller")),
    Theme("many-chats", "Many chats at once", "同时接待多个会话",
          "I have five chats open at once and fall behind", "在线同时接待好几个客户忙不过来",
          "Which replies can be prepared in advance, and which must be written for this customer?",
          "哪些回复可以提前准备,哪些必须为这位客户单独写?",
          ("chats", "multiple", "at once", "online", "chatbot", "bot", "multitask", "several customers", "多个",
           "同时", "在线", "会话", "文字", "智能", "机器人", "话术"),
          ("understanding-needs", "elderly-customers", "value-of-job")),
    Theme("leading-teams", "Hiring and leading a team", "招聘与带团队",
          "How do I pick good people for my team?", "怎么招到合适的客服、带好团队?",
          "What would you look for in a candidate's first five minutes? What do you tell them about the job?",
          "面试的前五分钟你会看什么?你会怎样向应聘者介绍这份工作?",
          ("hire", "hiring", "interview", "team", "lead", "manage", "manager", "supervisor", "new hires",
           "招聘", "面试", "团队", "管理", "带队", "主管", "应聘", "培训", "总监"),
          ("value-of-job", "first-calls-nerves", "understanding-needs")),
    Theme("value-of-job", "Is this job worth it?", "客服工作的价值",
          "Is customer service a career worth staying in?", "做客服有没有前途?值得坚持吗?",
          "What has this job taught you that you use outside work?",
          "这份工作教会了你哪些在工作之外也用得上的东西?",
          ("worth", "meaning", "value", "career", "quit", "burnout", "burn out", "tired", "grow", "future",
           "价值", "意义", "坚持", "成长", "辞职", "初心", "职业", "前途", "放弃"),
          ("first-calls-nerves", "leading-teams", "angry-caller")),
    Theme("understanding-needs", "What the customer really needs", "理解客户真正的需求",
          "How do I find out what the customer actually wants?", "怎样弄清客户真正需要什么?",
          "Think of a call where the first question was not the real problem. How did you find the real one?",
          "想一通电话:客户的第一个问题并不是真正的问题。你是怎么找到真正问题的?",
          ("need", "understand", "listen", "really want", "actually want", "empathy", "需求", "倾听", "理解",
           "需要", "换位", "角度", "同理心"),
          ("angry-caller", "elderly-customers", "many-chats")),
)

BY_ID = {t.id: t for t in THEMES}


def _matches(keyword: str, text: str) -> bool:
    """Chinese terms match anywhere; English ones only at the start of a word ("lead" in "leading", not "mislead")."""
    if keyword.isascii():
        return re.search(r"\b" + re.escape(keyword.strip()), text) is not None
    return keyword in text


def score_themes(text: str) -> list[tuple[Theme, int]]:
    """Themes whose keywords occur in `text` (lower-cased, simplified), with the number of keywords matched."""
    low = f" {text.lower()} "
    scored = [(t, sum(1 for k in t.keywords if _matches(k, low))) for t in THEMES]
    return sorted(((t, n) for t, n in scored if n), key=lambda tn: -tn[1])
