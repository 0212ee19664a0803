"""The report: assemble (gather, charts, context, formats), views, sections, charts, templates, formats."""
