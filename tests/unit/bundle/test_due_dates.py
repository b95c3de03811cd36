"""Due dates and languages from the custom action's form (service/bundle/due_dates.py). Pure."""

from datetime import UTC, datetime

import pytest

from service.bundle import due_dates, outtray_readme, preview_data


def test_a_date_is_the_end_of_that_day_in_the_zone():
    due = due_dates.parse_due("2026-12-01", "UTC")
    assert due.iso == "2026-12-01T23:59:59+00:00"
    assert due.note == "a date without a time: the end of that day in UTC"
    paris = due_dates.parse_due("2026-12-01", "Europe/Paris")
    assert paris.iso == "2026-12-01T23:59:59+01:00"
    assert paris.at is not None
    assert paris.at.timestamp() == datetime(2026, 12, 1, 22, 59, 59, tzinfo=UTC).timestamp()
    # West of UTC the end of the day is the next day in UTC: the date shown stays the 1st.
    new_york = due_dates.parse_due("2026-12-01", "America/New_York")
    assert new_york.iso == "2026-12-01T23:59:59-05:00"


def test_a_date_and_time_with_its_zone_is_that_moment_shown_in_the_zone():
    due = due_dates.parse_due("2026-12-01T15:00:00Z", "Europe/Paris")
    assert (due.iso, due.note) == ("2026-12-01T16:00:00+01:00", None)
    assert due_dates.parse_due("2026-12-01T15:00:00.250+02:00", "UTC").iso == (
        "2026-12-01T13:00:00+00:00"
    )
    naive = due_dates.parse_due("2026-12-01T15:00", "Europe/Paris")
    assert naive.iso == "2026-12-01T15:00:00+01:00"
    assert naive.note == "a date and time without a zone: read in Europe/Paris"
    # The form's wrappers, flattened (bundle.flatten_metadata), hold one value.
    assert due_dates.parse_due(["2026-12-01"], "UTC").iso == "2026-12-01T23:59:59+00:00"


@pytest.mark.parametrize(
    "value",
    [
        "next week",
        "2026-13-01",
        "2026-02-30",
        "1 Dec",
        20261201,
        ["a", "b"],
        {"x": 1},
        "2026-12-01" + "x" * 100,
        True,
    ],
)
def test_what_is_not_a_date_is_left_out_with_a_note_never_an_error(value):
    due = due_dates.parse_due(value, "UTC")
    assert due.at is None and due.iso is None
    assert due.note is not None and "is not a date" in due.note and len(due.note) < 250


def test_no_due_date_is_nothing_at_all():
    for value in (None, "", []):
        assert due_dates.parse_due(value, "UTC") == due_dates.Due(None, None)
    assert due_dates.due_of({"deadline": "2026-12-01"}, "due_date", "UTC").at is None


def test_an_unknown_zone_is_refused():
    for name in ("Mars/Olympus", "../../etc/passwd", ""):
        with pytest.raises(ValueError, match="not a time zone"):
            due_dates.zone(name)


def test_the_languages_asked_for_in_lower_case_each_once():
    asked = due_dates.languages_asked
    assert asked({"target_languages": ["en", "FR", "pt-BR", "en"]}, "target_languages") == [
        "en",
        "fr",
        "pt-br",
    ]
    assert asked({"target_languages": "de, es;it"}, "target_languages") == ["de", "es", "it"]
    assert asked({"target_languages": ["<script>", 5, None, "../x"]}, "target_languages") == []
    assert asked({}, "target_languages") == []


def test_what_is_missing():
    assert due_dates.missing(["en", "fr"], ["EN"]) == ["fr"]
    assert due_dates.missing(["en", "fr"], ["en", "fr", "de"]) == []
    assert due_dates.missing([], []) == ["*"]  # none named: open until a first delivery
    assert due_dates.missing([], ["de"]) == []


def test_how_far_off_a_due_date_is():
    day, hour = 86_400, 3_600
    assert due_dates.until(1000.0, 1000.0 + 2 * day + 3 * hour + 59) == "OVERDUE by 2 d 3 h"
    assert due_dates.until(1000.0 + 5 * hour + 30, 1000.0) == "due in 5 h"
    assert due_dates.until(1000.0 + 5 * hour + 20 * 60, 1000.0) == "due in 5 h 20 min"
    assert due_dates.until(1000.0 + 3 * day, 1000.0) == "due in 3 d"
    assert due_dates.until(1000.0 + 10, 1000.0) == "due in 1 min"
    assert due_dates.iso_utc(0) == "1970-01-01T00:00:00Z"


def test_readme_and_page_say_when_and_how_it_was_read():
    request = {
        "due_date": "2026-12-01T23:59:59+01:00",
        "due_date_note": "a date without a time: the end of that day in Europe/Paris",
        "form_values": {"due_date": "2026-12-01"},
    }
    shown = (
        "1 December 2026, 23:59 UTC+01:00 "
        "(a date without a time: the end of that day in Europe/Paris)"
    )
    text = outtray_readme.readme_of({"title": "Pilot"}, "a1", 60, _style(), request)
    assert f"\nDue: {shown}.\n" in text
    assert preview_data.due_date(request, "due_date") == shown
    # Without a due date, README.txt is what it always was.
    plain = outtray_readme.readme_of({"title": "Pilot"}, "a1", 60, _style())
    assert "Due:" not in plain
    assert outtray_readme.readme_of({"title": "Pilot"}, "a1", 60, _style(), {}) == plain
    # A manifest from before due dates were read: the form's value, as entered.
    assert preview_data.due_date({"form_values": {"due_date": "2026-12-01"}}, "due_date") == (
        "2026-12-01"
    )
    # Not a date: the value and why it was left out.
    bad = due_dates.parse_due("soon", "UTC")
    said = preview_data.due_date(
        {"form_values": {"due_date": "soon"}, "due_date_note": bad.note}, "due_date"
    )
    assert said is not None and said.startswith("soon (the due date 'soon' is not a date")


def _style():
    from service.captions.house_style import Style

    return Style()
