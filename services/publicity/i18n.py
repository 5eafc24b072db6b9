"""The public pages' words, Chinese first, English one click away (``?lang=en``)."""

from __future__ import annotations

LANGS = ("zh", "en")

TEXT: dict[str, dict[str, str]] = {
    "site": {"zh": "作风问题整改公开", "en": "Public rectification results"},
    "tagline": {
        "zh": "群众提、媒体曝、纠风督、单位办、社会评",
        "en": "The public raises it, the media exposes it, the supervisor oversees it, the unit fixes it, "
        "society judges it",
    },
    "skip": {"zh": "跳到正文", "en": "Skip to content"},
    "nav": {"zh": "栏目", "en": "Sections"},
    "language": {"zh": "语言", "en": "Language"},
    "cases": {"zh": "案件查询", "en": "Case search"},
    "case": {"zh": "案件", "en": "Case"},
    "unit": {"zh": "被投诉单位", "en": "Unit complained about"},
    "responsible_unit": {"zh": "责任单位", "en": "Responsible unit"},
    "category": {"zh": "问题类别", "en": "Category"},
    "status": {"zh": "办理状态", "en": "Status"},
    "period": {"zh": "时间段", "en": "Period"},
    "period_hint": {"zh": "受理时间，按月、季度或年", "en": "when filed: a month, quarter or year"},
    "filed_at": {"zh": "受理时间", "en": "Filed"},
    "deadline": {"zh": "办结时限", "en": "Deadline"},
    "redo_count": {"zh": "返工次数", "en": "Redos"},
    "reopen_count": {"zh": "重新办理次数", "en": "Reopenings"},
    "escalations": {"zh": "督办次数", "en": "Escalations"},
    "timeline": {"zh": "办理过程", "en": "Timeline"},
    "problem_summary": {"zh": "问题摘要", "en": "Problem"},
    "result_summary": {"zh": "整改结果", "en": "Result"},
    "summaries": {"zh": "经审核公布的内容", "en": "As approved for publication"},
    "not_published": {"zh": "整改结果经审核后向社会公布。", "en": "The result is published once approved."},
    "any": {"zh": "全部", "en": "Any"},
    "search": {"zh": "查询", "en": "Search"},
    "found": {"zh": "共 {n} 件", "en": "{n} cases"},
    "none": {"zh": "没有符合条件的案件。", "en": "No case matches."},
    "other_lang": {"zh": "English", "en": "中文"},
    "back": {"zh": "返回案件查询", "en": "Back to case search"},
    "api": {"zh": "开放数据", "en": "Open data"},
    "privacy": {
        "zh": "本页不公开投诉人身份及联系方式，公开内容均经纠风办审核。",
        "en": "This site never shows who complained or how to reach them; what it shows was approved for publication.",
    },
    "prev": {"zh": "上一页", "en": "Previous"},
    "next": {"zh": "下一页", "en": "Next"},
    "pages": {"zh": "分页", "en": "Pages"},
    "exposed": {"zh": "曝光", "en": "Exposed"},
    "overdue": {"zh": "超期", "en": "Overdue"},
    "redo_n": {"zh": "（第 {n} 次返工）", "en": " (redo {n})"},
    "reopen_n": {"zh": "（第 {n} 次重新办理）", "en": " (reopening {n})"},
    # who held it up (倒查责任)
    "holds": {"zh": "各环节用时（倒查责任）", "en": "Who held it, and for how long"},
    "holds_overdue": {
        "zh": "本案已超期。下表列出每个环节由谁办理、用了多少个工作日，用时最长者在前。",
        "en": "This case is overdue. Below: who held each step and for how many working days, the longest first.",
    },
    "holds_was_overdue": {
        "zh": "本案办理中曾超期。下表列出每个环节由谁办理、用了多少个工作日，用时最长者在前。",
        "en": "This case went past a deadline. Below: who held each step and for how many working days, longest first.",
    },
    "holds_note": {
        "zh": "已结束的环节按工作日计；进行中的环节按自然日计至今日。",
        "en": "Finished spells count working days; a spell still running counts calendar days to today.",
    },
    "holder": {"zh": "办理方", "en": "Held by"},
    "step": {"zh": "环节", "en": "Step"},
    "from": {"zh": "开始", "en": "From"},
    "until": {"zh": "结束", "en": "Until"},
    "working_days": {"zh": "工作日", "en": "Working days"},
    "total_working_days": {"zh": "累计工作日", "en": "Working days in all"},
    "running_days": {"zh": "进行中，已 {n} 天", "en": "still running, {n} days"},
    "holding_now": {"zh": "当前办理方", "en": "Holding it now"},
    "longest": {"zh": "用时最长", "en": "Held it longest"},
    "supervisor": {"zh": "纠风办（监督机关）", "en": "The supervisory office"},
    "complainant": {"zh": "投诉人（满意度测评）", "en": "The complainant (rating the result)"},
    # rankings
    "rankings": {"zh": "单位排名", "en": "Unit rankings"},
    "tier": {"zh": "类别", "en": "Tier"},
    "show": {"zh": "显示", "en": "Show"},
    "rank": {"zh": "名次", "en": "Rank"},
    "cases_n": {"zh": "件数", "en": "Cases"},
    "composite": {"zh": "综合得分", "en": "Score"},
    "marks": {"zh": "标记", "en": "Marks"},
    "top_ten": {"zh": "十佳", "en": "Top ten"},
    "bottom": {"zh": "排名靠后", "en": "Bottom"},
    "unranked": {"zh": "未排名（件数不足）", "en": "Not ranked (too few cases)"},
    "no_rankings": {"zh": "尚未公布排名。", "en": "No ranking has been published yet."},
    "no_ranking_here": {
        "zh": "该时间段和类别尚未公布排名。",
        "en": "No ranking was published for this period and tier.",
    },
    "ranking_of": {"zh": "{period}{tier}排名", "en": "{tier} ranking, {period}"},
    "provenance": {"zh": "计算依据", "en": "How it was computed"},
    "formula_version": {"zh": "计分公式版本", "en": "Formula version"},
    "calendar_version": {"zh": "工作日历版本", "en": "Calendar version"},
    "reference_version": {"zh": "单位名录版本", "en": "Units version"},
    "position": {"zh": "数据截止", "en": "Events up to"},
    "events_n": {"zh": "{n} 条办理记录", "en": "{n} case events"},
    "events_hash": {"zh": "记录集哈希", "en": "Events hash"},
    "input_hash": {"zh": "输入数据哈希", "en": "Input hash"},
    "result_hash": {"zh": "结果哈希", "en": "Result hash"},
    "published_on": {"zh": "公布时间", "en": "Published"},
    "history": {"zh": "本期历次公布", "en": "Publications for this period"},
    "method": {"zh": "如何复核排名", "en": "How to recompute a ranking"},
    "method_link": {"zh": "排名如何计算、如何复核", "en": "How rankings are computed and how to recompute them"},
    "rates_note": {
        "zh": "每项比率均列出分子/分母；比率四舍六入五成双保留四位小数，以百分数显示。",
        "en": "Every rate shows its numerator/denominator; rates are rounded half to even to 4 places, shown as %.",
    },
    "median_response_days": {"zh": "签收用时中位数（工作日）", "en": "Median days to acknowledge"},
    "median_rectification_days": {"zh": "整改用时中位数（工作日）", "en": "Median days to rectify"},
    # boards
    "exposure": {"zh": "曝光台", "en": "Exposure board"},
    "exposure_intro": {
        "zh": "经纠风办决定曝光的典型问题。",
        "en": "Typical problems the supervisory office decided to expose.",
    },
    "exposed_at": {"zh": "曝光时间", "en": "Exposed on"},
    "no_exposure": {"zh": "暂无曝光案件。", "en": "No case has been exposed."},
    "stalled": {"zh": "超期案件", "en": "Overdue cases"},
    "stalled_intro": {
        "zh": "已超过办结时限仍未整改完成的案件，按责任单位统计，超期最久者在前。",
        "en": "Cases past their deadline and not yet rectified, by responsible unit, the longest overdue first.",
    },
    "stalled_by_unit": {"zh": "各单位超期件数", "en": "Overdue cases per unit"},
    "overdue_n": {"zh": "超期件数", "en": "Overdue"},
    "no_stalled": {"zh": "目前没有超期案件。", "en": "No case is overdue."},
    "all_units": {"zh": "全部单位", "en": "All units"},
    "overdue_since": {"zh": "超期天数", "en": "Days overdue"},
    # statistics
    "statistics": {"zh": "统计分析", "en": "Statistics"},
    "trend": {"zh": "月度趋势", "en": "Monthly trend"},
    "by_category": {"zh": "按问题类别", "en": "By category"},
    "by_unit": {"zh": "按被投诉单位", "en": "By unit complained about"},
    "by_status": {"zh": "按办理状态", "en": "By status"},
    "month": {"zh": "月份", "en": "Month"},
    "filed_n": {"zh": "受理", "en": "Filed"},
    "closed_n": {"zh": "已办结", "en": "Closed"},
    "exposed_n": {"zh": "曝光", "en": "Exposed"},
    "all_time": {"zh": "全部时间", "en": "All time"},
    "figures": {"zh": "数据表", "en": "The figures"},
    "no_data": {"zh": "暂无数据。", "en": "No data yet."},
    # open data
    "open_data": {"zh": "开放数据", "en": "Open data"},
    "open_data_intro": {
        "zh": "本站所有页面的数据均可通过以下接口免费获取，仅含公开字段。",
        "en": "Everything on these pages is free to reuse through the interfaces below, public fields only.",
    },
    "api_docs": {"zh": "JSON 接口说明（OpenAPI）", "en": "JSON API reference (OpenAPI)"},
    "atom": {"zh": "最新公布结果（Atom 订阅）", "en": "Newly published results (Atom feed)"},
    "csv": {"zh": "案件数据下载（CSV）", "en": "Case data (CSV)"},
    "rankings_csv": {"zh": "排名数据下载（CSV）", "en": "Ranking data (CSV)"},
    "open311": {"zh": "Open311 GeoReport v2 接口", "en": "Open311 GeoReport v2"},
    "not_found": {"zh": "未找到", "en": "Not found"},
    # the public ledger
    "ledger": {"zh": "公开账本", "en": "Public ledger"},
    "ledger_intro": {
        "zh": "本站公开的每一项内容（案件公布、办理状态变化、满意度测评、每次公布的排名）都按先后顺序记入公开账本。"
        "每条记录都包含前一条记录的哈希值，任何改动或删除都会使之后的哈希全部对不上。",
        "en": "Every fact this site publishes (a case's publication, its status changes, its ratings, every published "
        "ranking) is appended to the public ledger in order. Each entry carries the hash of the one before, so "
        "changing or deleting any entry breaks every hash after it.",
    },
    "ledger_head": {"zh": "账本当前头哈希", "en": "The ledger's current head"},
    "ledger_empty": {"zh": "账本尚无记录。", "en": "The ledger has no entries yet."},
    "ledger_days": {"zh": "每日头哈希", "en": "Head hash at the end of each day"},
    "ledger_days_note": {
        "zh": "请保存或转载每日头哈希：日后只要账本仍能验证到您保存的哈希，此前公开的内容就未被悄悄改动。",
        "en": "Keep or repost a daily head: as long as the ledger still verifies up to a head you kept, nothing "
        "published before it was quietly changed.",
    },
    "ledger_today_head": {"zh": "今日账本头哈希", "en": "Today's ledger head"},
    "day": {"zh": "日期", "en": "Day"},
    "entry_seq": {"zh": "记录序号", "en": "Entry"},
    "hash": {"zh": "哈希值", "en": "Hash"},
    "ledger_verify": {"zh": "如何验证", "en": "How to check it"},
    "ledger_download": {"zh": "下载全部账本（JSONL）", "en": "Download the whole ledger (JSONL)"},
    "ledger_api": {"zh": "按序号分页的 JSON 接口", "en": "JSON by sequence number, a page at a time"},
}

STATUS: dict[str, dict[str, str]] = {
    "filed": {"zh": "已受理", "en": "Filed"},
    "assigned": {"zh": "已交办", "en": "Assigned"},
    "acknowledged": {"zh": "已签收", "en": "Acknowledged"},
    "planned": {"zh": "整改中", "en": "Under rectification"},
    "rectified": {"zh": "待验收", "en": "Awaiting inspection"},
    "accepted": {"zh": "已验收", "en": "Accepted"},
    "published": {"zh": "已公布", "en": "Published"},
    "closed": {"zh": "已办结", "en": "Closed"},
    "dismissed": {"zh": "不予受理", "en": "Dismissed"},
    "merged": {"zh": "已合并", "en": "Merged"},
}

STEPS: dict[str, dict[str, str]] = STATUS | {
    "planned": {"zh": "提交整改方案", "en": "Plan submitted"},
    "rectified": {"zh": "提交整改报告", "en": "Rectification submitted"},
    "transferred": {"zh": "改派", "en": "Transferred"},
    "rejected": {"zh": "验收未通过", "en": "Rejected at inspection"},
    "exposed": {"zh": "曝光", "en": "Exposed"},
    "rated": {"zh": "满意度测评", "en": "Rated"},
    "reopened": {"zh": "重新办理", "en": "Reopened"},
    "overdue": {"zh": "超期", "en": "Overdue"},
    "escalated": {"zh": "督办", "en": "Escalated"},
    "extended": {"zh": "延期", "en": "Extended"},
    "follow_up": {"zh": "回头看", "en": "Follow-up review"},
}

HOLD_STEPS: dict[str, dict[str, str]] = {
    "triage": {"zh": "受理分办", "en": "Triage"},
    "acknowledgment": {"zh": "签收", "en": "Acknowledgment"},
    "planning": {"zh": "制定整改方案", "en": "Planning"},
    "rectification": {"zh": "整改", "en": "Rectification"},
    "inspection": {"zh": "验收", "en": "Inspection"},
    "publication": {"zh": "审核公布", "en": "Publication"},
    "rating": {"zh": "满意度测评", "en": "Rating"},
}

TIERS: dict[str, dict[str, str]] = {
    "township": {"zh": "乡镇街道", "en": "Townships and subdistricts"},
    "department": {"zh": "区直部门", "en": "District departments"},
}

RATES: dict[str, dict[str, str]] = {
    "response": {"zh": "按时签收率", "en": "Response rate"},
    "on_time": {"zh": "按时办结率", "en": "On-time rate"},
    "first_pass": {"zh": "一次验收通过率", "en": "First-pass rate"},
    "resolution": {"zh": "解决率", "en": "Resolution rate"},
    "satisfaction": {"zh": "满意率", "en": "Satisfaction rate"},
}

FLAGS: dict[str, dict[str, str]] = {
    "last_places": {"zh": "末位", "en": "last places"},
    "below_score": {"zh": "低于警戒分", "en": "score below the threshold"},
}

TIE_BREAKS: dict[str, dict[str, str]] = {
    "composite": {"zh": "综合得分", "en": "score"},
    "satisfaction": {"zh": "满意率", "en": "satisfaction"},
    "resolution": {"zh": "解决率", "en": "resolution"},
    "on_time": {"zh": "按时办结率", "en": "on-time"},
    "response": {"zh": "按时签收率", "en": "response"},
    "first_pass": {"zh": "一次验收通过率", "en": "first pass"},
    "cases": {"zh": "件数", "en": "cases"},
    "unit_id": {"zh": "单位代码", "en": "unit id"},
}


def lang_of(value: str | None) -> str:
    return value if value in LANGS else "zh"


def t(key: str, lang: str, **fmt: object) -> str:
    words = TEXT[key][lang]
    return words.format(**fmt) if fmt else words


def _named(table: dict[str, dict[str, str]], key: str, lang: str) -> str:
    return table.get(key, {}).get(lang, key)


def status_name(status: str, lang: str) -> str:
    return _named(STATUS, status, lang)


def step_name(step: str, lang: str) -> str:
    return _named(STEPS, step, lang)


def hold_step_name(step: str, lang: str) -> str:
    return _named(HOLD_STEPS, step, lang)


def tier_name(tier: str, lang: str) -> str:
    return _named(TIERS, tier, lang)


def rate_name(rate: str, lang: str) -> str:
    return _named(RATES, rate, lang)


def flag_name(flag: str, lang: str) -> str:
    return _named(FLAGS, flag, lang)


def tie_break_name(key: str, lang: str) -> str:
    return _named(TIE_BREAKS, key, lang)
