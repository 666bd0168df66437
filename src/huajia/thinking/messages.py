"""Everything the thinking loop says, in English and Chinese: one table, looked up by key in
the prompt's language (``text(key, lang, **values)``)."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {  # key → (English, 中文)
    # the plan's decision, by how the loop is set to paint
    "plan_regions": ("paint each region with its sub-caption", "按各区域的子描述作画"),
    "plan_steer": ("paint from the whole prompt; steer a region by its sub-caption once a look "
                   "finds it wrong", "先按整句作画，哪个区域画错了再用它的子描述引导"),
    "plan_compose": ("paint from the whole prompt; after the end, paint a wrong region's "
                     "sub-caption alone, check it and paste it into its place",
                     "先按整句作画；画完后，画错的区域按子描述单独画、检查后放回它的位置"),
    "plan_repaint": ("paint from the whole prompt; after the end, repaint a wrong region with its "
                     "sub-caption", "先按整句作画，画完后用子描述重画画错的区域"),
    # the planner
    "plan_rejected": ("the layout model's plan was not used: {reason}",
                      "布局模型的计划没有采用：{reason}"),
    "plan_bands": ("plan in vertical bands instead", "改为按竖条分区"),
    # what a family cannot do (said once)
    "no_regions": ("regions are not supported for this family ({family})",
                   "这个模型家族（{family}）不支持分区作画"),
    "steer_whole": ("thinking will steer the whole picture", "边想边画将引导整幅画"),
    "no_preview": ("this family ({family}) shows no half-made picture at a step",
                   "这个模型家族（{family}）在中途看不到半成品"),
    "look_after_end": ("no pauses; look after the end", "不暂停，画完再看"),
    # pauses
    "keep_going": ("keep going", "继续"),
    "fix_after_end": ("keep going; fix it after the end", "继续画完，画完后再修这个区域"),
    "already_right": ("the picture already matches: no more pauses", "画面已经对了，不再暂停"),
    "restart_fresh": ("start again from fresh noise ({attempt}/{restarts})",
                      "从新的噪声重新开始（{attempt}/{restarts}）"),
    "go_back": ("go back to start {start}, whose first look was best ({score:.0f})",
                "回到第 {start} 次起稿（初看得分 {score:.0f}，最好）"),
    # steering
    "steer_guidance": ("stronger guidance here", "加强该区域的引导"),
    "steer_noise": ("fresh noise into the region", "向该区域重新注入噪声"),
    "steer_caption": ("new sub-caption: {caption}", "改写子描述：{caption}"),
    "joiner": ("; ", "；"),
    # reflection
    "keep": ("keep", "保留"),
    "repaint": ("repaint", "重画"),
    "budget_spent": ("compute budget spent", "计算预算已用完"),
    "keep_best_so_far": ("keep the best picture so far", "保留目前最好的一张"),
    "done": ("done", "完成"),
    "satisfied": ("satisfied", "满意"),
    "best_kept": ("best picture kept", "保留最好的一张"),
    # composing
    "region_right": ("the region itself is right: keep it", "这个区域本身画对了，保留"),
    "painted_alone": ("painted '{caption}' alone: best so far scored {score:.0f} (seed {seed}); "
                      "the region now {here:.0f}",
                      "单独画「{caption}」：目前最好的一张 {score:.0f} 分（种子 {seed}）；"
                      "原处 {here:.0f} 分"),
    "paste": ("paste it into the region", "放进这个区域"),
    "no_better": ("no better than what is there: keep", "不比原处好，不换"),
    # the critic
    "all_correct": ("everything matches the prompt", "全部正确"),
    # frame titles in the timeline
    "title_abandoned": ("abandoned at step {step}", "第 {step} 步放弃"),
    "title_pause": ("pause at step {step}/{steps}", "第 {step}/{steps} 步暂停"),
    "title_finished": ("finished", "画完"),
    "title_composed": ("after composing {regions}", "单独画并放入 {regions} 之后"),
    "title_repainted": ("after repaint {n}", "第 {n} 次重画之后"),
    # the timeline's last tile, and plain vs thinking (huajia compare)
    "final_satisfied": ("final: satisfied", "最终：满意"),
    "final_best": ("final: best picture kept", "最终：保留最好的一张"),
    "cost": ("{nfe} network evaluations", "共 {nfe} 次网络计算"),
    "label_plain": ("plain (one pass)", "一次画成"),
    "label_thinking": ("thinking while painting", "边想边画"),
    "compare_note": ("{summary} ({nfe} NFE; plain: {plain})",
                     "{summary}（{nfe} 次网络计算；一次画成 {plain} 次）"),
}


def text(key: str, lang: str, **values) -> str:
    english, chinese = MESSAGES[key]
    return (chinese if lang == "zh" else english).format(**values)
