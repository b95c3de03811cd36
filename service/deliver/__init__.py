"""The way back: captioners' finished files from deliver/ to Iconik.

`changes` says which bundles' deliver/ changed (SQS events from S3, inotify
on a local folder); `loop` decides when the scan looks, once per
deployment; `scan` lists each out-tray, remembers what it saw (`memory`),
keeps the service's files there current (`outtray_files`) and queues one
`deliver` task per finished file; `task` is that task: read the file once,
check it (service/captions/), write it to Iconik, record it in the bundle.
"""
