"""The questions the latency benches ask: the evaluation queries plus the situations below, English and Chinese.

Every question is distinct (no repeats), so a query cache cannot flatter the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

EN = [
    "a customer is shouting at me and won't let me speak",
    "how do I calm down someone who threatens to complain to the regulator",
    "the caller keeps repeating the same question, what should I do",
    "I made a mistake on a customer's bill and they are furious",
    "my manager only looks at call handling time, not quality",
    "I'm exhausted after back-to-back calls all day",
    "how do I say no to a customer without sounding rude",
    "an elderly caller can't understand the menu options",
    "what should I do when I don't know the answer to a question",
    "the customer asks me to break the rules just this once",
    "I cried after a call with an abusive customer",
    "how can I stay patient with a customer who insults me",
    "a new colleague asks me how to handle difficult calls",
    "customer wants a refund that policy does not allow",
    "how to apologise sincerely when the company was wrong",
    "the system is down and callers are waiting in the queue",
    "I'm afraid of being scored badly in quality checks",
    "a caller is in tears because her account was frozen",
    "how do I keep my voice friendly at the end of a long shift",
    "customer demands to speak to my supervisor immediately",
    "what did experienced agents learn in their first year",
    "how do you find meaning in a repetitive hotline job",
    "the customer hung up on me before I could help",
    "a caller asks for another person's phone number",
    "someone wants me to reset their password without verification",
    "I'm switching from phone support to online chat support",
    "chatbots are taking over, will my job disappear",
    "how to explain technical repairs to a non-technical customer",
    "the customer says the last agent promised something different",
    "I'm leading a team for the first time, how do I coach them",
    "my team member keeps making the same mistakes",
    "how do I motivate new hires who want to quit",
    "a customer's laptop broke again after repair",
    "dealing with a customer who has called ten times about one problem",
    "how to listen actively instead of rushing to a script",
    "the caller speaks a dialect I can barely understand",
    "I feel nobody appreciates the work we do on the phones",
    "what makes service truly what a customer needs",
    "how to turn a complaint into loyalty",
    "a bank customer suspects fraud on their card",
    "customer wants to cancel the contract because of bad signal",
    "how can I learn the product knowledge faster",
    "I froze when a caller asked about a product I've never heard of",
    "do veterans still get nervous on calls",
    "how should I handle silence on the line",
    "the customer is rude but technically right",
    "balancing efficiency targets with caring for the caller",
    "a caller wants compensation for lost business time",
    "how do I recover after a terrible call before the next one",
    "tips for remembering customer details during a call",
    "what is the hardest lesson from thirteen years of customer service",
    "how did agents adapt when the bank introduced smart service",
    "the customer laughs at me for being new",
    "how can a hotline agent grow a career",
    "I'm being asked to mentor trainees but I lack confidence",
    "a customer insists on a home visit that we can't provide",
    "how do I write a clear reply in online chat",
    "a caller is lonely and just wants to talk",
    "what should I never promise a customer",
    "how do I handle being blamed for a colleague's error",
]

ZH = [
    "客户在电话里一直骂人,我该怎么办",
    "客户说要投诉到工信部,我很害怕",
    "刚入职第一天接电话,手心全是汗",
    "客户要求退款但是不符合规定",
    "老人家听不懂语音菜单怎么办",
    "遇到不讲理的客户怎么保持耐心",
    "被客户骂哭了还要接下一个电话",
    "怎样真诚地向客户道歉",
    "客户反复问同一个问题",
    "系统故障,排队的客户越来越多",
    "质检分数太低,被主管批评了",
    "客户要我违规帮他查别人的信息",
    "怎么拒绝客户又不让他生气",
    "新员工总是想离职,怎么带他们",
    "第一次当组长,不知道怎么管理团队",
    "电脑修了三次还是坏,客户非常生气",
    "客户说之前的客服答应过他",
    "听不懂客户的方言怎么办",
    "做客服这么多年,觉得没有成就感",
    "什么样的服务才是客户真正需要的",
    "怎么把投诉客户变成忠实客户",
    "客户怀疑银行卡被盗刷",
    "信号不好客户要销户",
    "产品知识太多记不住",
    "客户问到我不知道的问题,脑子一片空白",
    "老员工接电话还会紧张吗",
    "电话那头客户一直不说话",
    "客户态度很差但是他说得有道理",
    "通话时长考核和服务质量怎么平衡",
    "客户要求赔偿误工费",
    "接完一个很糟糕的电话怎么调整心态",
    "十三年客服之路最大的收获是什么",
    "从语音客服转到在线智能客服",
    "智能客服会不会取代人工",
    "怎么给不懂技术的客户解释维修问题",
    "客户嘲笑我是新人",
    "客服人员的职业发展道路",
    "让我带新人,可是我自己也没信心",
    "客户坚持要上门服务",
    "在线文字回复怎么写得清楚",
    "客户很孤独,只想找人聊天",
    "哪些话绝对不能向客户承诺",
    "同事犯的错客户却怪到我头上",
    "12580热线的话务员是怎么工作的",
    "如何倾听客户而不是照本宣科",
    "客户情绪激动,大喊大叫要找领导",
    "连续加班好累,快撑不住了",
    "客户说我态度冷漠",
    "怎样用微笑的声音接电话",
    "客戶一直抱怨網速太慢",
    "遇到客戶情緒失控該怎麼安撫",
    "我常問自己:客戶到底需要什麼",
    "座席轉型做智能客服要學什麼",
    "新人培訓時心不在焉怎麼辦",
    "客戶要求立刻解決但流程需要三天",
    "被客戶投訴了,心裡很委屈",
    "如何在電話裡建立信任",
    "老客戶換了套餐後不滿意",
    "主管只看數據不看服務",
    "怎樣讓客戶感受到被尊重",
]


def eval_queries() -> list[str]:
    path = ROOT / "eval" / "queries.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line)["query"])
            except (ValueError, KeyError, TypeError):
                continue
    return out


def questions(minimum: int = 200) -> list[str]:
    """Distinct questions, English and Chinese interleaved so neither language clusters in time."""
    pool = []
    for a, b in zip(EN, ZH):
        pool += [a, b]
    pool += eval_queries()
    seen, out = set(), []
    for q in pool:
        if q not in seen:
            seen.add(q)
            out.append(q)
    if len(out) < minimum:  # no eval file: pad with the same situations, numbered, still distinct
        base = list(out)
        i = 2
        while len(out) < minimum:
            out += [f"{q} ({i})" for q in base][: minimum - len(out)]
            i += 1
    return out


def is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)
