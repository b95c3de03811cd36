"""The bundle: what a captioning project in the shared folder is. Pure.

No I/O here: these modules say what to write, the work (service/work/)
writes it through the storage. `manifest` is the folder's name, its paths
and project.json; `plan` which files a change may write, keep or remove;
`readback` a project.json read back from the folder, reduced to what the
service wrote; `preview`, `preview_data` and `preview_script` the offline
page; `outtray`, `outtray_view` and `outtray_readme` the captioners'
deliver/ folder; `due_dates` the due date and languages from the click's
form.
"""
