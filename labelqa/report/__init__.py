"""The HTML audit report: data gathered from the output tables, rendered to one file."""
