"""The operator commands of `caption-bridge` beyond serve and worker.

`register` wires Iconik to the service (custom action, webhooks, and with
`register_status` the captioning-state field); `health` is the image's
HEALTHCHECK; `demo` (with `demo_loop`) and `simulator` run the product
against the Iconik simulator, the only modules of the service that import
it, and only when their command runs.
"""
