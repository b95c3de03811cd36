"""Intake: Iconik's POSTs in, a durable 202 out, in milliseconds.

The first stage of the data path. A connection passes the limits at the
edge (`edge`, `edge_protocol`: what an anonymous client may cost), the
routes of `app` read the body, `auth` checks it from the raw bytes,
`payloads` parses it, and `endpoints` stores it in the queue and answers.
`server` runs the apps under uvicorn; `services` is what the routes need.

Nothing here is imported at package import: the simulator imports
`service.intake.payloads` (its only way into the service), and that must
not pull in the HTTP stack. Entry points: `app.create_app`, `server.bind`.
"""
