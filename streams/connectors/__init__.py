"""Processor connectors: one typed interface over Razorpay-, PayU-, Stripe- and bank-shaped APIs,
a circuit breaker per connector, and a router that picks a connector and fails over safely.

See ``docs/connectors.md`` for the retry and failover rules and the sandboxes' test instruments.
"""
