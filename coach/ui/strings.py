"""Every piece of text the app shows that is not from the essays, in English and Chinese (simplified; the traditional
form is converted with OpenCC's Taiwan standard, like the passages)."""

from __future__ import annotations

from typing import Any

from ..advice import SMALL_TALK_REPLIES, convert_script
from ..retrieve import MAX_QUERY_CHARS

T: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Coach",
        "tagline": "Advice from contact-centre veterans for the situation in front of you.",
        "input_label": "Describe the situation",
        "placeholder": "e.g. how do I handle an angry caller · 客户骂我怎么办",
        "send": "Ask", "clear": "New conversation",
        "situation": "Situation", "followup": "follow-up to", "closest": "Closest topic",
        "shortened": f"Your question was long, so only its first {MAX_QUERY_CHARS} characters were used.",
        "try_saying": "Try saying", "remember": "Remember",
        "show_passage": "Show the passage", "years": "{} years on the job", "unknown_author": "unknown",
        "ood_title": "The veterans have not written about this.",
        "ood_body": "Coach only answers from the veterans' essays, and none of them covers this question. "
                    "They write about situations like these:",
        "empty": "Type a situation to get advice.",
        "loading": "Coach is still loading the veterans' essays. Please ask again in a moment.",
        "warming": "Coach is warming up: loading the model and the veterans' essays. A question asked now is "
                   "answered as soon as it is ready.",
        "failed": "Coach could not open its index: {}",
        "related": "Related situations", "read": "Read essay {}",
        "why": "Why these passages", "why_hint": "Fused score = weighted sum of each ranker's normalised score: "
               "dense (meaning) search over the passages, their sentences and the editors' situation descriptions, "
               "and keyword (BM25) search over the passages and the descriptions, by words and, for Chinese "
               "questions, by character pairs. The descriptions count only as far as they explain the question "
               "better than the passages themselves do, so essays nobody described compete on equal terms.",
        "col_passage": "Passage", "col_fused": "Fused", "col_dense": "Dense cosine (rank)",
        "col_kw": "Keyword BM25 (rank)", "col_rankers": "Each ranker's share", "col_terms": "Matched terms",
        "feedback_hint": "Mark each card helpful (thumb up) or not helpful (thumb down). Only the question, the "
                         "passages shown and the time are stored.",
        "share": "Share / export", "link": "Link that reproduces this conversation", "export": "Download this answer",
        "reader_pick": "Essay", "reader_empty": "Pick an essay, or open one from a card.",
        "gallery_pick": "Situation", "gallery_draw": "Draw a situation", "gallery_show": "Show the advice",
        "discuss": "Discuss",
        "present_prev": "◀ Previous", "present_next": "Next ▶",
        "present_empty": "Ask a question or open a scenario first; its advice is shown here one card at a time.",
        "fb_refresh": "Refresh", "fb_situations": "Situations asked", "fb_unhelpful": "Cards marked not helpful",
        "fb_uncovered": "Questions no veteran covered (content gaps)",
        "fb_gaps": "Content gaps (CSV)", "fb_eval": "Unhelpful + uncovered as eval cases (JSONL)",
        "fb_eval_hint": "Eval cases for `coach eval`: fill in `relevant` phrases for the unhelpful ones.",
        "no_rows": "Nothing yet.",
        "up_file": "Essay file (.txt, .md or .html, at most 2 MB)", "up_add": "Add essay",
        "up_rebuild": "Rebuild the index", "up_disabled": "Adding essays is switched off.",
        "tabs": {"chat": "Coach", "gallery": "Scenarios", "reader": "Essays", "present": "Present",
                 "feedback": "Feedback", "upload": "Add essay"},
        "in_short": "In short", "in_short_note": "the editors' summary, not the veteran's words",
        "small_talk": SMALL_TALK_REPLIES["en"],
        "present_full": "Full window", "present_exit": "Exit (Esc)",
        "present_keys": "← / → move between cards · Esc leaves the full window",
        "up_status": "Status",
        "meta": {"author": "Author", "organisation": "Organisation", "industry": "Industry", "role": "Role",
                 "years": "Years", "script": "Script", "source": "File", "repairs": "Repairs"},
    },
    "zh": {
        "title": "Coach 客服教练",
        "tagline": "针对你眼前的情况,听听资深客服人的建议。",
        "input_label": "描述你遇到的情况",
        "placeholder": "例如:客户在电话里骂我怎么办 · how do I handle an angry caller",
        "send": "提问", "clear": "新对话",
        "situation": "情况", "followup": "接着上一个问题", "closest": "最接近的话题",
        "shortened": f"你的问题太长,只使用了前 {MAX_QUERY_CHARS} 个字。",
        "try_saying": "试着这样说", "remember": "记住这句话",
        "show_passage": "查看原文段落", "years": "从业 {} 年", "unknown_author": "作者不详",
        "ood_title": "资深客服们还没有写过这个问题。",
        "ood_body": "Coach 只根据资深客服的文章回答,这些文章都没有谈到这个问题。他们写过的情况包括:",
        "empty": "请输入你遇到的情况。",
        "loading": "Coach 正在加载文章,请稍后再问。",
        "warming": "Coach 正在启动:加载模型和资深客服的文章。现在提问,准备好后会立即回答。",
        "failed": "Coach 无法打开索引:{}",
        "related": "相关情况", "read": "阅读全文 {}",
        "why": "为什么是这些段落", "why_hint": "综合得分 = 各路检索归一化得分的加权和:段落、句子和编辑撰写的情境描述的语义(向量)检索,"
                  "以及段落和情境描述的关键词(BM25)检索(按词,中文问题也按相邻字对)。情境描述只在比段落本身更贴近问题时才计分,"
                  "没有描述的文章与有描述的同等竞争。",
        "col_passage": "段落", "col_fused": "综合", "col_dense": "语义相似度(排名)",
        "col_kw": "关键词 BM25(排名)", "col_rankers": "各路得分", "col_terms": "匹配词",
        "feedback_hint": "请为每张卡片标记有帮助(向上的拇指)或没帮助(向下的拇指)。只保存问题、显示的段落和时间。",
        "share": "分享 / 导出", "link": "可重现这段对话的链接", "export": "下载此回答",
        "reader_pick": "文章", "reader_empty": "请选择一篇文章,或从卡片中打开。",
        "gallery_pick": "情况", "gallery_draw": "随机抽一个情况", "gallery_show": "显示建议",
        "discuss": "讨论",
        "present_prev": "◀ 上一条", "present_next": "下一条 ▶",
        "present_empty": "请先提问或打开一个情景,这里会一次显示一张建议卡片。",
        "fb_refresh": "刷新", "fb_situations": "被问到的情况", "fb_unhelpful": "被标为没帮助的卡片",
        "fb_uncovered": "没有文章覆盖的问题(内容缺口)",
        "fb_gaps": "内容缺口 (CSV)", "fb_eval": "没帮助 + 未覆盖的问题,评测格式 (JSONL)",
        "fb_eval_hint": "供 `coach eval` 使用:请为没帮助的问题补上 `relevant` 短语。",
        "no_rows": "暂无记录。",
        "up_file": "文章文件(.txt、.md 或 .html,最大 2 MB)", "up_add": "添加文章",
        "up_rebuild": "重建索引", "up_disabled": "添加文章功能已关闭。",
        "tabs": {"chat": "教练", "gallery": "情景", "reader": "文章", "present": "演示", "feedback": "反馈",
                 "upload": "添加文章"},
        "in_short": "概要", "in_short_note": "编辑的概括,不是资深客服的原话",
        "small_talk": SMALL_TALK_REPLIES["zh"],
        "present_full": "全屏", "present_exit": "退出 (Esc)",
        "present_keys": "← / → 切换卡片 · Esc 退出全屏",
        "up_status": "状态",
        "meta": {"author": "作者", "organisation": "机构", "industry": "行业", "role": "岗位",
                 "years": "年资", "script": "文字", "source": "文件", "repairs": "修复"},
    },
}

LANG_CHOICES = [("English", "en"), ("中文", "zh")]
SCRIPT_CHOICES = [("As written · 原文", "original"), ("简体", "hans"), ("繁體", "hant")]


def ui_text(lang: str, key: str, script: str = "original"):
    """The UI string `key` in `lang` ("en" or "zh"), in traditional characters when the reader chose them."""
    value = T.get(lang, T["en"])[key]
    return convert_script(value, "hant") if lang == "zh" and script == "hant" and isinstance(value, str) else value
