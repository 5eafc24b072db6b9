"""Which lifecycle commands intake accepts over HTTP, at which path, from which roles.

The roles here are the coarse gate at the door (a filing channel cannot assign); the case decider
checks the fine rules again (only the assigned unit acts on its own case) and refuses with a reason
that reaches the submitter through the submission status.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common import contracts as c
from services.common.contracts import Role


@dataclass(frozen=True, slots=True)
class CommandRoute:
    path: str
    command: type[c.Command]
    roles: frozenset[Role]
    summary: str


SUPERVISOR = frozenset({Role.SUPERVISOR})
UNIT = frozenset({Role.UNIT})

COMMAND_ROUTES: tuple[CommandRoute, ...] = (
    CommandRoute("assign", c.AssignCase, SUPERVISOR, "Assign to a responsible unit with deadlines (交办)"),
    CommandRoute("transfer", c.TransferCase, SUPERVISOR, "Transfer to another unit (改派)"),
    CommandRoute("dismiss", c.DismissCase, SUPERVISOR, "Dismiss as invalid"),
    CommandRoute("merge", c.MergeCase, SUPERVISOR, "Merge into another case as a duplicate; complainants are kept"),
    CommandRoute("acknowledge", c.AcknowledgeCase, UNIT, "Acknowledge receipt (签收), by the assigned unit"),
    CommandRoute("request-extension", c.RequestExtension, UNIT, "Ask for more working days (延期申请)"),
    CommandRoute("decide-extension", c.DecideExtension, SUPERVISOR, "Grant or deny the pending extension request"),
    CommandRoute("submit-plan", c.SubmitPlan, UNIT, "Submit the rectification plan (整改方案)"),
    CommandRoute("submit-rectification", c.SubmitRectification, UNIT, "Submit the rectification report with evidence"),
    CommandRoute("accept", c.AcceptRectification, SUPERVISOR, "Accept the rectification on inspection (验收通过)"),
    CommandRoute("reject", c.RejectRectification, SUPERVISOR, "Reject with a reason and a new deadline (返工)"),
    CommandRoute("publish", c.PublishCase, SUPERVISOR, "Publish the approved public summaries (向社会公布)"),
    CommandRoute("expose", c.ExposeCase, SUPERVISOR, "Expose as a negative typical case (曝光)"),
    CommandRoute(
        "rate", c.RateSatisfaction, frozenset({Role.CHANNEL, Role.PUBLIC}), "Record a complainant's rating (满意度测评)"
    ),
    CommandRoute("close", c.CloseCase, SUPERVISOR, "Close the case (办结)"),
    CommandRoute("schedule-follow-up", c.ScheduleFollowUp, SUPERVISOR, "Schedule the follow-up review (回头看)"),
    CommandRoute("record-follow-up", c.RecordFollowUp, SUPERVISOR, "Record the follow-up review: held or relapsed"),
    CommandRoute("escalate", c.EscalateCase, SUPERVISOR, "Escalate (督办)"),
    CommandRoute("record-accountability", c.RecordAccountability, SUPERVISOR, "Record accountability (责任追究)"),
)
