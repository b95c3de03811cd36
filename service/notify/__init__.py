"""Notifications: the outbox's events to a house's webhook and to people.

`events` makes the events a task's change causes (stored with it, by the
queue's outbox); `due_check` adds those of due dates near or past;
`sender` sends what the outbox holds, in order per asset and destination,
through a `channel`: `webhook` (Standard Webhooks, signed) or `chat`
(Apprise: Slack, Teams, e-mail and the rest).
"""
