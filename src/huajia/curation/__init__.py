"""Dataset curation: Data-Juicer-style image/caption filters, streaming, with a report."""
