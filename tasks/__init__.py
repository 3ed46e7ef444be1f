"""Task definitions (as data), dataset readers, metrics and the data catalogue."""
