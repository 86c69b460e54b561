"""One reader per report format: the conventions of a scanner's output, written down once."""
