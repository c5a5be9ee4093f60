"""Customer notifications: payment receipts and failure notices by e-mail, SMS and push.

* :mod:`streams.notifications.messages` -- which lifecycle events notify, and what they say
  (pure).
* :mod:`streams.notifications.providers` -- the channels: SMTP e-mail, an MSG91-shaped SMS
  gateway, FCM HTTP v1 and APNs push.
* :mod:`streams.notifications.store` -- contacts, the payments' customers, and the per-event
  claims that make a notification go out once (PostgreSQL, migration 0013).
* :mod:`streams.notifications.agent` -- the worker's agents on ``payments.requested`` and
  ``payments.lifecycle``.

The guide is ``docs/notifications.md``.
"""
