"""The run directory: its file names (files), how runs are created, found and opened
(directory), and its metrics records (records). Everything that reads or writes a run goes
through here."""
