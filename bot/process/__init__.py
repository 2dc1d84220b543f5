"""The bot process itself: how it logs (secrets redacted, message text never) and how it stops."""
