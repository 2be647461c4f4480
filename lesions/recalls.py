"""Follow-up recalls: when a lesion under monitoring is next to be seen.

Intervals (one place; the assessment form and the worklist read them from here):

* Short-term sequential digital dermoscopy imaging: review after 3 months; a suspicious
  melanocytic lesion without melanoma-specific features that changes in that time is excised.
  Menzies SW et al., "Short-term digital surface microscopic monitoring of atypical or changing
  melanocytic lesions", Arch Dermatol 2001;137:1583-1589 (interval 2.5-4.5 months, 3 months usual);
  Kittler H et al., "Identification of clinically featureless incipient melanoma using sequential
  dermoscopy imaging", Arch Dermatol 2006;142:1113-1119.
* Long-term (routine) digital follow-up of people with many naevi: every 6 to 12 months.
  Argenziano G et al., "Dermoscopic monitoring of melanocytic skin lesions: clinical outcome and
  patient compliance vary according to follow-up protocols", Br J Dermatol 2008;159:331-336;
  Kittler H et al., J Am Acad Dermatol 2000;43:467-476.

"Due" means within DUE_WITHIN_DAYS of today, so a clinic can book the visit; "overdue" means
the date has passed.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

SHORT_TERM_MONTHS = 3
ROUTINE_MONTHS_MIN = 6
ROUTINE_MONTHS_MAX = 12
DUE_WITHIN_DAYS = 14

INTERVAL_CHOICES = [
    ("short", "Short-term digital monitoring (3 months)"),
    ("routine6", "Routine review (6 months)"),
    ("routine12", "Routine review (12 months)"),
]
INTERVAL_MONTHS = {"short": SHORT_TERM_MONTHS, "routine6": ROUTINE_MONTHS_MIN, "routine12": ROUTINE_MONTHS_MAX}
DEFAULT_INTERVAL = "short"


def add_months(start: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day (30 Nov + 3 months = 28/29 Feb)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def next_review_date(assessed_on: date, interval: str = DEFAULT_INTERVAL) -> date:
    return add_months(assessed_on, INTERVAL_MONTHS[interval])


def recall_state(review_on: date | None, today: date) -> str:
    """'overdue', 'due' (within DUE_WITHIN_DAYS), 'scheduled', or '' when no review is set."""
    if review_on is None:
        return ""
    if review_on < today:
        return "overdue"
    if review_on <= today + timedelta(days=DUE_WITHIN_DAYS):
        return "due"
    return "scheduled"


def due_cutoff(today: date) -> date:
    return today + timedelta(days=DUE_WITHIN_DAYS)
