"""The public pages' words, Chinese first, English one click away."""

from __future__ import annotations

LANGS = ("zh", "en")

TEXT: dict[str, dict[str, str]] = {
    "site": {"zh": "作风问题整改公开", "en": "Public rectification results"},
    "tagline": {
        "zh": "群众提、媒体曝、纠风督、单位办、社会评",
        "en": "The public raises it, the media exposes it, the supervisor oversees it, the unit fixes it, "
        "society judges it",
    },
    "cases": {"zh": "案件查询", "en": "Case search"},
    "case": {"zh": "案件", "en": "Case"},
    "unit": {"zh": "被投诉单位", "en": "Unit complained about"},
    "responsible_unit": {"zh": "责任单位", "en": "Responsible unit"},
    "category": {"zh": "问题类别", "en": "Category"},
    "status": {"zh": "办理状态", "en": "Status"},
    "filed_at": {"zh": "受理时间", "en": "Filed"},
    "deadline": {"zh": "办结时限", "en": "Deadline"},
    "redo_count": {"zh": "返工次数", "en": "Redos"},
    "timeline": {"zh": "办理过程", "en": "Timeline"},
    "problem_summary": {"zh": "问题摘要", "en": "Problem"},
    "result_summary": {"zh": "整改结果", "en": "Result"},
    "not_published": {"zh": "整改结果经审核后向社会公布。", "en": "The result is published once approved."},
    "any": {"zh": "全部", "en": "Any"},
    "search": {"zh": "查询", "en": "Search"},
    "found": {"zh": "共 {n} 件", "en": "{n} cases"},
    "none": {"zh": "没有符合条件的案件。", "en": "No case matches."},
    "other_lang": {"zh": "English", "en": "中文"},
    "back": {"zh": "返回案件查询", "en": "Back to case search"},
    "api": {"zh": "开放数据接口", "en": "Open data API"},
    "privacy": {
        "zh": "本页不公开投诉人身份及联系方式。",
        "en": "This page never shows who complained or how to reach them.",
    },
    "prev": {"zh": "上一页", "en": "Previous"},
    "next": {"zh": "下一页", "en": "Next"},
    "exposed": {"zh": "曝光", "en": "Exposed"},
}

STATUS: dict[str, dict[str, str]] = {
    "filed": {"zh": "已受理", "en": "Filed"},
    "assigned": {"zh": "已交办", "en": "Assigned"},
    "acknowledged": {"zh": "已签收", "en": "Acknowledged"},
    "planned": {"zh": "整改方案已提交", "en": "Plan submitted"},
    "rectified": {"zh": "待验收", "en": "Awaiting inspection"},
    "accepted": {"zh": "已验收", "en": "Accepted"},
    "published": {"zh": "已公布", "en": "Published"},
    "closed": {"zh": "已办结", "en": "Closed"},
    "dismissed": {"zh": "不予受理", "en": "Dismissed"},
    "merged": {"zh": "已合并", "en": "Merged"},
}

STEPS: dict[str, dict[str, str]] = STATUS | {
    "transferred": {"zh": "改派", "en": "Transferred"},
    "rejected": {"zh": "验收未通过", "en": "Rejected"},
    "exposed": {"zh": "曝光", "en": "Exposed"},
    "rated": {"zh": "满意度测评", "en": "Rated"},
    "reopened": {"zh": "重新办理", "en": "Reopened"},
    "overdue": {"zh": "超期", "en": "Overdue"},
    "escalated": {"zh": "督办", "en": "Escalated"},
    "extended": {"zh": "延期", "en": "Extended"},
    "follow_up": {"zh": "回头看", "en": "Follow-up review"},
}


def lang_of(value: str | None) -> str:
    return value if value in LANGS else "zh"


def t(key: str, lang: str, **fmt: object) -> str:
    words = TEXT[key][lang]
    return words.format(**fmt) if fmt else words


def status_name(status: str, lang: str) -> str:
    return STATUS.get(status, {}).get(lang, status)


def step_name(step: str, lang: str) -> str:
    return STEPS.get(step, {}).get(lang, step)
