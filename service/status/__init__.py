"""The state of the work as operators read it: `GET /requests/{id}` and
`caption-bridge status`.

`report` summarises requests and the queue (the HTTP answer and the
command share it); `reader` reads a queue read-only, never creating one;
`work` lists open work by due date (`status --work`).
"""
