"""Getting data in: synthetic generator, importer/exporter, transcript formats."""
