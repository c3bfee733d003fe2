# ruff: noqa: RUF001 - Chinese text, whose punctuation is full-width
"""The demo's sample package: guide cards (明白卡) for kiosks, in two versions. Pure data.

Version 2 changes what one item asks the citizen to bring and adds a card, so a rollout of it
and a rollback to version 1 change what the kiosks show.
"""

from __future__ import annotations

from datetime import UTC, datetime

SAMPLE_NAME = "guide-cards"
SAMPLE_VERSIONS = (1, 2)
SAMPLE_DESCRIPTION = "明白卡 guide cards for self-service kiosks (termfleet demo sample)"
PACKED_AT = {1: datetime(2024, 3, 1, tzinfo=UTC), 2: datetime(2024, 6, 1, tzinfo=UTC)}
"""Fixed packing times: the same key and version always make the same bytes, so uploading a
package again after its file was lost is the idempotent ``200``, not a ``409`` conflict."""

_NOTICE = "温馨提示：办理业务请携带本人身份证原件。如需帮助，请按屏幕上的“呼叫帮助”按钮。\n"
_CARDS_V1 = {
    "cards/RS-0012.md": (
        "# 社会保险缴费证明打印\n\n"
        "- 所需材料：居民身份证\n"
        "- 办理方式：刷身份证 → 选择“社保缴费证明” → 选择年份 → 打印\n"
        "- 承诺时限：即办\n"
    ),
    "cards/SW-0105.md": (
        "# 个人所得税纳税记录开具\n\n"
        "- 所需材料：居民身份证\n"
        "- 办理方式：刷身份证 → 人脸识别 → 选择起止月份 → 打印\n"
        "- 承诺时限：即办\n"
    ),
    "cards/GA-0007.md": (
        "# 户籍证明（户口簿复印件）\n\n"
        "- 所需材料：居民身份证、户口簿\n"
        "- 办理方式：刷身份证 → 拍摄户口簿首页及本人页 → 提交，3个工作日内到窗口领取\n"
    ),
}
_CARDS_V2 = {
    **_CARDS_V1,
    "cards/GA-0007.md": (
        "# 户籍证明（户口簿复印件）\n\n"
        "- 所需材料：居民身份证（无需再提供户口簿）\n"
        "- 办理方式：刷身份证 → 人脸识别 → 在线生成电子证明 → 打印\n"
        "- 承诺时限：即办（原3个工作日）\n"
    ),
    "cards/GJJ-0002.md": (
        "# 住房公积金缴存明细查询打印\n\n"
        "- 所需材料：居民身份证\n"
        "- 办理方式：刷身份证 → 选择“公积金缴存明细” → 打印\n"
    ),
}


def sample_files(version: int) -> dict[str, bytes]:
    """The files of the sample's ``version`` (1 or 2) by package path, UTF-8."""
    cards = _CARDS_V1 if version == 1 else _CARDS_V2
    files = {**cards, "notice.txt": _NOTICE}
    return {path: text.encode() for path, text in sorted(files.items())}
