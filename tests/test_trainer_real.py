"""Issue 17 with the real model over the real corpus: a 611-character essay added on the trainer page (with its
metadata) is answered from after the rebuild, for "退款投诉怎么处理", which only it answers, with the form's author.

Slow (the real model; the corpus is embedded twice into a temporary index folder). The tuned model is reused from the
cache: an added essay with no descriptions does not change the training pairs."""

from __future__ import annotations

from coach import ui
from coach.config import Settings
from coach.feedback import FeedbackStore
from coach.retrieve import Coach

ESSAY = (
    "退款投诉,我是这样处理的\n"
    "做售后第六年,我接得最多的就是退款投诉。客户打进来的时候,往往已经等了很多天,开口就是一句:我的钱到底什么时候退?"
    "这时候千万不要急着解释流程,先把客户的订单号、付款方式、申请退款的时间一条一条记下来,再复述一遍给他听,让他知道你"
    "真的在处理他的事。\n"
    "第二步是查清楚卡在哪里。退款慢,多半是三种情况:商家还没确认收货,财务还没审核,或者银行在走账期。查到是哪一步,就"
    "把这一步告诉客户,并且说清楚预计几天到账。不要说“很快”“尽快”这种空话,客户最怕的就是没有下文。\n"
    "第三步是约定回电。我会跟客户说:今天下午五点之前我再给您打一次电话,告诉您审核的结果。说到就要做到,哪怕结果还没出"
    "来,也要按时打过去说明进度。很多投诉升级,不是因为钱退得慢,而是因为客服答应了回电却没有打。\n"
    "如果退款确实被系统卡住了,不要让客户自己去找商家或者银行,而是由我们去联系财务和商家,把进度同步给客户。遇到金额大、"
    "客户情绪很激动的,我会主动申请主管介入,并在工单里写清楚前因后果,避免客户再从头讲一遍。\n"
    "处理完以后,我会在系统里备注这次退款投诉的原因。每个月把这些原因汇总给主管,哪个环节经常卡住,就推动哪个环节改进。"
    "退款投诉处理得好,客户反而会更信任我们。新同事常问我有没有话术,我说最好的话术就是一句实话:"
    "您的钱现在在哪一步,哪天能到,我什么时候再联系您。说清楚这三件事,大多数退款投诉都能当场平息。\n"
)


def test_an_added_essay_answers_what_only_it_covers(real_embedder, tmp_path):
    assert 590 <= len(ESSAY) <= 640
    settings = Settings().with_overrides(
        index_dir=tmp_path / "index", upload_dir=tmp_path / "uploads", learned_file=tmp_path / "learned.toml"
    )
    coach = Coach(settings, embedder=real_embedder)
    before = coach.ask("退款投诉怎么处理", top_k=3)
    app = ui.CoachApp(
        ui.CoachHolder(coach=coach), FeedbackStore(tmp_path / "fb.sqlite3"), settings, upload_enabled=True
    )
    path = tmp_path / "退款投诉.txt"
    path.write_text(ESSAY, encoding="utf-8")
    form = ui.EssayForm(title="退款投诉,我是这样处理的", author="售后組 周組長", organisation="示例電商", years="6")
    ok, report, cleaning = app.add_essay(path, form)
    assert ok and cleaning is not None and cleaning.passages >= 2, report
    progress: list[str] = []
    assert "index ready" in app.rebuild(lambda f, m: progress.append(m))
    assert any("embedding" in m for m in progress)
    served = app.holder.get()
    assert settings.index_dir in served.index.build_dir.parents
    answer = served.ask("退款投诉怎么处理", top_k=3)
    essay_id = cleaning.essay_id
    assert essay_id not in [h.essay.id for h in before.results]
    assert not answer.out_of_domain, answer.evidence
    top3 = [h.essay for h in answer.results]
    assert essay_id in [e.id for e in top3], [(h.chunk.id, round(h.score, 3)) for h in answer.results]
    assert next(e for e in top3 if e.id == essay_id).author == "售后組 周組長"
    n, question = app.essay_answers(essay_id)
    assert n == cleaning.passages and question
