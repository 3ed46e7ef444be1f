"""The app's pages; each exposes render(ctx)."""
