"""Teaching material built on evidence: topics as data (`topics`), figures read from recorded runs
(`evidence`), and the narration of a run from its observed events and packets (`narrate`)."""
