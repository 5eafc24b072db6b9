"""Demo complaints filed through intake's real HTTP API, deterministic for a given seed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx

from services.common.reference import reference

PROBLEMS: dict[str, list[str]] = {
    "inaction": ["反映多次的路灯损坏问题无人处理", "村道塌方一个月无人过问"],
    "slow_action": ["营业执照变更申请超过承诺时限未办结", "低保复核材料提交后迟迟没有答复"],
    "wrongful_action": ["执法人员未出示证件即扣押摊贩物品", "违规向商户摊派赞助费用"],
    "extortion": ["办理建房审批时被暗示需要请客送礼", "窗口工作人员索要好处费"],
    "obstruction": ["惠企政策在科室层面迟迟不落地", "项目审批材料在中间环节被反复退回"],
    "buck_passing": ["小区积水问题街道与城管互相推诿", "噪音投诉被多个部门来回转办"],
    "land_demolition": ["征地补偿款未按公示标准发放", "拆迁过渡费拖欠半年"],
    "subcontracting": ["安置房工程层层转包导致农民工工资拖欠", "道路工程转包后质量明显下降"],
    "business_environment": ["企业开办需要重复提交相同材料", "工程项目审批要求提供法规外的证明"],
    "service_window": ["窗口工作人员上班时间玩手机、态度生硬", "办事大厅午休时间无人值守"],
    "integrity": ["公务接待超标准安排宴请", "公车私用在节假日接送家属"],
}
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"


def demo_complaints(count: int, seed: int = 2026) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    ref = reference()
    units = sorted(ref.units)
    for i in range(count):
        category = rng.choice(sorted(PROBLEMS))
        unit = rng.choice(units)
        yield {
            "category": category,
            "unit_id": unit,
            "description": f"{rng.choice(PROBLEMS[category])}（{ref.units[unit].zh}，演示数据 {i + 1}）",
            "location": ref.units[unit].zh,
            "severity": rng.choice(["general", "general", "general", "complex", "utilities"]),
            "complainant": {
                "name": f"{rng.choice(SURNAMES)}某某",
                "phone": f"13{rng.randint(100000000, 999999999)}",
            },
        }


def file_demo_complaints(intake_url: str, api_key: str, count: int, seed: int = 2026) -> list[dict[str, Any]]:
    answers = []
    with httpx.Client(base_url=intake_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10) as client:
        for i, body in enumerate(demo_complaints(count, seed)):
            r = client.post("/v1/complaints", json=body, headers={"Idempotency-Key": f"demo-{seed}-{i}"})
            r.raise_for_status()
            answers.append(r.json())
    return answers
