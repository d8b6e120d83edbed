"""The activity catalog: every (Activity Code, Activity Subcode) pair Thrive exports, by category.

Transcribed from the vendor's description (``docs/vendor/thrive-activity-codes.txt``); the test
``tests/unit/test_catalog.py`` parses that document and proves this table equals it pair for pair.
Strings are kept exactly as the vendor writes them — spaces (``Detail Unavailable``), case
(``SMSSent`` under ``SmsSent``) and hyphens (``AutoNon-EngagedSuppress``) — because the export
carries them verbatim and validation compares them verbatim.

Each category is one section of the vendor document and one source table in schema ``thrive``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache


class Category(StrEnum):
    """The five sections of the vendor document, in the order it lists them."""

    MESSAGE_ACTIVITY = "message_activity"
    RECIPIENT_DETAILS = "recipient_details"
    MARKETING_AUTOMATION = "marketing_automation"
    SOCIAL_CRM = "social_crm"
    SURVEYS_EVENTS = "surveys_events"


# The source table (schema ``thrive``) that the platform exports each category into.
SOURCE_TABLE: dict[Category, str] = {
    Category.MESSAGE_ACTIVITY: "message_activity",
    Category.RECIPIENT_DETAILS: "recipient_activity",
    Category.MARKETING_AUTOMATION: "automation_activity",
    Category.SOCIAL_CRM: "social_activity",
    Category.SURVEYS_EVENTS: "survey_event_activity",
}

# The heading of each category's section in the vendor document.
SECTION_TITLE: dict[Category, str] = {
    Category.MESSAGE_ACTIVITY: "Message activity",
    Category.RECIPIENT_DETAILS: "Recipient details",
    Category.MARKETING_AUTOMATION: "Marketing Automation",
    Category.SOCIAL_CRM: "Social CRM",
    Category.SURVEYS_EVENTS: "Surveys & Events",
}


@dataclass(frozen=True, slots=True)
class Activity:
    """One catalog entry: what Salesforce shows as Activity Group (code) and Activity (subcode)."""

    category: Category
    code: str
    subcode: str


def _section(category: Category, pairs: list[tuple[str, str]]) -> list[Activity]:
    return [Activity(category, code, subcode) for code, subcode in pairs]


CATALOG: tuple[Activity, ...] = tuple(
    _section(
        Category.MESSAGE_ACTIVITY,
        [
            ("Opened", "Opened"),
            ("Sent", "Delivered"),
            ("Sent", "SoftBounce"),
            ("Sent", "HardBounce"),
            ("Sent", "UserNotFound"),
            ("Sent", "MailboxFull"),
            ("Sent", "TemporarilyUnavailable"),
            ("Sent", "BadDomain"),
            ("Sent", "InProgress"),
            ("Sent", "SendFailed"),
            ("LinkClicked", "Clicked"),
            ("FaxSent", "FaxSuccessful"),
            ("FaxSent", "FaxFailed"),
            ("SmsSent", "SMSSent"),
            ("SmsSent", "SMSSTOPfromPhoneNumber"),
            ("SmsSent", "SMSLicenseKeyInvalid"),
            ("SmsSent", "SMSPhoneNumberInvalid"),
            ("SmsSent", "SMSMessageInvalid"),
            ("SmsSent", "SMSScheduledTimeIsNotUTC"),
            ("SmsSent", "SMSInvalidAssignedDID"),
            ("SmsSent", "SMSNotFound"),
            ("SmsSent", "SMSInternalError"),
            ("SmsSent", "SMSServiceUnavailable"),
        ],
    )
    + _section(
        Category.RECIPIENT_DETAILS,
        [
            ("Subscribed", "Subscribed"),
            ("Unsubscribed", "Unsubscribed"),
            ("Suppressed", "ManualSuppress"),
            ("Suppressed", "ListUploadSuppress"),
            ("Suppressed", "UserNotFoundSuppress"),
            ("Suppressed", "SpamComplaintSuppress"),
            ("Suppressed", "CampaignSuppress"),
            ("Suppressed", "DomainSuppress"),
            ("Suppressed", "ManageSubscription"),
            ("Suppressed", "BadDomainSuppress"),
            ("Suppressed", "UnsubscribedAcrossAccts"),
            ("Suppressed", "SuppressedAcrossAccts"),
            ("Suppressed", "Previous"),
            ("Suppressed", "Detail Unavailable"),
            ("Suppressed", "AutoNon-EngagedSuppress"),
            ("Suppressed", "Unsub From All Link"),
            ("Suppressed", "Generic Hard"),
            ("Suppressed", "Generic Soft"),
            ("Suppressed", "Mailbox Full"),
        ],
    )
    + _section(
        Category.MARKETING_AUTOMATION,
        [
            ("LandingPageSubmit", "LandingPageSubmit"),
            ("WebsiteVisit", "WebsiteVisit"),
            ("GoalSuccess", "GoalSuccess"),
        ],
    )
    + _section(
        Category.SOCIAL_CRM,
        [
            ("Social", "FacebookComment"),
            ("Social", "FacebookLike"),
            ("Social", "FacebookPost"),
            ("Social", "TwitterMention"),
            ("Social", "TwitterReply"),
            ("Social", "TwitterRetweet"),
            ("Social", "TwitterTweet"),
        ],
    )
    + _section(
        Category.SURVEYS_EVENTS,
        [
            ("Event Signup", "Event Signup"),
            ("Survey Submit", "Survey Submit"),
        ],
    )
)


@cache
def pairs_for(category: Category) -> frozenset[tuple[str, str]]:
    """The (code, subcode) pairs valid in ``category``; a pair from another section is not."""
    return frozenset((a.code, a.subcode) for a in CATALOG if a.category == category)


def social_network(subcode: str) -> str | None:
    """Which network's handle a Social CRM activity needs (``facebook`` or ``twitter``).

    The vendor document requires the recipient to have "their social media handle listed";
    the subcode's prefix names the network.
    """
    for network in ("facebook", "twitter"):
        if subcode.lower().startswith(network):
            return network
    return None
