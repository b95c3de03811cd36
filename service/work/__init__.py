"""The work: the runner and the task kinds it runs.

`runner.Worker` claims tasks from the queue, keeps their leases and settles
how each ended (`tasks`: what every kind shares). The kinds: `expand` (a
click becomes one build per asset, read a few hundred at a time by
`bulk_reads`), `build` (gather what Iconik says, `gather`, then publish the
bundle; also `refresh` and `withdraw`), and the deliver task
(service/deliver/). Around them: `registry` (which folder holds which
asset's bundle), `leases` (work one process does at a time),
`preview_publish` (the page rewritten with each publish), `iconik_jobs`
(with `job_state`, what a request's job says) and `caption_status` (the
state of the work shown in Iconik).
"""
