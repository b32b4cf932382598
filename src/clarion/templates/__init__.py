"""Message templates: per channel and per locale, versioned, rendered in a sandbox."""
