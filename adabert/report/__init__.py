"""Tables (pandas -> Markdown and CSV) built from the stages' JSON outputs."""
