"""The service's live path: consume, decode, map, batch, deliver, settle, commit."""
