"""BagIt (RFC 8493): names, tag files, the copy-mode writer, the strict validator and profiles."""
